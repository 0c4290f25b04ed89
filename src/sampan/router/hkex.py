"""Order updates from venue reports, and the FIX messages the router sends. Pure functions.

`hkex_update` applies one OCG-C ExecutionReport to the order it belongs to (an HKEX-routed
order, or a SMART parent whose HKEX child it is) and writes the reports and fills it causes;
`internal_update` applies a matcher report to an internal-route order; `parent_report` writes
a SMART parent's own report. `new_order` / `cancel_order` build the OCG-C requests (the
instrument as SecurityID with source 8 and exchange XHKG; TransactTime is the command's time,
so a resend after a crash is the same order).

Limits: ExecType REPLACED and TRADE_CANCEL from HKEX are logged and otherwise ignored (the
router never amends on HKEX, and the simulator sends no trade cancels).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from sampan.fix.codec import FixMessage
from sampan.fix.messages import (
    BusinessMessageReject,
    ExecType,
    ExecutionReport,
    NewOrderSingle,
    OrderCancelReject,
    OrderCancelRequest,
    OrdType,
    Side,
    TimeInForce,
)
from sampan.router.ids import origin_of, parent_exec_id, parent_order_id
from sampan.router.orders import (
    EXEC_IDS_MAX,
    Order,
    Route,
    Status,
    child_done,
    to_status,
    traded,
)
from sampan.router.records import Execution, Out, hkex_fill, report, report_status

log = logging.getLogger(__name__)

MASS_CANCEL_MAX = 10_000
Seen = Callable[[Order, int, int, int], None]  # (order, last_px_e3, last_qty, ts_ns)

_SIDE = {"BUY": Side.BUY, "SELL": Side.SELL, "SELL_SHORT": Side.SELL_SHORT}
_TIF = {"DAY": TimeInForce.DAY, "IOC": TimeInForce.IOC, "FOK": TimeInForce.FOK}
_END = {
    ExecType.CANCELED: Status.CANCELED,
    ExecType.EXPIRED: Status.EXPIRED,
    ExecType.REJECTED: Status.REJECTED,
}


def new_order(order: Order, cl_ord_id: str, qty: int) -> FixMessage:
    market = order.ord_type == "MARKET"
    return NewOrderSingle(
        cl_ord_id=cl_ord_id,
        security_id=str(order.security),
        side=_SIDE[str(order.side)],
        ord_type=OrdType.MARKET if market else OrdType.LIMIT,
        order_qty=qty,
        price_e3=None if market else order.price_e3,
        time_in_force=_TIF[order.time_in_force],
        transact_time_ns=order.ts_ns,
    ).to_fix()


def cancel_order(order: Order, cl_ord_id: str, ts_ns: int) -> FixMessage:
    return OrderCancelRequest(
        cl_ord_id=cl_ord_id,
        orig_cl_ord_id=order.hkex_cl_ord_ids[0],
        security_id=str(order.security),
        side=_SIDE[str(order.side)],
        transact_time_ns=ts_ns,
        order_id=order.venue_order_id or None,
    ).to_fix()


def cancel_command(order: Order, c: dict[str, Any], cancel_cl: str) -> dict[str, Any]:
    """The CANCEL the matcher gets for an internal-route order (from a CANCEL or MASS_CANCEL)."""
    return {
        "command_id": f"{c['command_id']}:{cancel_cl}",
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
        "batch_id": c.get("batch_id"),
        "parent_id": None,
        "user": c.get("user"),
        "ts_ns": c["ts_ns"],
        "stp": None,
    }


def parent_report(
    parent: Order,
    out: list[Out],
    exec_type: str,
    venue: str,
    ts_ns: int,
    last_px_e3: int = 0,
    last_qty: int = 0,
) -> Order:
    """Write the SMART parent's next report; the parent with its report count advanced."""
    parent = replace(parent, reports=parent.reports + 1)
    origin = origin_of(parent.key)
    e = Execution(
        exec_id=parent_exec_id(origin, parent.reports),
        venue=venue,
        order_id=parent_order_id(origin),
        exec_type=exec_type,
        ord_status=report_status(parent.status),
        cl_ord_id=parent.cl_ord_id,
        orig_cl_ord_id=parent.cl_ord_id if parent.cancel_cl_ord_id else None,
        last_px_e3=last_px_e3,
        last_qty=last_qty,
    )
    out.append(report(parent, e, ts_ns))
    return parent


