"""Order updates from venue reports, and the FIX messages the router sends. Pure functions.

`hkex_update` applies one OCG-C ExecutionReport to the order it belongs to (an HKEX-routed
order, or a SMART parent whose HKEX child it is); `internal_update` applies a matcher report to
an internal-route order; `parent_report` makes a SMART parent's own report. Each returns what
it decided (an `Update`: the order after it, the records it causes, the trades whose cost risk
must count) and appends to nothing. `new_order` / `cancel_order` build the OCG-C requests (the
instrument as SecurityID with source 8 and exchange XHKG; TransactTime is the command's time,
so a resend after a crash is the same order).

A SMART parent's remainder goes to HKEX as an enhanced limit order at the parent's limit
(OrdType 2 with MaxPriceLevels 10): a plain HKEX limit may trade only at the best opposite
price and is refused when priced through it, which is exactly the case of a remainder the
internal book could not fill at a price HKEX's touch has already passed. An enhanced limit
takes up to 10 price queues at prices no worse than the parent's limit and rests the rest at
that limit, which is what the member asked of the parent. Priced further through than that,
HKEX still refuses it, and the parent ends with what it has (see `orders.child_done`).

Limits: ExecType REPLACED and TRADE_CANCEL from HKEX are logged and otherwise ignored (the
router never amends on HKEX, and the simulator sends no trade cancels).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

from sampan.fix.codec import FixMessage
from sampan.fix.messages import (
    ENHANCED_LIMIT_PRICE_LEVELS,
    ExecType,
    ExecutionReport,
    NewOrderSingle,
    OrderCancelReject,
    OrderCancelRequest,
    OrdType,
    TimeInForce,
)
from sampan.router.ids import origin_of, parent_exec_id, parent_order_id
from sampan.router.mapping import BookReport, Request
from sampan.router.orders import (
    EXEC_IDS_MAX,
    Order,
    Route,
    Status,
    child_done,
    to_status,
    traded,
)
from sampan.router.records import (
    Execution,
    Out,
    ended_exec_type,
    hkex_fill,
    report,
    report_status,
)
from sampan.schemas import records

log = logging.getLogger(__name__)

MASS_CANCEL_MAX = 10_000
# The MsgType of the notice the OCG-C link queues when HKEX has lost our session (`fixlink`).
EXCHANGE_RESET = "sampan.exchange-reset"
VENUE_REJECTED = "VENUE_REJECTED"
TOO_LATE_TO_CANCEL = "TOO_LATE_TO_CANCEL"

_TIF = {"DAY": TimeInForce.DAY, "IOC": TimeInForce.IOC, "FOK": TimeInForce.FOK}
_END = {
    ExecType.CANCELED: Status.CANCELED,
    ExecType.EXPIRED: Status.EXPIRED,
    ExecType.REJECTED: Status.REJECTED,
}


@dataclass(frozen=True, slots=True)
class Trade:
    """One execution of an order (or of its child) whose cost risk must count."""

    last_px_e3: int
    last_qty: int
    ts_ns: int


@dataclass(frozen=True, slots=True)
class Update:
    """What one venue report did: the order after it, the records it causes, its trades."""

    order: Order
    out: tuple[Out, ...] = ()
    trades: tuple[Trade, ...] = ()


def new_order(order: Order, cl_ord_id: str, qty: int) -> FixMessage:
    """The NewOrderSingle for `order`: a limit for an HKEX-routed limit order, an enhanced
    limit for a SMART parent's remainder (see the module docstring), a market order as is."""
    market = order.ord_type == "MARKET"
    enhanced = not market and (order.route is Route.SMART or order.ord_type == "ENHANCED_LIMIT")
    return NewOrderSingle(
        cl_ord_id=cl_ord_id,
        security_id=str(order.security),
        side=order.side,
        ord_type=OrdType.MARKET if market else OrdType.LIMIT,
        order_qty=qty,
        price_e3=None if market else order.price_e3,
        time_in_force=_TIF[order.time_in_force],
        transact_time_ns=order.ts_ns,
        max_price_levels=ENHANCED_LIMIT_PRICE_LEVELS if enhanced else None,
    ).to_fix()


