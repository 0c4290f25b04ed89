"""Behaviour of the engine and its rules, example by example."""

from __future__ import annotations

import pytest

from sampan.market.rules import (
    SPREAD_TABLE_PART_A,
    SPREAD_TABLE_PART_A_BEFORE_2025_08,
    SPREAD_TABLES,
)
from sampan.matching import (
    AmendOrder,
    CancelOrder,
    CancelReason,
    Engine,
    ExecType,
    ExecutionReport,
    Fill,
    Instrument,
    InvariantError,
    MassCancel,
    MassCancelled,
    OrderStatus,
    OrderType,
    PlaceOrder,
    Rules,
    Side,
    StpMode,
    TimeInForce,
)
from sampan.matching.model import IllegalTransitionError

HSBC = Instrument(5, 400, nominal_price_e3=60_000)


def place(
    oid: int, side: Side, qty: int, price: int, account: str = "", **kw: object
) -> PlaceOrder:
    account = account or f"acc{oid}"
    member = str(kw.pop("member", f"mem{oid}"))
    return PlaceOrder(oid, 5, oid, account, member, side, qty, price, **kw)  # type: ignore[arg-type]


def kinds(events: list) -> list[str]:
    return [
        ev.exec_type.name if isinstance(ev, ExecutionReport) else type(ev).__name__ for ev in events
    ]


def run(engine: Engine, *commands: object) -> list:
    out: list = []
    for c in commands:
        out += engine.process(c)  # type: ignore[arg-type]
        engine.validate()
    return out


@pytest.mark.parametrize(
    ("table", "price", "tick"),
    [
        (SPREAD_TABLE_PART_A, 250, 1),
        (SPREAD_TABLE_PART_A, 255, 5),
        (SPREAD_TABLE_PART_A, 10_000, 10),
        (SPREAD_TABLE_PART_A, 10_010, 10),
        (SPREAD_TABLE_PART_A, 20_020, 20),
        (SPREAD_TABLE_PART_A_BEFORE_2025_08, 10_020, 20),
        (SPREAD_TABLE_PART_A_BEFORE_2025_08, 20_050, 50),
        (SPREAD_TABLE_PART_A, 9_995_000, 5_000),
    ],
)
def test_tick_by_spread_table(table: int, price: int, tick: int) -> None:
    assert SPREAD_TABLES[table].tick_e3(price) == tick


def test_tick_steps_cross_band_edges() -> None:
    new, old = SPREAD_TABLES[SPREAD_TABLE_PART_A], SPREAD_TABLES[SPREAD_TABLE_PART_A_BEFORE_2025_08]
    assert new.tick_up(9_990, 2) == 10_010 and old.tick_up(9_990, 2) == 10_020
    assert old.tick_down(20_050, 2) == 19_980
    assert new.tick_up(9_995_000, 3) == 9_995_000 and new.tick_down(11, 5) == 10


def test_price_time_priority_and_partial_fill() -> None:
    e = Engine(instruments=[HSBC])
    events = run(
        e,
        place(1, Side.SELL, 400, 60_100),
        place(2, Side.SELL, 400, 60_050),
        place(3, Side.SELL, 800, 60_050),
        place(4, Side.BUY, 1_600, 60_100),
    )
    fills = [ev for ev in events if isinstance(ev, Fill)]
    assert [(f.sell_order_id, f.price_e3, f.qty) for f in fills] == [
        (2, 60_050, 400),
        (3, 60_050, 800),
        (1, 60_100, 400),
    ]
    assert all(f.aggressor_side is Side.BUY and f.buy_order_id == 4 for f in fills)
    assert len({f.exec_id for f in fills}) == 3
    assert e.depth(5) == ((), ())


def test_depth_has_counts_and_is_best_first() -> None:
    e = Engine(instruments=[HSBC])
    run(
        e,
        place(1, Side.BUY, 400, 59_950),
        place(2, Side.BUY, 800, 60_000),
        place(3, Side.BUY, 400, 60_000),
        place(4, Side.SELL, 400, 60_100),
    )
    bids, asks = e.depth(5, levels=5)
    assert bids == ((60_000, 1_200, 2), (59_950, 400, 1))
    assert asks == ((60_100, 400, 1),)
    assert e.depth(5, levels=1) == (((60_000, 1_200, 2),), ((60_100, 400, 1),))


