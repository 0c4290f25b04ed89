"""Random command streams for the matcher's property tests, and the per-event accounting
checks run after every command."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from hypothesis import strategies as st

from sampan.market.rules import (
    SPREAD_TABLE_PART_A,
    SPREAD_TABLE_PART_A_BEFORE_2025_08,
    SPREAD_TABLES,
)
from sampan.matching import (
    AmendOrder,
    CancelOrder,
    Command,
    Event,
    ExecType,
    ExecutionReport,
    Fill,
    Instrument,
    MassCancel,
    OrderType,
    PlaceOrder,
    Rules,
    Side,
    StpMode,
    TimeInForce,
)

# 10.00 and 20.00 sit on band boundaries, so tick changes are exercised on both tables.
INSTRUMENTS = [
    Instrument(700, 100, SPREAD_TABLE_PART_A, nominal_price_e3=10_000),
    Instrument(5, 400, SPREAD_TABLE_PART_A_BEFORE_2025_08, nominal_price_e3=20_000),
]
UNKNOWN_SECURITY = 999
ACCOUNTS = {"A1": "MA", "A2": "MA", "B1": "MB", "C1": "MC"}
RULES = [
    Rules.internal(),
    Rules.hkex(),
    Rules(enhanced_limit_levels_max=3, limit_matches_best_only=True, max_lots_per_order=4),
    Rules(market_collar_bps=20, nominal_price_check_factor=0, stp_enabled=True),
]


def _prices(instrument: Instrument) -> list[int]:
    table = SPREAD_TABLES[instrument.spread_table]
    mid = instrument.nominal_price_e3
    ups = [table.tick_up(mid, n) for n in range(8)]
    downs = [table.tick_down(mid, n) for n in range(1, 8)]
    return sorted(set(ups + downs))


PRICES = {i.security: _prices(i) for i in INSTRUMENTS}
PRICES[UNKNOWN_SECURITY] = [10_000]
# Off tick, below the table, 9x and a tenth of the nominal price, above the table.
ODD_PRICES = {
    i.security: [
        i.nominal_price_e3 + 1,
        i.nominal_price_e3 + 15,
        5,
        0,
        i.nominal_price_e3 * 9,
        i.nominal_price_e3 // 10,
        10_000_000,
    ]
    for i in INSTRUMENTS
}
ODD_PRICES[UNKNOWN_SECURITY] = [0]
LOTS = {i.security: i.board_lot for i in INSTRUMENTS} | {UNKNOWN_SECURITY: 100}


Step = Command | tuple[str, int, bool]  # ("halt", security, enabled) redefines an instrument


def build_step(pick: Callable[[Sequence[Any]], Any], ts: int) -> Step:
    """One step of a stream; `pick` chooses an element (hypothesis or a seeded Random)."""
    kind = pick(["place"] * 12 + ["cancel"] * 3 + ["amend"] * 5 + ["mass", "halt"])
    # New orders take fresh ids (the command's ts), sometimes a recent one (a duplicate if it
    # still rests); cancels and amends aim at recent ids, usually from the owning account.
    if kind == "place":
        order_id = ts if pick(range(12)) else max(1, ts - pick(range(1, 10)))
    else:
        order_id = max(1, ts - pick(range(1, 25)))
    # An id's security and account follow from the id, so cancels and amends find orders.
    security = (700, 5)[order_id % 2] if pick(range(12)) else pick([700, 5, UNKNOWN_SECURITY])
    names = sorted(ACCOUNTS)
    account = names[order_id // 2 % len(names)] if pick(range(8)) else pick(names)
    price = pick(PRICES[security] if pick(range(10)) else ODD_PRICES[security])
    lot = LOTS[security]
    qty = lot * pick(range(1, 7))
    if pick(range(20)) == 0:
        qty = pick([0, -lot, lot + 1, lot * 3001])
    if kind == "halt":
        return ("halt", pick([700, 5]), pick([True] * 7 + [False]))
    if kind == "mass":
        return MassCancel(ts, account, pick([None, 700, 5, UNKNOWN_SECURITY]))
    if kind == "cancel":
        return CancelOrder(ts, security, order_id, account)
    if kind == "amend":
        return AmendOrder(ts, security, order_id, account, price, qty)
    return PlaceOrder(
        ts,
        security,
        order_id,
        account,
        ACCOUNTS[account],
        pick([Side.BUY, Side.SELL]),
        qty,
        price,
        pick([OrderType.LIMIT] * 3 + [OrderType.ENHANCED_LIMIT, OrderType.MARKET]),
        pick([TimeInForce.DAY] * 3 + [TimeInForce.IOC, TimeInForce.FOK]),
        pick(list(StpMode)),
    )


@st.composite
def streams(draw: st.DrawFn, max_size: int = 60) -> list[Step]:
    size = draw(st.integers(1, max_size))

    def pick(options: Sequence[Any]) -> Any:
        return draw(st.sampled_from(options))

    return [build_step(pick, ts) for ts in range(1, size + 1)]


def seeded_stream(seed: int, size: int) -> list[Step]:
    rng = random.Random(seed)
    return [build_step(rng.choice, ts) for ts in range(1, size + 1)]


def halt(security: int, enabled: bool) -> Instrument:
    base = next(i for i in INSTRUMENTS if i.security == security)
    return replace(base, enabled=enabled)


@dataclass
class Accounting:
    """Tracks each live order from its events: filled + remaining + cancelled = quantity."""

    filled: dict[tuple[int, int], int] = field(default_factory=dict)

    def check(self, events: list[Event], stp_enabled: bool) -> None:
        for ev in events:
            if isinstance(ev, Fill):
                assert ev.qty > 0
                if stp_enabled:
                    assert ev.buy_member != ev.sell_member, "self-trade slipped through"
                for oid in (ev.buy_order_id, ev.sell_order_id):
                    self.filled[(ev.security, oid)] += ev.qty
            elif isinstance(ev, ExecutionReport):
                self._report(ev)

    def _report(self, ev: ExecutionReport) -> None:
        key = (ev.security, ev.order_id)
        if ev.exec_type is ExecType.REJECTED:
            assert ev.reason is not None and ev.cum_qty == ev.leaves_qty == 0
            return
        if ev.exec_type is ExecType.ACCEPTED:
            assert key not in self.filled, "accepted an id that is still live"
            self.filled[key] = 0
        filled = self.filled[key]
        assert ev.cum_qty == filled, f"{key}: cum {ev.cum_qty} != fills {filled}"
        assert ev.leaves_qty >= 0 and ev.cum_qty + ev.leaves_qty <= ev.order_qty
        if ev.exec_type in (ExecType.FILLED, ExecType.CANCELED, ExecType.EXPIRED):
            assert ev.leaves_qty == 0
            cancelled = ev.order_qty - ev.cum_qty
            assert (cancelled == 0) == (ev.exec_type is ExecType.FILLED)
            del self.filled[key]
        else:
            assert ev.cum_qty + ev.leaves_qty == ev.order_qty and ev.leaves_qty > 0
        if ev.last_qty:
            limit = ev.price_e3
            if limit:  # market orders carry no limit price
                ok = ev.last_px_e3 <= limit if ev.side is Side.BUY else ev.last_px_e3 >= limit
                assert ok, f"traded through the limit: {ev}"