def cancel_order(order: Order, cl_ord_id: str, ts_ns: int) -> FixMessage:
    return OrderCancelRequest(
        cl_ord_id=cl_ord_id,
        orig_cl_ord_id=order.hkex_cl_ord_ids[0],
        security_id=str(order.security),
        side=order.side,
        transact_time_ns=ts_ns,
        order_id=order.venue_order_id or None,
    ).to_fix()


def cancel_command(order: Order, request: Request, cancel_cl: str) -> dict[str, Any]:
    """The CANCEL the matcher gets for an internal-route order (from a CANCEL or MASS_CANCEL)."""
    return {
        "command_id": f"{request.command_id}:{cancel_cl}",
        "kind": "CANCEL",
        "account": order.account,
        "member": order.member,
        "security": order.security,
        "cl_ord_id": cancel_cl,
        "orig_cl_ord_id": order.cl_ord_id,
        "side": str(order.side),
        "ord_type": order.ord_type,
        "time_in_force": order.time_in_force,
        "price_e3": order.price_e3,
        "qty": order.qty,
        "route": "INTERNAL",
        "batch_id": request.batch_id,
        "parent_id": None,
        "user": request.user,
        "ts_ns": request.ts_ns,
        "stp": None,
    }


def parent_report(
    parent: Order,
    exec_type: records.ExecType,
    venue: records.Venue,
    ts_ns: int,
    last_px_e3: int = 0,
    last_qty: int = 0,
) -> tuple[Order, Out]:
    """The SMART parent's next report, and the parent with its report count advanced. A
    parent that ends REJECTED, or CANCELED because a venue refused its rest, names why."""
    parent = replace(parent, reports=parent.reports + 1)
    origin = origin_of(parent.key)
    ended = parent.status in (Status.REJECTED, Status.CANCELED, Status.EXPIRED)
    # Ended CANCELED with the member's cancel pending: the report answers that cancel, under
    # its ClOrdID, as a venue's cancel confirmation does.
    cancel = parent.status is Status.CANCELED and parent.cancel_cl_ord_id is not None
    e = Execution(
        exec_id=parent_exec_id(origin, parent.reports),
        venue=venue,
        order_id=parent_order_id(origin),
        exec_type=exec_type,
        ord_status=report_status(parent.status),
        cl_ord_id=(parent.cancel_cl_ord_id or parent.cl_ord_id) if cancel else parent.cl_ord_id,
        orig_cl_ord_id=parent.cl_ord_id if cancel else None,
        last_px_e3=last_px_e3,
        last_qty=last_qty,
        reject_reason=parent.reject_reason if ended else None,
        text=parent.reject_text if ended else None,
    )
    return parent, report(parent, e, ts_ns)


def internal_update(order: Order, r: BookReport) -> Update:
    """A matcher report about an internal-route order."""
    exec_type = r.exec_type
    if exec_type == "NEW":
        return Update(replace(to_status(order, Status.NEW), venue_order_id=r.order_id))
    if exec_type == "TRADE":
        order = traded(order, r.last_px_e3, r.last_qty)
        return Update(order, (), (Trade(r.last_px_e3, r.last_qty, r.ts_ns),))
    if exec_type in ("CANCELED", "EXPIRED", "REJECTED"):
        return Update(to_status(order, Status(exec_type)))
    if exec_type == "REPLACED":
        market = order.ord_type == "MARKET"
        return Update(
            replace(
                order,
                cl_ord_id=r.cl_ord_id,
                price_e3=r.price_e3,
                qty=r.order_qty,
                hold_price_e3=order.hold_price_e3 if market else r.price_e3,
                cancel_requested=False,
                cancel_cl_ord_id=None,
            )
        )
    if exec_type == "CANCEL_REJECTED" and r.cl_ord_id == order.cancel_cl_ord_id:
        # The matcher refused our cancel (say the order had just traded out): none pending.
        return Update(replace(order, cancel_requested=False, cancel_cl_ord_id=None))
    return Update(order)  # an AMEND's CANCEL_REJECTED changes nothing


