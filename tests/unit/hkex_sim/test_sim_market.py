"""The simulated market: determinism from a seed, HKEX rules via the engine, statistics."""

from __future__ import annotations

from sampan.hkex_sim.market import (
    MAKER_ORDERS_MAX,
    LiquidityConfig,
    Market,
    MarketUpdate,
)
from sampan.matching import ExecType, ExecutionReport, RejectReason, Side, TimeInForce

T0 = 1_700_000_000_000_000_000


def _run(seed: int, steps: int = 200) -> tuple[list[MarketUpdate], Market]:
    market = Market(liquidity=LiquidityConfig(seed=seed, actions_per_s=2_000))
    seen: list[MarketUpdate] = []
    market.add_listener(seen.append)
    market.seed_books(T0)
    for i in range(1, steps + 1):
        market.step(T0 + i * 10_000_000)
    market.engine.validate()
    return seen, market


def test_same_seed_same_market() -> None:
    a, market_a = _run(7)
    b, market_b = _run(7)
    assert a == b
    assert market_a.engine.snapshot() == market_b.engine.snapshot()
    c, _ = _run(8)
    assert a != c


def test_activity_trades_and_statistics_add_up() -> None:
    updates, market = _run(3, steps=300)
    trades = [t for u in updates for t in u.trades]
    assert len(trades) > 20
    for listed in market.securities():
        code = listed.security
        own = [t for t in trades if t.security == code]
        stats = market.statistics(code)
        assert stats.trade_count == len(own)
        assert [t.trade_id for t in own] == list(range(1, len(own) + 1))
        assert stats.volume == sum(t.qty for t in own)
        assert stats.turnover_e3 == sum(t.qty * t.price_e3 for t in own)
        if own:
            assert stats.open_e3 == own[0].price_e3 and stats.last_e3 == own[-1].price_e3
            assert stats.high_e3 == max(t.price_e3 for t in own)
            assert stats.low_e3 == min(t.price_e3 for t in own)
            assert stats.nominal_e3 == stats.last_e3
        bids, asks = market.depth(code)
        if bids and asks:
            assert bids[0][0] < asks[0][0]  # never crossed
        assert len(market._makers[code].open) <= MAKER_ORDERS_MAX + 1


def test_step_is_paced_by_the_injected_clock() -> None:
    market = Market(liquidity=LiquidityConfig(seed=1, actions_per_s=100))
    assert market.step(T0) == 0
    assert market.step(T0 + 500_000_000) == 50
    assert market.step(T0 + 500_000_000) == 0
    assert market.step(T0 + 1_000_000_000) == 50


def test_client_orders_follow_hkex_rules_and_reach_listeners() -> None:
    market = Market(liquidity=LiquidityConfig(seed=1))
    seen: list[MarketUpdate] = []
    market.add_listener(seen.append)
    common = {"ts_ns": T0, "security": 700, "account": "C1", "member": "F1"}
    odd = market.place(**common, side=Side.BUY, qty=50, price_e3=512_000)
    assert isinstance(odd[0], ExecutionReport) and odd[0].reason is RejectReason.NOT_BOARD_LOT
    off_tick = market.place(**common, side=Side.BUY, qty=100, price_e3=512_100)
    assert isinstance(off_tick[0], ExecutionReport)
    assert off_tick[0].reason is RejectReason.NOT_ON_TICK
    far = market.place(**common, side=Side.BUY, qty=100, price_e3=5_000_000)
    assert isinstance(far[0], ExecutionReport)
    assert far[0].reason is RejectReason.PRICE_OUT_OF_RANGE
    too_big = market.place(**common, side=Side.BUY, qty=100 * 3001, price_e3=512_000)
    assert isinstance(too_big[0], ExecutionReport)
    assert too_big[0].reason is RejectReason.TOO_MANY_LOTS
    sell_id = market.allocate_order_id()
    market.place(**common, side=Side.SELL, qty=300, price_e3=513_000, order_id=sell_id)
    events = market.place(
        **{**common, "account": "C2"},
        side=Side.BUY,
        qty=100,
        price_e3=513_000,
        tif=TimeInForce.IOC,
    )
    assert [e.exec_type for e in events if isinstance(e, ExecutionReport)] == [
        ExecType.ACCEPTED,
        ExecType.PARTIALLY_FILLED,
        ExecType.FILLED,
    ]
    assert seen[-1].trades and seen[-1].trades[0].price_e3 == 513_000
    amended = market.amend(
        ts_ns=T0, security=700, order_id=sell_id, account="C1", price_e3=513_500, qty=300
    )
    assert isinstance(amended[0], ExecutionReport) and amended[0].exec_type is ExecType.AMENDED
    cancelled = market.cancel(ts_ns=T0, security=700, order_id=sell_id, account="C1")
    assert isinstance(cancelled[0], ExecutionReport)
    assert cancelled[0].exec_type is ExecType.CANCELED
    assert market.depth(700) == ((), ())


def test_visible_depth_is_the_ten_tick_window() -> None:
    market = Market(liquidity=LiquidityConfig(seed=1))
    common = {"ts_ns": T0, "security": 2800, "account": "C1", "member": "F1"}
    # 2800 trades in the 20..50 band: tick 0.020.
    for price in (25_720, 25_700, 25_540, 25_520):
        market.place(**common, side=Side.BUY, qty=500, price_e3=price)
    bids, _ = market.visible_depth(2800)
    assert [p for p, _, _ in bids] == [25_720, 25_700, 25_540]  # 25_520 is tick level 11
