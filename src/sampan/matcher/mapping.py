"""Between Avro records and the engine: the matcher's per-partition state, pure.

`PartitionBook` turns `OrderCommand` records read from one partition of `orders.internal` into
engine commands, and the engine's events into `ExecutionReport`, `Fill` and `TradeTick`
records. It owns what the engine does not know: client order ids, member and parent ids, and
each order's traded notional. Its whole state (engine included) serialises to bytes, so the
agent can snapshot it; the output is a pure function of the commands applied (no clock).

Identifiers: an order's engine id is its NEW command's input offset + 1 (unique within the
partition, and a security lives in one partition); its venue order id is `X<partition>.<id>`.
Exec ids are the engine's per-book sequence, `X<exec id>`, unique for the venue. A command for
a security without a book has no sequence to draw from (the engine gives exec id 0); its reject
is `X<partition>.r<offset>`, from its input offset, so it is as unique and deterministic.
Bounds: a command whose string fields exceed `STRING_LEN_MAX` (the router refuses those at the
edge; this is the matcher's own defence against any other writer of orders.internal) is
answered by a REJECTED report with reason INVALID_FIELD, its strings cut to their bounds, and
changes nothing, so its output stays a small record and a replay decides the same.
Limits: order metadata is dropped when an order is done, so a cancel for a finished order is
refused as UNKNOWN_ORDER, like one for an order that never existed.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sampan.market.sessions import Phase
from sampan.market.side import Side
from sampan.matching.engine import Engine
from sampan.matching.instrument import Instrument, Rules
from sampan.matching.model import (
    AmendOrder,
    AuctionUncrossed,
    CancelOrder,
    CancelRejected,
    ChangePhase,
    Command,
    Event,
    ExecType,
    ExecutionReport,
    Fill,
    MassCancel,
    MassCancelled,
    OrderType,
    PhaseChanged,
    PlaceOrder,
    StpMode,
    TimeInForce,
)
from sampan.schemas import records

STATE_VERSION = 1
# The longest accepted value of each string field of an OrderCommand (as the router's edge).
STRING_LEN_MAX = {
    "command_id": 160,  # the router derives cancel ids as "<command id>:<ClOrdID>"
    "account": 32,
    "member": 32,
    "cl_ord_id": 80,  # a mass cancel's cancels are "<ClOrdID>.<n>"
    "orig_cl_ord_id": 64,
    "batch_id": 64,
    "parent_id": 64,
    "user": 64,
}

_EXEC_TYPE: dict[ExecType, records.ExecType] = {
    ExecType.ACCEPTED: "NEW",
    ExecType.PARTIALLY_FILLED: "TRADE",
    ExecType.FILLED: "TRADE",
    ExecType.CANCELED: "CANCELED",
    ExecType.AMENDED: "REPLACED",
    ExecType.REJECTED: "REJECTED",
    ExecType.EXPIRED: "EXPIRED",
}
_TERMINAL = {"REJECTED", "CANCELED", "EXPIRED", "FILLED"}
_ENDS: dict[records.ExecType, records.OrdStatus] = {
    "REJECTED": "REJECTED",
    "CANCELED": "CANCELED",
    "EXPIRED": "EXPIRED",
}
_SIDE_IN = {"BUY": Side.BUY, "SELL": Side.SELL, "SELL_SHORT": Side.SELL}
_ORD_TYPE = {
    "LIMIT": OrderType.LIMIT,
    "MARKET": OrderType.MARKET,
    "ENHANCED_LIMIT": OrderType.ENHANCED_LIMIT,
    "AT_AUCTION": OrderType.AT_AUCTION,
    "AT_AUCTION_LIMIT": OrderType.AT_AUCTION_LIMIT,
}
_TIF = {"DAY": TimeInForce.DAY, "IOC": TimeInForce.IOC, "FOK": TimeInForce.FOK}


@dataclass(slots=True)
class OrderMeta:
    """What the matcher remembers of a live order beyond the engine's book."""

    cl_ord_id: str
    member: str
    parent_id: str | None
    side: records.Side
    notional_e3: int = 0
    status: records.OrdStatus = "NEW"


@dataclass(frozen=True, slots=True)
class Record:
    """An output record before encoding: catalog topic, key and Avro value."""

    topic: str
    key: str
    schema: str
    value: Mapping[str, Any]