def hkex_update(order: Order, er: ExecutionReport) -> Update:
    """One OCG-C execution report for `order` (not yet applied: the caller de-duplicates, and
    fills in OrderQty and TransactTime when HKEX left them out)."""
    assert er.transact_time_ns is not None and er.order_qty is not None, er
    order = replace(order, exec_ids=(*order.exec_ids, er.exec_id)[-EXEC_IDS_MAX:])
    smart = order.route is Route.SMART
    ts_ns = er.transact_time_ns
    last_px_e3 = last_qty = 0
    out: list[Out] = []
    trades: tuple[Trade, ...] = ()
    if er.exec_type is ExecType.NEW:
        order = replace(order, venue_order_id=er.order_id)
        if not smart:
            order = to_status(order, Status.NEW)
    elif er.exec_type is ExecType.TRADE:
        assert er.last_px_e3 is not None and er.last_qty is not None
        last_px_e3, last_qty = er.last_px_e3, er.last_qty
        order = traded(order, last_px_e3, last_qty)
        trades = (Trade(last_px_e3, last_qty, ts_ns),)
        if smart:
            order = replace(
                order,
                child_cum_qty=order.child_cum_qty + last_qty,
                child_notional_e3=order.child_notional_e3 + last_px_e3 * last_qty,
            )
        parent_id = order.cl_ord_id if smart else None
        out.append(
            hkex_fill(order, er.exec_id, er.order_id, last_px_e3, last_qty, parent_id, ts_ns)
        )
    elif er.exec_type in _END:
        if not smart:
            order = to_status(order, _END[er.exec_type])
    else:
        log.warning("router: HKEX ExecType %s for %s ignored", er.exec_type, er.cl_ord_id)
        return Update(order)
    if smart:
        order, child_out = _smart_child(order, er, last_px_e3, last_qty)
        return Update(order, (*out, *child_out), trades)
    cancel = er.exec_type is ExecType.CANCELED and order.cancel_cl_ord_id is not None
    e = Execution(
        exec_id=er.exec_id,
        venue="HKEX",
        order_id=er.order_id,
        exec_type=_exec_type(er),
        ord_status=report_status(order.status),
        cl_ord_id=order.cancel_cl_ord_id if cancel and order.cancel_cl_ord_id else order.cl_ord_id,
        orig_cl_ord_id=order.cl_ord_id if cancel else None,
        last_px_e3=last_px_e3,
        last_qty=last_qty,
        reject_reason=VENUE_REJECTED if er.exec_type is ExecType.REJECTED else None,
        text=er.text,
    )
    out.append(report(order, e, ts_ns))
    return Update(order, tuple(out), trades)


def _smart_child(
    parent: Order, er: ExecutionReport, last_px_e3: int, last_qty: int
) -> tuple[Order, list[Out]]:
    """Report the HKEX child (cl_ord_id = its HKEX ClOrdID) and, on trades and its end, the
    parent."""
    ts_ns = er.transact_time_ns
    assert ts_ns is not None and er.order_qty is not None
    child_status = Status.PARTIALLY_FILLED if er.leaves_qty and er.cum_qty else Status.NEW
    if er.exec_type in _END:
        child_status = _END[er.exec_type]
    elif er.exec_type is ExecType.TRADE and er.leaves_qty == 0:
        child_status = Status.FILLED
    child = replace(
        parent,
        cl_ord_id=er.cl_ord_id,
        qty=er.order_qty,
        cum_qty=parent.child_cum_qty,
        cum_notional_e3=parent.child_notional_e3,
        status=child_status,
    )
    rejected = er.exec_type is ExecType.REJECTED
    e = Execution(
        exec_id=er.exec_id,
        venue="HKEX",
        order_id=er.order_id,
        exec_type=_exec_type(er),
        ord_status=report_status(child_status),
        cl_ord_id=er.cl_ord_id,
        parent_id=parent.cl_ord_id,
        last_px_e3=last_px_e3,
        last_qty=last_qty,
        reject_reason=VENUE_REJECTED if rejected else None,
        text=er.text,
    )
    out = [report(child, e, ts_ns)]
    if er.exec_type is ExecType.TRADE:
        parent, parent_out = parent_report(parent, "TRADE", "HKEX", ts_ns, last_px_e3, last_qty)
        out.append(parent_out)
    if child_status.terminal:
        if rejected:
            parent = replace(parent, reject_reason=VENUE_REJECTED, reject_text=er.text)
        parent, more = end_child(parent, child_status, "HKEX", ts_ns)
        out.extend(more)
    return parent, out


