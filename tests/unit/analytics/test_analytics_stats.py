"""Session statistics and movers: a naive recomputation agrees, redelivery counts nothing twice."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from sampan.analytics.movers import MOVERS_MAX, movers
from sampan.analytics.stats import SessionStats, Trade, apply
from sampan.market.calendar import trading_day_iso as trading_day

DAY_NS = 1_764_806_400 * 10**9  # 2025-12-04 00:00 UTC: 08:00 in Hong Kong
PREV_E3 = 100_000


def trade(offset: int, price_e3: int, qty: int, ts_ns: int = DAY_NS, partition: int = 0) -> Trade:
    return Trade("INTERNAL", 700, price_e3, qty, ts_ns, partition, offset)


trades_strategy = st.lists(
    st.tuples(st.integers(1, 10**9), st.integers(1, 10**7)), min_size=1, max_size=60
)


@given(trades_strategy, st.randoms(use_true_random=False))
@settings(max_examples=80, deadline=None)
def test_equals_a_naive_recomputation_with_redelivery(
    pairs: list[tuple[int, int]], rnd: random.Random
) -> None:
    sequence = [trade(i, p, q, DAY_NS + i) for i, (p, q) in enumerate(pairs)]
    # A crash replays a suffix from some earlier offset, possibly several times.
    delivered = list(sequence)
    for _ in range(rnd.randint(0, 3)):
        cut = rnd.randint(0, len(sequence))
        delivered += sequence[cut:]
    state = None
    for t in delivered:
        state = apply(state, t, PREV_E3)
    assert state is not None
    prices = [p for p, _ in pairs]
    assert state.volume == sum(q for _, q in pairs)
    assert state.turnover_e3 == sum(p * q for p, q in pairs)
    assert (state.open_e3, state.last_e3) == (prices[0], prices[-1])
    assert (state.high_e3, state.low_e3) == (max(prices), min(prices))
    assert state.trades == len(pairs)
    # VWAP and change, rounded half away from zero, checked with exact fractions.
    vwap = state.vwap_e3
    assert vwap is not None
    assert abs(2 * (vwap * state.volume - state.turnover_e3)) <= state.volume
    change = state.change_bp
    assert change is not None
    assert abs(2 * (change * PREV_E3 - (prices[-1] - PREV_E3) * 10_000)) <= PREV_E3
    assert SessionStats.from_state(state.to_state()) == state


def test_a_new_trading_day_starts_a_new_session_and_late_trades_are_ignored() -> None:
    first = apply(None, trade(0, 101_000, 100), PREV_E3)
    next_day = apply(first, trade(1, 99_000, 200, DAY_NS + 86_400 * 10**9), 101_000)
    assert next_day.day > first.day
    assert (next_day.volume, next_day.open_e3, next_day.prev_close_e3) == (200, 99_000, 101_000)
    late = apply(next_day, trade(2, 1_000, 5, DAY_NS - 3_600 * 10**9), 101_000)
    assert late.volume == 200 and late.applied_offset(0) == 2
    # Offsets are tracked per partition: another partition's offset 0 is new.
    other = apply(late, trade(0, 99_500, 10, DAY_NS + 86_400 * 10**9, partition=1), 101_000)
    assert other.volume == 210


def test_the_record_is_empty_before_the_first_trade_and_turnover_is_exact() -> None:
    state = apply(None, trade(0, 123_456, 1_000_000_000), PREV_E3)
    record = state.to_record()
    assert record["turnover_e3"] == 123_456 * 1_000_000_000
    assert record["last_e3"] == 123_456 and record["prev_close_e3"] == PREV_E3
    assert SessionStats("INTERNAL", 700, "2025-12-04", 0).change_bp is None


def test_hong_kong_day_boundaries() -> None:
    midnight_hk_ns = 1_764_777_600 * 10**9  # 2025-12-03 16:00 UTC = 2025-12-04 00:00 HKT
    assert trading_day(midnight_hk_ns - 1) == "2025-12-03"
    assert trading_day(midnight_hk_ns) == "2025-12-04"


def test_movers_rank_rises_and_falls_of_enabled_securities_deterministically() -> None:
    day = trading_day(DAY_NS)
    states = []
    for security in range(1, 30):
        change = (security - 15) * 100  # -14% .. +14% in 1% steps
        last = PREV_E3 + PREV_E3 * change // 10_000
        t = Trade("INTERNAL", security, last, 100, DAY_NS, 0, security)
        states.append(apply(None, t, PREV_E3))
    states.append(apply(None, Trade("HKEX", 1, 200_000, 1, DAY_NS, 0, 99), PREV_E3))
    enabled = {s: s != 29 for s in range(1, 30)}  # 29 (the largest rise) is disabled
    result = movers("INTERNAL", reversed(states), enabled, day)
    assert [m["security"] for m in result["top"]] == list(range(28, 28 - MOVERS_MAX, -1))
    assert [m["security"] for m in result["bottom"]] == list(range(1, 1 + MOVERS_MAX))
    assert result["top"][0]["change_bp"] == 1300 and result["bottom"][0]["change_bp"] == -1400
    assert 15 not in {m["security"] for m in result["top"] + result["bottom"]}
    assert movers("INTERNAL", states, enabled, day) == result
    assert movers("INTERNAL", states, enabled, "2000-01-01")["top"] == []