def internal_update(order: Order, r: dict[str, Any], seen: Seen) -> Order:
    """A matcher report about an internal-route order."""
    exec_type = r["exec_type"]
    if exec_type == "NEW":
        return replace(to_status(order, Status.NEW), venue_order_id=r["order_id"])
    if exec_type == "TRADE":
        order = traded(order, r["last_px_e3"], r["last_qty"])  # raises before `seen` on overfill
        seen(order, r["last_px_e3"], r["last_qty"], r["ts_ns"])
        return order
    if exec_type in ("CANCELED", "EXPIRED", "REJECTED"):
        return to_status(order, Status(exec_type))
    if exec_type == "REPLACED":
        market = order.ord_type == "MARKET"
        return replace(
            order,
            cl_ord_id=r["cl_ord_id"],
            price_e3=r["price_e3"],
            qty=r["order_qty"],
            hold_price_e3=order.hold_price_e3 if market else r["price_e3"],
            cancel_requested=False,
            cancel_cl_ord_id=None,
        )
    return order  # CANCEL_REJECTED changes nothing


def hkex_update(order: Order, er: ExecutionReport, out: list[Out], seen: Seen) -> Order:
    """One OCG-C execution report for `order` (not yet applied: the caller de-duplicates)."""
    order = replace(order, exec_ids=(*order.exec_ids, er.exec_id)[-EXEC_IDS_MAX:])
    smart = order.route is Route.SMART
    ts_ns = er.transact_time_ns
    last_px_e3 = last_qty = 0
    if er.exec_type is ExecType.NEW:
        order = replace(order, venue_order_id=er.order_id)
        if not smart:
            order = to_status(order, Status.NEW)
    elif er.exec_type is ExecType.TRADE:
        assert er.last_px_e3 is not None and er.last_qty is not None
        last_px_e3, last_qty = er.last_px_e3, er.last_qty
        order = traded(order, last_px_e3, last_qty)  # raises before `seen` on an overfill
        seen(order, last_px_e3, last_qty, ts_ns)
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
        return order
    if smart:
        return _smart_child(order, er, out, last_px_e3, last_qty)
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
        reject_reason="VENUE_REJECTED" if er.exec_type is ExecType.REJECTED else None,
        text=er.text,
    )
    out.append(report(order, e, ts_ns))
    return order


def _smart_child(
    parent: Order, er: ExecutionReport, out: list[Out], last_px_e3: int, last_qty: int
) -> Order:
    """Report the HKEX child (cl_ord_id = its HKEX ClOrdID) and, on trades and its end, the
    parent."""
    ts_ns = er.transact_time_ns
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
        reject_reason="VENUE_REJECTED" if er.exec_type is ExecType.REJECTED else None,
        text=er.text,
    )
    out.append(report(child, e, ts_ns))
    if er.exec_type is ExecType.TRADE:
        parent = parent_report(parent, out, "TRADE", "HKEX", ts_ns, last_px_e3, last_qty)
    if child_status.terminal:
        was_open = parent.open
        parent, _ = child_done(parent, child_status)
        if was_open and not parent.open and parent.status is not Status.FILLED:
            parent = parent_report(parent, out, str(parent.status), "HKEX", ts_ns)
    return parent


def _exec_type(er: ExecutionReport) -> str:
    return {
        ExecType.NEW: "NEW",
        ExecType.TRADE: "TRADE",
        ExecType.CANCELED: "CANCELED",
        ExecType.EXPIRED: "EXPIRED",
        ExecType.REJECTED: "REJECTED",
    }[er.exec_type]


def cancel_rejected(order: Order, rej: OrderCancelReject) -> Out:
    e = Execution(
        exec_id=f"HKEX-CXLREJ-{rej.cl_ord_id}",
        venue="HKEX",
        order_id=rej.order_id,
        exec_type="CANCEL_REJECTED",
        ord_status=report_status(order.status),
        cl_ord_id=order.cancel_cl_ord_id or rej.cl_ord_id,
        orig_cl_ord_id=order.cl_ord_id,
        reject_reason="VENUE_REJECTED",
        text=rej.text,
    )
    return report(order, e, order.ts_ns)


def venue_rejected(order: Order, rej: BusinessMessageReject, out: list[Out]) -> Order:
    order = to_status(order, Status.REJECTED)
    e = Execution(
        exec_id=f"HKEX-BMR-{rej.business_reject_ref_id}",
        venue="HKEX",
        order_id="",
        exec_type="REJECTED",
        ord_status="REJECTED",
        cl_ord_id=order.cl_ord_id,
        reject_reason="VENUE_REJECTED",
        text=rej.text,
    )
    out.append(report(order, e, order.ts_ns))
    return order