def end_child(
    parent: Order, child_status: Status, venue: records.Venue, ts_ns: int
) -> tuple[Order, list[Out]]:
    """A SMART parent's HKEX child (or its request) ended in `child_status`: the parent ends
    too, with a report unless it ended FILLED (its last trade's report said so)."""
    was_open = parent.open
    parent, _ = child_done(parent, child_status)
    if was_open and not parent.open and parent.status is not Status.FILLED:
        parent, out = parent_report(parent, ended_exec_type(parent.status), venue, ts_ns)
        return parent, [out]
    return parent, []


_EXEC_TYPE: dict[ExecType, records.ExecType] = {
    ExecType.NEW: "NEW",
    ExecType.TRADE: "TRADE",
    ExecType.CANCELED: "CANCELED",
    ExecType.EXPIRED: "EXPIRED",
    ExecType.REJECTED: "REJECTED",
}


def _exec_type(er: ExecutionReport) -> records.ExecType:
    return _EXEC_TYPE[er.exec_type]


def cancel_rejected(order: Order, rej: OrderCancelReject) -> Out:
    e = Execution(
        exec_id=f"HKEX-CXLREJ-{rej.cl_ord_id}",
        venue="HKEX",
        order_id=rej.order_id,
        exec_type="CANCEL_REJECTED",
        ord_status=report_status(order.status),
        cl_ord_id=order.cancel_cl_ord_id or rej.cl_ord_id,
        orig_cl_ord_id=order.cl_ord_id,
        reject_reason=VENUE_REJECTED,
        text=rej.text,
    )
    return report(order, e, order.ts_ns)


def cancel_too_late(order: Order, exec_id: str) -> Out:
    """The answer to the member's pending cancel of `order`, which ended otherwise (filled,
    expired, rejected) before the cancel could act."""
    assert order.cancel_cl_ord_id is not None and not order.open, order
    smart = order.route is Route.SMART
    e = Execution(
        exec_id=exec_id,
        venue="HKEX" if order.route is Route.HKEX else "INTERNAL",
        order_id=parent_order_id(origin_of(order.key)) if smart else order.venue_order_id,
        exec_type="CANCEL_REJECTED",
        ord_status=report_status(order.status),
        cl_ord_id=order.cancel_cl_ord_id,
        orig_cl_ord_id=order.cl_ord_id,
        reject_reason=TOO_LATE_TO_CANCEL,
        text=f"too late to cancel: the order is {order.status}",
    )
    return report(order, e, order.ts_ns)


def venue_rejected(order: Order, exec_id: str, text: str | None) -> tuple[Order, Out]:
    """HKEX refused the NewOrderSingle of an HKEX-routed order outright (a business message
    reject or a session-level Reject): the order ends REJECTED."""
    order = to_status(order, Status.REJECTED)
    e = Execution(
        exec_id=exec_id,
        venue="HKEX",
        order_id="",
        exec_type="REJECTED",
        ord_status="REJECTED",
        cl_ord_id=order.cl_ord_id,
        reject_reason=VENUE_REJECTED,
        text=text,
    )
    return order, report(order, e, order.ts_ns)


def venue_forgot(order: Order, exec_id: str, text: str) -> tuple[Order, Out]:
    """HKEX no longer knows an order the router holds open (it lost its books): the order
    ends CANCELED by the venue, with what it had filled."""
    order = to_status(order, Status.CANCELED)
    e = Execution(
        exec_id=exec_id,
        venue="HKEX",
        order_id=order.venue_order_id,
        exec_type="CANCELED",
        ord_status="CANCELED",
        cl_ord_id=order.cancel_cl_ord_id or order.cl_ord_id,
        orig_cl_ord_id=order.cl_ord_id if order.cancel_cl_ord_id else None,
        reject_reason=VENUE_UNKNOWN_ORDER,
        text=text,
    )
    return order, report(order, e, order.ts_ns)


VENUE_UNKNOWN_ORDER = "VENUE_UNKNOWN_ORDER"