def oversized(command: dict[str, Any]) -> str | None:
    """Which string field of the command is over its bound, or None."""
    for name, limit in STRING_LEN_MAX.items():
        value = command.get(name)
        if value is not None and len(value) > limit:
            return f"{name} is {len(value)} characters long; at most {limit}"
    return None


def ord_status(exec_type: records.ExecType, cum_qty: int, leaves_qty: int) -> records.OrdStatus:
    if exec_type in _ENDS:
        return _ENDS[exec_type]
    if leaves_qty == 0 and cum_qty > 0:
        return "FILLED"
    return "PARTIALLY_FILLED" if cum_qty > 0 else "NEW"


class PartitionBook:
    """The matcher's state for one input partition."""

    def __init__(
        self, partition: int, instruments: Iterable[Instrument], rules: Rules | None = None
    ) -> None:
        self.partition = partition
        self.engine = Engine(rules or Rules.internal(), instruments)
        self.orders: dict[int, OrderMeta] = {}
        self.by_client: dict[tuple[str, str], int] = {}
        self._target = 0  # the order a CANCEL or AMEND being applied addresses
        self._offset = 0  # the input offset of the command being applied

    def venue_order_id(self, order_id: int) -> str:
        return f"X{self.partition}.{order_id}"

    # ---------------------------------------------------------------- commands in

    def apply(self, offset: int, command: dict[str, Any]) -> list[Record]:
        """Apply one OrderCommand read at `offset`; the records it yields, in order."""
        kind = command["kind"]
        if kind == "PHASE":
            return self._phase(command)
        too_long = oversized(command)
        if too_long is not None:
            return [self._invalid(offset, command, too_long)]
        ts_ns = command["ts_ns"]
        account = command["account"]
        duplicate_of = 0
        self._target = 0
        self._offset = offset
        if kind == "NEW":
            duplicate_of = self.by_client.get((account, command["cl_ord_id"]), 0)
            engine_command: Command = self._place(offset, command)
        elif kind == "CANCEL":
            target = self._target = self.by_client.get(
                (account, command["orig_cl_ord_id"] or ""), 0
            )
            engine_command = CancelOrder(ts_ns, command["security"], target, account)
        elif kind == "AMEND":
            target = self._target = self.by_client.get(
                (account, command["orig_cl_ord_id"] or ""), 0
            )
            engine_command = AmendOrder(
                ts_ns, command["security"], target, account, command["price_e3"], command["qty"]
            )
        else:
            security = command["security"] or None
            engine_command = MassCancel(ts_ns, account, security)
        return self._records(command, self.engine.process(engine_command), duplicate_of)

    def _phase(self, command: dict[str, Any]) -> list[Record]:
        """A change of the trading phase, from the venue's schedule. It answers no account;
        its effects (an uncross's fills and reports, expiries at the close) are records like
        any other. A PHASE command naming no known phase is an error for the runtime to
        dead-letter, raised before anything changes."""
        name = command.get("phase")
        phase = Phase.__members__.get(name) if isinstance(name, str) else None
        if phase is None:
            raise ValueError(f"PHASE command with unknown phase {name!r}")
        events = self.engine.process(ChangePhase(command["ts_ns"], phase))
        self._target = 0
        return self._records(command, events, 0)

    def _invalid(self, offset: int, command: dict[str, Any], problem: str) -> Record:
        """The answer to a command refused before the engine saw it."""
        cut = {
            name: None if command.get(name) is None else command[name][:limit]
            for name, limit in STRING_LEN_MAX.items()
        }
        value = records.execution_report(
            exec_id=f"X{self.partition}.r{offset}",
            venue="INTERNAL",
            order_id="",
            cl_ord_id=cut["cl_ord_id"] or "",
            orig_cl_ord_id=cut["orig_cl_ord_id"],
            parent_id=cut["parent_id"],
            account=cut["account"] or "",
            member=cut["member"] or "",
            security=command["security"],
            side=command["side"],
            exec_type="REJECTED" if command["kind"] == "NEW" else "CANCEL_REJECTED",
            ord_status="REJECTED",
            price_e3=command["price_e3"],
            order_qty=command["qty"],
            reject_reason="INVALID_FIELD",
            text=problem,
            ts_ns=command["ts_ns"],
        )
        return Record("orders.events", cut["account"] or "", "ExecutionReport", value)

    def _place(self, offset: int, command: dict[str, Any]) -> PlaceOrder:
        key = (command["account"], command["cl_ord_id"])
        # A live order already holds this client order id: hand the engine that order's id so
        # that it rejects the command as a duplicate, with an exec id of its own sequence.
        order_id = self.by_client.get(key, offset + 1)
        if order_id == offset + 1:
            self.orders[order_id] = OrderMeta(
                command["cl_ord_id"], command["member"], command["parent_id"], command["side"]
            )
            self.by_client[key] = order_id
        return PlaceOrder(
            ts_ns=command["ts_ns"],
            security=command["security"],
            order_id=order_id,
            account=command["account"],
            member=command["member"],
            side=_SIDE_IN[command["side"]],
            qty=command["qty"],
            price_e3=command["price_e3"],
            order_type=_ORD_TYPE[command["ord_type"]],
            tif=_TIF[command["time_in_force"]],
            stp=StpMode[command.get("stp") or "CANCEL_RESTING"],
        )

    # ---------------------------------------------------------------- events out

    def _exec_id(self, engine_exec_id: int) -> str:
        if engine_exec_id == 0:  # no book, so no sequence: name the reject by its command
            return f"X{self.partition}.r{self._offset}"
        return f"X{engine_exec_id}"

    def _records(
        self, command: dict[str, Any], events: list[Event], duplicate_of: int
    ) -> list[Record]:
        out: list[Record] = []
        for event in events:
            if isinstance(event, ExecutionReport):
                out.append(self._report(command, event, duplicate_of))
            elif isinstance(event, Fill):
                out.extend(self._fill(event))
            elif isinstance(event, CancelRejected):
                out.append(self._cancel_rejected(command, event))
            else:
                # A phase change and an auction's result are carried by the reports and fills
                # around them; the venue status topic is not written from here yet.
                assert isinstance(event, MassCancelled | PhaseChanged | AuctionUncrossed)
        return out

    def _report(self, command: dict[str, Any], event: ExecutionReport, duplicate_of: int) -> Record:
        # The engine rejected a NEW because a live order holds its client order id: the
        # report answers the command, and the live order keeps its state.
        answers_command = duplicate_of != 0 and event.order_id == duplicate_of
        meta = None if answers_command else self.orders.get(event.order_id)
        if meta is None:
            meta = OrderMeta(
                command["cl_ord_id"], command["member"], command["parent_id"], command["side"]
            )
        exec_type = _EXEC_TYPE[event.exec_type]
        if event.last_qty:
            meta.notional_e3 += event.last_px_e3 * event.last_qty
        if exec_type == "REPLACED" and command["kind"] == "AMEND":
            self.by_client.pop((event.account, meta.cl_ord_id), None)
            meta.cl_ord_id = command["cl_ord_id"]
            self.by_client[(event.account, meta.cl_ord_id)] = event.order_id
        # The report that answers a cancel or amend carries the request's ClOrdID and the
        # order's previous one as OrigClOrdID, as in FIX.
        answers_request = exec_type in ("CANCELED", "REPLACED") and event.order_id == self._target
        status = ord_status(exec_type, event.cum_qty, event.leaves_qty)
        meta.status = status
        reason = event.reason.name if event.reason is not None else None
        value = records.execution_report(
            exec_id=self._exec_id(event.exec_id),
            venue="INTERNAL",
            order_id="" if answers_command else self.venue_order_id(event.order_id),
            cl_ord_id=command["cl_ord_id"] if answers_request else meta.cl_ord_id,
            orig_cl_ord_id=command["orig_cl_ord_id"] if answers_request else None,
            parent_id=meta.parent_id,
            account=event.account,
            member=meta.member,
            security=event.security,
            side=meta.side,
            exec_type=exec_type,
            ord_status=status,
            price_e3=event.price_e3,
            order_qty=event.order_qty,
            last_px_e3=event.last_px_e3,
            last_qty=event.last_qty,
            cum_qty=event.cum_qty,
            leaves_qty=event.leaves_qty,
            cum_notional_e3=meta.notional_e3,
            reject_reason=reason,
            ts_ns=event.ts_ns,
        )
        if status in _TERMINAL and not answers_command and event.order_id in self.orders:
            del self.orders[event.order_id]
            self.by_client.pop((event.account, meta.cl_ord_id), None)
        return Record("orders.events", event.account, "ExecutionReport", value)

    def _fill(self, event: Fill) -> list[Record]:
        buy = self.orders.get(event.buy_order_id)
        sell = self.orders.get(event.sell_order_id)
        aggressor_is_buy = event.aggressor_side is Side.BUY
        taker, maker = (buy, sell) if aggressor_is_buy else (sell, buy)
        parent = (taker.parent_id if taker else None) or (maker.parent_id if maker else None)
        exec_id = f"X{event.exec_id}"
        aggressor: records.Side = "BUY" if aggressor_is_buy else "SELL"
        fill = records.fill(
            exec_id=exec_id,
            venue="INTERNAL",
            security=event.security,
            price_e3=event.price_e3,
            qty=event.qty,
            buy=(event.buy_account, event.buy_member, self.venue_order_id(event.buy_order_id)),
            sell=(event.sell_account, event.sell_member, self.venue_order_id(event.sell_order_id)),
            aggressor=aggressor,
            parent_id=parent,
            ts_ns=event.ts_ns,
        )
        tick = records.trade_tick(
            venue="INTERNAL",
            security=event.security,
            trade_id=exec_id,
            price_e3=event.price_e3,
            qty=event.qty,
            aggressor=aggressor,
            ts_ns=event.ts_ns,
        )
        taker_account = event.buy_account if aggressor_is_buy else event.sell_account
        return [
            Record("fills", taker_account, "Fill", fill),
            Record("md.trades", f"INTERNAL:{event.security}", "TradeTick", tick),
        ]

    def _cancel_rejected(self, command: dict[str, Any], event: CancelRejected) -> Record:
        meta = self.orders.get(event.order_id)
        value = records.execution_report(
            exec_id=self._exec_id(event.exec_id),
            venue="INTERNAL",
            order_id=self.venue_order_id(event.order_id) if meta else "",
            cl_ord_id=command["cl_ord_id"],
            orig_cl_ord_id=command["orig_cl_ord_id"],
            parent_id=meta.parent_id if meta else None,
            account=command["account"],
            member=command["member"],
            security=command["security"],
            side=meta.side if meta else command["side"],
            exec_type="CANCEL_REJECTED",
            ord_status=meta.status if meta else "REJECTED",
            price_e3=command["price_e3"],
            order_qty=command["qty"],
            cum_notional_e3=meta.notional_e3 if meta else 0,
            reject_reason=event.reason.name,
            ts_ns=event.ts_ns,
        )
        return Record("orders.events", command["account"], "ExecutionReport", value)

    # ---------------------------------------------------------------- depth and state

    def depth_record(self, security: int, seq: int, ts_ns: int) -> Record:
        bids, asks = self.engine.depth(security, 5)
        value = {
            "venue": "INTERNAL",
            "security": security,
            "bids": [{"price_e3": p, "qty": q, "orders": n} for p, q, n in bids],
            "asks": [{"price_e3": p, "qty": q, "orders": n} for p, q, n in asks],
            "seq": seq,
            "ts_ns": ts_ns,
        }
        return Record("md.depth", f"INTERNAL:{security}", "DepthSnapshot", value)

    def snapshot(self) -> bytes:
        state = {
            "version": STATE_VERSION,
            "partition": self.partition,
            "engine": self.engine.snapshot().decode(),
            "orders": [
                [oid, m.cl_ord_id, m.member, m.parent_id, m.side, m.notional_e3, m.status]
                for oid, m in sorted(self.orders.items())
            ],
            "by_client": [[a, c, oid] for (a, c), oid in sorted(self.by_client.items())],
        }
        return zlib.compress(json.dumps(state, separators=(",", ":")).encode(), 6)

    @classmethod
    def restore(cls, blob: bytes) -> PartitionBook:
        state = json.loads(zlib.decompress(blob))
        assert state["version"] == STATE_VERSION, f"matcher state version {state['version']}"
        book = cls.__new__(cls)
        book.partition = state["partition"]
        book.engine = Engine.restore(state["engine"].encode())
        book.orders = {row[0]: OrderMeta(*row[1:]) for row in state["orders"]}
        book.by_client = {(a, c): oid for a, c, oid in state["by_client"]}
        book._target = 0
        book._offset = 0
        return book
