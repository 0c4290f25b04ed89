"""Every surveillance rule behind one door: catalog records in, alerts out.

`Surveillance.take(topic, partition, offset, value)` decodes a record of `orders.events`,
`fills`, `md.trades` or `md.depth` into a typed input (the mapping functions below are the only
place a record dict is read) and runs the rules that read it. Each (topic, partition) remembers
the highest offset taken, and a record at or below it changes nothing: the analytics app's
at-least-once delivery and its replay at start (see `shell`) cannot count a record twice.

Guarantees: pure apart from decoding (no Kafka, no clock). Limits: a record that does not
decode, or lacks a field, is skipped with a reason (returned, for the shell to log); the rules'
state is bounded by `Thresholds`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sampan.analytics.surveillance.activity import OrderToTrade, wash_trade
from sampan.analytics.surveillance.market import LiquidityGaps, PriceMoves, Touches
from sampan.analytics.surveillance.model import (
    Alert,
    Event,
    FillEvent,
    Kind,
    OrderEvent,
    Thresholds,
    TouchEvent,
    TradeEvent,
)
from sampan.analytics.surveillance.spoofing import Spoofing
from sampan.schemas.codec import SchemaError, registry

# The topics surveillance reads, with the schema of their values.
INPUTS: dict[str, str] = {
    "orders.events": "ExecutionReport",
    "fills": "Fill",
    "md.trades": "TradeTick",
    "md.depth": "DepthSnapshot",
}

# The reason codes of a cancel the account asked for (any other reason is the venue's own:
# self-trade prevention, for one); a report without a reason is the account's too.
ACCOUNT_CANCELS = frozenset({None, "REQUESTED", "MASS_CANCEL"})


def order_event(r: dict[str, Any]) -> OrderEvent:
    kind = Kind(r["exec_type"])
    return OrderEvent(
        account=str(r["account"]),
        member=str(r["member"]),
        venue=str(r["venue"]),
        security=int(r["security"]),
        order_id=str(r["order_id"]),
        buy=r["side"] == "BUY",
        kind=kind,
        price_e3=int(r["price_e3"]),
        order_qty=int(r["order_qty"]),
        cum_qty=int(r["cum_qty"]),
        leaves_qty=int(r["leaves_qty"]),
        exec_id=str(r["exec_id"]),
        venue_cancel=kind is Kind.CANCELED and r.get("reject_reason") not in ACCOUNT_CANCELS,
        ts_ns=int(r["ts_ns"]),
    )


def fill_event(r: dict[str, Any]) -> FillEvent:
    return FillEvent(
        exec_id=str(r["exec_id"]),
        venue=str(r["venue"]),
        security=int(r["security"]),
        price_e3=int(r["price_e3"]),
        qty=int(r["qty"]),
        buy_account=str(r["buy_account"]),
        buy_member=str(r["buy_member"]),
        buy_order_id=str(r["buy_order_id"]),
        sell_account=str(r["sell_account"]),
        sell_member=str(r["sell_member"]),
        sell_order_id=str(r["sell_order_id"]),
        ts_ns=int(r["ts_ns"]),
    )


def trade_event(r: dict[str, Any]) -> TradeEvent:
    return TradeEvent(
        venue=str(r["venue"]),
        security=int(r["security"]),
        trade_id=str(r["trade_id"]),
        price_e3=int(r["price_e3"]),
        qty=int(r["qty"]),
        ts_ns=int(r["ts_ns"]),
    )


def touch_event(r: dict[str, Any]) -> TouchEvent:
    bids, asks = r["bids"], r["asks"]
    return TouchEvent(
        venue=str(r["venue"]),
        security=int(r["security"]),
        bid_e3=int(bids[0]["price_e3"]) if bids else None,
        bid_qty=int(bids[0]["qty"]) if bids else 0,
        ask_e3=int(asks[0]["price_e3"]) if asks else None,
        ask_qty=int(asks[0]["qty"]) if asks else 0,
        seq=int(r["seq"]),
        ts_ns=int(r["ts_ns"]),
    )


_MAPPINGS: dict[str, Callable[[dict[str, Any]], Event]] = {
    "orders.events": order_event,
    "fills": fill_event,
    "md.trades": trade_event,
    "md.depth": touch_event,
}


def decode(topic: str, value: bytes) -> Event:
    """The typed input a record of `topic` carries; ValueError says why it has none."""
    assert topic in INPUTS, topic
    try:
        record = registry().decode(INPUTS[topic], value)
        return _MAPPINGS[topic](record)
    except (SchemaError, KeyError, ValueError, TypeError, IndexError) as error:
        raise ValueError(f"{topic}: not a {INPUTS[topic]}: {error}") from error


class Surveillance:
    def __init__(self, limits: Thresholds) -> None:
        self.limits = limits
        self.touches = Touches(limits)
        self.spoofing = Spoofing(limits, self.touches)
        self.order_to_trade = OrderToTrade(limits)
        self.moves = PriceMoves(limits)
        self.gaps = LiquidityGaps(limits)
        self.taken: dict[tuple[str, int], int] = {}

    def seen(self, topic: str, partition: int, offset: int) -> bool:
        """Whether the record at this place was taken already (or skipped as before a start)."""
        return offset <= self.taken.get((topic, partition), -1)

    def mark(self, topic: str, partition: int, offset: int) -> None:
        """Count every offset up to `offset` as taken (the shell's replay start and end)."""
        key = (topic, partition)
        self.taken[key] = max(self.taken.get(key, -1), offset)

    def take(self, topic: str, partition: int, offset: int, value: bytes | None) -> list[Alert]:
        """The alerts a record raises; ValueError when it does not decode (it is marked taken
        all the same, so the shell logs it once)."""
        if value is None or self.seen(topic, partition, offset):
            return []
        self.mark(topic, partition, offset)
        return self.apply(decode(topic, value))

    def apply(self, event: Event) -> list[Alert]:
        if isinstance(event, OrderEvent):
            return self.spoofing.take(event) + self.order_to_trade.take(event)
        if isinstance(event, FillEvent):
            return wash_trade(event)
        if isinstance(event, TradeEvent):
            return self.moves.take(event)
        self.touches.take(event)
        return self.gaps.take(event)
