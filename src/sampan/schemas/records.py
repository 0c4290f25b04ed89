"""Typed records: the Avro records the venue's processes build, one type, builder and reader each.

Each record is a `TypedDict` in the exact shape of its schema in `avsc/` (a unit test compares
the two, field by field and enum by enum), so the codec encodes it as it is and mypy checks
every field a builder is given. A builder names every field a kind of report needs and gives
the fields it does not (a trade's price and quantity on a report that is not a trade, an
absent optional string) their schema's neutral value; a reader gives the typed record of
bytes from a topic, or of a value the codec already decoded (the streams runtime hands
agents decoded values).

Builders: `execution_report` (matcher, router, HKEX route, the demo's acknowledger), `fill`
(matcher, HKEX route), `trade_tick` (matcher), `drop_copy_execution` (drop copy).
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict, cast

from sampan.market import parties, side
from sampan.schemas.codec import registry

# A decoded record holds the symbol; a built one may hold the enum member, the same string.
Venue = parties.Venue | Literal["INTERNAL", "HKEX"]
Side = side.Side | Literal["BUY", "SELL", "SELL_SHORT"]
ExecType = Literal["NEW", "TRADE", "CANCELED", "REPLACED", "REJECTED", "EXPIRED", "CANCEL_REJECTED"]
OrdStatus = Literal["NEW", "PARTIALLY_FILLED", "FILLED", "CANCELED", "REJECTED", "EXPIRED"]


class ExecutionReport(TypedDict):
    """A fact about an order (topic orders.events, keyed by account)."""

    exec_id: str
    venue: Venue
    order_id: str
    cl_ord_id: str
    orig_cl_ord_id: str | None
    parent_id: str | None
    account: str
    member: str
    security: int
    side: Side
    exec_type: ExecType
    ord_status: OrdStatus
    price_e3: int
    order_qty: int
    last_px_e3: int
    last_qty: int
    cum_qty: int
    leaves_qty: int
    cum_notional_e3: int
    reject_reason: str | None
    text: str | None
    ts_ns: int


class Fill(TypedDict):
    """One trade between two accounts (topic fills, keyed by the aggressor's account)."""

    exec_id: str
    venue: Venue
    security: int
    price_e3: int
    qty: int
    buy_account: str
    buy_member: str
    buy_order_id: str
    sell_account: str
    sell_member: str
    sell_order_id: str
    aggressor: Side
    parent_id: str | None
    ts_ns: int


class TradeTick(TypedDict):
    """One public trade (topic md.trades, keyed by venue and security)."""

    venue: Venue
    security: int
    trade_id: str
    price_e3: int
    qty: int
    aggressor: Side | None
    ts_ns: int


class DropCopyExecution(TypedDict):
    """One drop-copy ExecutionReport as HKEX sent it (topic dropcopy.executions)."""

    exec_id: str
    order_id: str
    cl_ord_id: str
    security: int
    side: Side
    exec_type: str  # FIX ExecType (150) as on the wire
    last_px_e3: int
    last_qty: int
    msg_seq_num: int
    sending_time_ns: int
    raw: str


def execution_report(
    *,
    exec_id: str,
    venue: Venue,
    order_id: str,
    cl_ord_id: str,
    account: str,
    member: str,
    security: int,
    side: Side,
    exec_type: ExecType,
    ord_status: OrdStatus,
    price_e3: int,
    order_qty: int,
    ts_ns: int,
    orig_cl_ord_id: str | None = None,
    parent_id: str | None = None,
    last_px_e3: int = 0,
    last_qty: int = 0,
    cum_qty: int = 0,
    leaves_qty: int = 0,
    cum_notional_e3: int = 0,
    reject_reason: str | None = None,
    text: str | None = None,
) -> ExecutionReport:
    """An ExecutionReport; the trade fields stay 0 unless `exec_type` is TRADE."""
    return {
        "exec_id": exec_id,
        "venue": venue,
        "order_id": order_id,
        "cl_ord_id": cl_ord_id,
        "orig_cl_ord_id": orig_cl_ord_id,
        "parent_id": parent_id,
        "account": account,
        "member": member,
        "security": security,
        "side": side,
        "exec_type": exec_type,
        "ord_status": ord_status,
        "price_e3": price_e3,
        "order_qty": order_qty,
        "last_px_e3": last_px_e3,
        "last_qty": last_qty,
        "cum_qty": cum_qty,
        "leaves_qty": leaves_qty,
        "cum_notional_e3": cum_notional_e3,
        "reject_reason": reject_reason,
        "text": text,
        "ts_ns": ts_ns,
    }


def fill(
    *,
    exec_id: str,
    venue: Venue,
    security: int,
    price_e3: int,
    qty: int,
    buy: tuple[str, str, str],
    sell: tuple[str, str, str],
    aggressor: Side,
    ts_ns: int,
    parent_id: str | None = None,
) -> Fill:
    """A Fill; `buy` and `sell` are each side's (account, member, order id)."""
    return {
        "exec_id": exec_id,
        "venue": venue,
        "security": security,
        "price_e3": price_e3,
        "qty": qty,
        "buy_account": buy[0],
        "buy_member": buy[1],
        "buy_order_id": buy[2],
        "sell_account": sell[0],
        "sell_member": sell[1],
        "sell_order_id": sell[2],
        "aggressor": aggressor,
        "parent_id": parent_id,
        "ts_ns": ts_ns,
    }


def trade_tick(
    *,
    venue: Venue,
    security: int,
    trade_id: str,
    price_e3: int,
    qty: int,
    aggressor: Side | None,
    ts_ns: int,
) -> TradeTick:
    return {
        "venue": venue,
        "security": security,
        "trade_id": trade_id,
        "price_e3": price_e3,
        "qty": qty,
        "aggressor": aggressor,
        "ts_ns": ts_ns,
    }


def drop_copy_execution(
    *,
    exec_id: str,
    order_id: str,
    cl_ord_id: str,
    security: int,
    side: Side,
    exec_type: str,
    last_px_e3: int,
    last_qty: int,
    msg_seq_num: int,
    sending_time_ns: int,
    raw: str,
) -> DropCopyExecution:
    return {
        "exec_id": exec_id,
        "order_id": order_id,
        "cl_ord_id": cl_ord_id,
        "security": security,
        "side": side,
        "exec_type": exec_type,
        "last_px_e3": last_px_e3,
        "last_qty": last_qty,
        "msg_seq_num": msg_seq_num,
        "sending_time_ns": sending_time_ns,
        "raw": raw,
    }


# -- readers: the codec has checked the record against its schema, so the shape is the type's.


def as_execution_report(value: dict[str, Any]) -> ExecutionReport:
    """The typed record of a value the codec decoded as an ExecutionReport."""
    return cast(ExecutionReport, value)


def as_fill(value: dict[str, Any]) -> Fill:
    return cast(Fill, value)


def as_trade_tick(value: dict[str, Any]) -> TradeTick:
    return cast(TradeTick, value)


def as_drop_copy_execution(value: dict[str, Any]) -> DropCopyExecution:
    return cast(DropCopyExecution, value)


def read_execution_report(data: bytes) -> ExecutionReport:
    """Decode an ExecutionReport from a topic (raises `SchemaError` when it is not one)."""
    return as_execution_report(registry().decode("ExecutionReport", data))


def read_fill(data: bytes) -> Fill:
    return as_fill(registry().decode("Fill", data))


def read_trade_tick(data: bytes) -> TradeTick:
    return as_trade_tick(registry().decode("TradeTick", data))


def read_drop_copy_execution(data: bytes) -> DropCopyExecution:
    return as_drop_copy_execution(registry().decode("DropCopyExecution", data))
