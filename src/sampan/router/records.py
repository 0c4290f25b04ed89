"""Records the router writes: execution reports, HKEX fills, internal commands. Pure functions.

Every record is a plain dict in the shape of its Avro schema (`ExecutionReport`, `Fill`,
`OrderCommand`), wrapped in an `Out` that names its catalog topic and key. Ids are the
caller's (see `ids`), so the same input always gives the same records except for `ts_ns`.

HKEX fills: `exec_id` is HKEX's ExecID (17) exactly as received (reconciliation with the drop
copy matches on it); the member's account is on its own side, the exchange's clearing account
`HKEX.CLEARING` (member `HKEX`, as the ledger expects) on the other. The exchange side's order id
is not known to a member, so it is empty. OCG-C reports do not say which side took liquidity;
the member's side is recorded as the aggressor (the Fill is keyed by the member's account).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sampan.market.parties import EXCHANGE_ACCOUNT, EXCHANGE_MEMBER
from sampan.market.side import Side
from sampan.router.mapping import Request
from sampan.router.orders import Order, Status
from sampan.schemas import records
from sampan.streams import letters


@dataclass(frozen=True, slots=True)
class Out:
    topic: str  # catalog name
    key: str
    schema: str
    value: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Execution:
    """What happened to an order, in the ExecutionReport's terms."""

    exec_id: str
    venue: records.Venue
    order_id: str
    exec_type: records.ExecType
    ord_status: records.OrdStatus
    cl_ord_id: str
    orig_cl_ord_id: str | None = None
    parent_id: str | None = None
    last_px_e3: int = 0
    last_qty: int = 0
    reject_reason: str | None = None
    text: str | None = None


def report(order: Order, e: Execution, ts_ns: int, *, as_child_of: Order | None = None) -> Out:
    """An ExecutionReport about `order` (its cumulative figures) after `e`."""
    value = records.execution_report(
        exec_id=e.exec_id,
        venue=e.venue,
        order_id=e.order_id,
        cl_ord_id=e.cl_ord_id,
        orig_cl_ord_id=e.orig_cl_ord_id,
        parent_id=e.parent_id,
        account=order.account,
        member=order.member,
        security=order.security,
        side=order.side,
        exec_type=e.exec_type,
        ord_status=e.ord_status,
        price_e3=order.price_e3,
        order_qty=order.qty,
        last_px_e3=e.last_px_e3,
        last_qty=e.last_qty,
        cum_qty=order.cum_qty,
        leaves_qty=order.leaves_qty,
        cum_notional_e3=order.cum_notional_e3,
        reject_reason=e.reject_reason,
        text=e.text,
        ts_ns=ts_ns,
    )
    return Out("orders.events", order.account, "ExecutionReport", value)


_REPORTED_STATUS: dict[Status, records.OrdStatus] = {
    Status.PENDING_NEW: "NEW",
    Status.NEW: "NEW",
    Status.PARTIALLY_FILLED: "PARTIALLY_FILLED",
    Status.FILLED: "FILLED",
    Status.CANCELED: "CANCELED",
    Status.REJECTED: "REJECTED",
    Status.EXPIRED: "EXPIRED",
}


def report_status(status: Status) -> records.OrdStatus:
    """The Avro OrdStatus of a router status (PENDING_NEW is reported as NEW)."""
    return _REPORTED_STATUS[status]


_ENDED: dict[Status, records.ExecType] = {
    Status.CANCELED: "CANCELED",
    Status.REJECTED: "REJECTED",
    Status.EXPIRED: "EXPIRED",
}


def ended_exec_type(status: Status) -> records.ExecType:
    """The ExecType of the report that ends an order in `status` (not FILLED: a trade's
    report says that)."""
    return _ENDED[status]


def command_reject(
    request: Request,
    exec_id: str,
    venue: records.Venue,
    exec_type: records.ExecType,
    reason: str,
    text: str,
) -> Out:
    """A REJECTED (or CANCEL_REJECTED) report answering a request the router refused."""
    value = records.execution_report(
        exec_id=exec_id,
        venue=venue,
        order_id="",
        cl_ord_id=request.cl_ord_id,
        orig_cl_ord_id=request.orig_cl_ord_id,
        account=request.account,
        member=request.member,
        security=request.security,
        side=request.side,
        exec_type=exec_type,
        ord_status="REJECTED",
        price_e3=request.price_e3,
        order_qty=request.qty,
        reject_reason=reason,
        text=text[:200],
        ts_ns=request.ts_ns,
    )
    return Out("orders.events", request.account, "ExecutionReport", value)


def hkex_fill(
    order: Order,
    exec_id: str,
    hkex_order_id: str,
    last_px_e3: int,
    last_qty: int,
    parent_id: str | None,
    ts_ns: int,
) -> Out:
    buys = order.side is Side.BUY
    ours = (order.account, order.member, hkex_order_id)
    theirs = (EXCHANGE_ACCOUNT, EXCHANGE_MEMBER, "")
    buy, sell = (ours, theirs) if buys else (theirs, ours)
    value = records.fill(
        exec_id=exec_id,
        venue="HKEX",
        security=order.security,
        price_e3=last_px_e3,
        qty=last_qty,
        buy=buy,
        sell=sell,
        aggressor=order.side,
        parent_id=parent_id,
        ts_ns=ts_ns,
    )
    return Out("fills", order.account, "Fill", value)


def internal_command(command: dict[str, Any], stp: str, **changes: Any) -> Out:
    """The risk-approved command for the matcher: keyed by security, STP stamped."""
    value = dict(command)
    value["stp"] = stp
    value.update(changes)
    return Out("orders.internal", str(value["security"]), "OrderCommand", value)


def dead_letter(
    topic: str,
    source: tuple[str, int, int],
    key: bytes | None,
    value: bytes | None,
    error: str,
    agent: str,
    ts_ns: int,
) -> Out:
    """A `DeadLetter` on catalog topic `topic` for what came from `source` (topic or session,
    partition, offset or MsgSeqNum), keyed by its original key."""
    letter = letters.dead_letter(*source, key, value, error, agent, ts_ns)
    return Out(topic, (key or b"").decode(errors="replace"), "DeadLetter", letter)