def test_amend_down_keeps_priority_and_up_loses_it() -> None:
    e = Engine(instruments=[HSBC])
    run(e, place(1, Side.BUY, 800, 60_000), place(2, Side.BUY, 400, 60_000))
    amended = run(e, AmendOrder(3, 5, 1, "acc1", 60_000, 400))
    assert kinds(amended) == ["AMENDED"] and amended[0].leaves_qty == 400
    assert [r[0] for r in e.resting_orders(5)] == [1, 2]
    run(e, AmendOrder(4, 5, 1, "acc1", 60_000, 1_200))
    assert [r[0] for r in e.resting_orders(5)] == [2, 1]


def test_amend_price_can_trade_at_once() -> None:
    e = Engine(instruments=[HSBC])
    run(e, place(1, Side.SELL, 400, 60_100), place(2, Side.BUY, 800, 60_000))
    events = run(e, AmendOrder(3, 5, 2, "acc2", 60_100, 800))
    assert kinds(events) == ["AMENDED", "Fill", "FILLED", "PARTIALLY_FILLED"]
    assert e.resting_orders(5) == [(2, Side.BUY, 60_100, 800, 400, 400)]


@pytest.mark.parametrize(
    ("mode", "expected", "resting_left"),
    [
        (StpMode.CANCEL_RESTING, ["ACCEPTED", "CANCELED", "Fill", "FILLED", "FILLED"], []),
        (StpMode.CANCEL_INCOMING, ["ACCEPTED", "CANCELED"], [1, 2]),
        (StpMode.CANCEL_BOTH, ["ACCEPTED", "CANCELED", "CANCELED"], [2]),
    ],
)
def test_self_trade_prevention_modes(
    mode: StpMode, expected: list[str], resting_left: list[int]
) -> None:
    e = Engine(instruments=[HSBC])
    run(
        e,
        place(1, Side.SELL, 400, 60_000, account="a-1", member="firm"),
        place(2, Side.SELL, 400, 60_050, account="b-1", member="other"),
    )
    incoming = place(3, Side.BUY, 400, 60_050, account="a-2", member="firm", stp=mode)
    events = run(e, incoming)
    assert kinds(events) == expected
    cancels = [ev for ev in events if getattr(ev, "exec_type", None) is ExecType.CANCELED]
    assert all(ev.reason is CancelReason.SELF_TRADE_PREVENTED for ev in cancels)
    assert [r[0] for r in e.resting_orders(5)] == resting_left


def test_hkex_rules_allow_self_trades_and_match_at_best_only() -> None:
    e = Engine(Rules.hkex(), [HSBC])
    run(
        e,
        place(1, Side.SELL, 400, 60_000, member="firm"),
        place(2, Side.SELL, 400, 60_050, member="firm"),
    )
    events = run(e, place(3, Side.BUY, 800, 60_000, member="firm"))
    assert kinds(events) == ["ACCEPTED", "Fill", "FILLED", "PARTIALLY_FILLED"]
    assert e.depth(5) == (((60_000, 400, 1),), ((60_050, 400, 1),))


def test_enhanced_limit_sweeps_and_rests_the_rest() -> None:
    e = Engine(Rules.hkex(), [HSBC])
    run(e, place(1, Side.SELL, 400, 60_000), place(2, Side.SELL, 400, 60_050))
    order = place(3, Side.BUY, 1_200, 60_100, order_type=OrderType.ENHANCED_LIMIT)
    events = run(e, order)
    assert [ev.price_e3 for ev in events if isinstance(ev, Fill)] == [60_000, 60_050]
    assert e.depth(5) == (((60_100, 400, 1),), ())


def test_ioc_remainder_expires_and_special_limit_is_enhanced_ioc() -> None:
    e = Engine(Rules.hkex(), [HSBC])
    run(e, place(1, Side.SELL, 400, 60_000), place(2, Side.SELL, 400, 60_050))
    special = place(
        3, Side.BUY, 1_200, 60_050, order_type=OrderType.ENHANCED_LIMIT, tif=TimeInForce.IOC
    )
    events = run(e, special)
    assert kinds(events)[-1] == "EXPIRED" and events[-1].cum_qty == 800
    assert e.depth(5) == ((), ())


def test_market_order_stops_at_the_collar() -> None:
    e = Engine(Rules(market_collar_bps=10), [HSBC])  # 0.1% of 60.00 = 0.06
    run(
        e,
        place(1, Side.SELL, 400, 60_000),
        place(2, Side.SELL, 400, 60_050),
        place(3, Side.SELL, 400, 60_100),
    )
    market = place(4, Side.BUY, 1_200, 0, order_type=OrderType.MARKET, tif=TimeInForce.IOC)
    events = run(e, market)
    assert [ev.price_e3 for ev in events if isinstance(ev, Fill)] == [60_000, 60_050]
    assert kinds(events)[-1] == "EXPIRED"
    assert e.depth(5) == ((), ((60_100, 400, 1),))


@pytest.mark.parametrize(("bps", "filled_qty"), [(25, 1_000), (50, 2_000)])
def test_sell_market_collar_is_never_looser_than_its_bps(bps: int, filled_qty: int) -> None:
    # 0.200 x (1 - 25 bps) = 0.1995: the 0.199 bid lies beyond it; at 50 bps it is exactly on it.
    penny = Instrument(8, 1_000, nominal_price_e3=200)
    e = Engine(Rules(market_collar_bps=bps), [penny])
    run(
        e,
        PlaceOrder(1, 8, 1, "b1", "m1", Side.BUY, 1_000, 200),
        PlaceOrder(2, 8, 2, "b2", "m2", Side.BUY, 1_000, 199),
    )
    market = PlaceOrder(3, 8, 3, "s", "m3", Side.SELL, 2_000, 0, OrderType.MARKET, TimeInForce.IOC)
    events = run(e, market)
    assert events[-1].cum_qty == filled_qty


def test_fok_fills_completely() -> None:
    e = Engine(instruments=[HSBC])
    run(e, place(1, Side.SELL, 400, 60_000), place(2, Side.SELL, 400, 60_050))
    events = run(e, place(3, Side.BUY, 800, 60_050, tif=TimeInForce.FOK))
    assert kinds(events)[-1] == "FILLED"


def test_mass_cancel_by_account_across_books() -> None:
    other = Instrument(700, 100, nominal_price_e3=400_000)
    e = Engine(instruments=[HSBC, other])
    run(
        e,
        place(1, Side.BUY, 400, 60_000, account="x"),
        place(2, Side.BUY, 400, 59_950, account="y"),
        PlaceOrder(3, 700, 3, "x", "m", Side.SELL, 100, 400_000),
    )
    events = run(e, MassCancel(4, "x"))
    assert kinds(events) == ["CANCELED", "CANCELED", "MassCancelled"]
    assert isinstance(events[-1], MassCancelled) and events[-1].cancelled_count == 2
    assert [r[0] for r in e.resting_orders(5)] == [2] and e.resting_orders(700) == []


def test_cancel_reports_cum_and_zero_leaves() -> None:
    e = Engine(instruments=[HSBC])
    run(e, place(1, Side.BUY, 800, 60_000), place(2, Side.SELL, 400, 60_000))
    (ev,) = run(e, CancelOrder(3, 5, 1, "acc1"))
    assert (ev.exec_type, ev.cum_qty, ev.leaves_qty, ev.order_qty) == (
        ExecType.CANCELED,
        400,
        0,
        800,
    )


def test_same_input_gives_same_exec_ids() -> None:
    commands = [place(1, Side.SELL, 400, 60_000), place(2, Side.BUY, 400, 60_000)]
    first, second = Engine(instruments=[HSBC]), Engine(instruments=[HSBC])
    assert run(first, *commands) == run(second, *commands)
    (fill,) = [ev for ev in run(Engine(instruments=[HSBC]), *commands) if isinstance(ev, Fill)]
    assert fill.exec_id == 5 * 10**13 + 3


def test_order_status_machine_rejects_illegal_moves() -> None:
    assert OrderStatus.NEW.to(OrderStatus.PARTIALLY_FILLED) is OrderStatus.PARTIALLY_FILLED
    with pytest.raises(IllegalTransitionError):
        OrderStatus.FILLED.to(OrderStatus.CANCELED)
    with pytest.raises(IllegalTransitionError):
        OrderStatus.CANCELED.to(OrderStatus.NEW)


def test_validate_catches_a_corrupted_aggregate() -> None:
    e = Engine(instruments=[HSBC])
    run(e, place(1, Side.BUY, 400, 60_000))
    e._books[5].bids.levels[60_000].qty += 1
    with pytest.raises(InvariantError):
        e.validate()


def test_events_are_immutable_and_equal_only_to_their_own_type() -> None:
    report = ExecutionReport(ExecType.ACCEPTED, 1, 5, 1, "acc1", Side.BUY, 60_000, 400, 0, 400)
    same = ExecutionReport(*report)
    assert report == same and (report != same) is False and hash(report) == hash(same)
    assert report != tuple(report) and tuple(report) != report
    assert MassCancelled(1, "acc1", None, 0) != (1, "acc1", None, 0)
    with pytest.raises(AttributeError):
        report.cum_qty = 400  # type: ignore[misc]
