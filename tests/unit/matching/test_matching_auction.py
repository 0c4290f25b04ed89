"""Auctions in the engine: phase rules, the IEP and the uncross against a naive reference."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from auction_reference import AuctionOrder, reference_iep, reference_uncross

from sampan.market.rules import SPREAD_TABLES
from sampan.market.sessions import Phase
from sampan.matching import (
    AmendOrder,
    CancelOrder,
    CancelRejected,
    Engine,
    Event,
    ExecType,
    ExecutionReport,
    Fill,
    Instrument,
    OrderType,
    PlaceOrder,
    RejectReason,
    Rules,
    Side,
    TimeInForce,
)
from sampan.matching.auction import Equilibrium, band, equilibrium
from sampan.matching.model import AuctionUncrossed, ChangePhase, PhaseChanged

SEC = 700
NOMINAL = 400_000  # HK$400, tick 0.200


def _engine(nominal: int = NOMINAL, rules: Rules | None = None) -> Engine:
    return Engine(rules, [Instrument(SEC, 100, nominal_price_e3=nominal)])


def _to(engine: Engine, *phases: Phase) -> list[Event]:
    """Move through `phases`, each a nanosecond after the last change (changes apply in time
    order)."""
    out: list[Event] = []
    for phase in phases:
        events = engine.process(ChangePhase(engine.phase_since_ns + 1, phase))
        assert isinstance(events[0], PhaseChanged) and not events[0].refused, events[0]
        out += events
    return out


def _open_pre_opening(engine: Engine) -> None:
    _to(engine, Phase.CLOSED, Phase.NOT_YET_OPEN, Phase.POS_ORDER_INPUT)


def _order(
    oid: int, side: Side, qty: int, price: int = 0, account: str = "", ts: int = 2
) -> PlaceOrder:
    kind = OrderType.AT_AUCTION if price == 0 else OrderType.AT_AUCTION_LIMIT
    account = account or f"acc-{oid % 7}"
    return PlaceOrder(ts, SEC, oid, account, f"mem-{oid % 5}", side, qty, price, kind)


def test_without_phase_commands_the_engine_trades_continuously_as_before() -> None:
    engine = _engine()
    assert engine.phase is Phase.CONTINUOUS
    engine.process(PlaceOrder(1, SEC, 1, "a", "ma", Side.SELL, 100, 400_000))
    events = engine.process(PlaceOrder(2, SEC, 2, "b", "mb", Side.BUY, 100, 400_000))
    assert any(isinstance(e, Fill) for e in events)


def test_auction_order_types_are_refused_in_continuous_trading() -> None:
    engine = _engine()
    (report,) = engine.process(_order(1, Side.BUY, 100))
    assert (
        isinstance(report, ExecutionReport) and report.reason is RejectReason.ORDER_TYPE_NOT_ALLOWED
    )


def test_orders_accumulate_crossed_and_uncross_at_one_price() -> None:
    engine = _engine()
    _open_pre_opening(engine)
    engine.process(_order(1, Side.BUY, 300, 401_000))
    engine.process(_order(2, Side.SELL, 200, 399_000))
    engine.process(_order(3, Side.BUY, 100))  # at-auction: first in priority
    engine.process(_order(4, Side.SELL, 400, 400_000))
    engine.validate()  # crossed, and allowed to be
    assert engine.indicative(SEC) == Equilibrium(400_000, 400, Side.SELL, 200)
    bids, asks = engine.depth(SEC)
    assert bids == ((401_000, 300, 1),) and asks == ((399_000, 200, 1), (400_000, 400, 1))
    _to(engine, Phase.POS_NO_CANCEL, Phase.POS_RANDOM_MATCHING)
    events = _to(engine, Phase.BLOCKING)
    fills = [e for e in events if isinstance(e, Fill)]
    assert [(f.buy_order_id, f.sell_order_id, f.qty, f.price_e3) for f in fills] == [
        (3, 2, 100, 400_000),
        (1, 2, 100, 400_000),
        (1, 4, 200, 400_000),
    ]
    assert events[-1][1:] == (SEC, 400_000, 400)
    # the at-auction limit sell left over becomes a limit order; nothing at-auction is left
    assert engine.resting_orders(SEC) == [(4, Side.SELL, 400_000, 400, 200, 200)]
    engine.validate()
    _to(engine, Phase.CONTINUOUS)
    events = engine.process(PlaceOrder(3, SEC, 9, "z", "mz", Side.BUY, 200, 400_000))
    assert any(isinstance(e, Fill) for e in events)  # continuous trading matches again


def test_fill_aggressor_is_the_later_order_and_its_report_comes_last() -> None:
    engine = _engine()
    _open_pre_opening(engine)
    engine.process(_order(1, Side.SELL, 100, 400_000))
    engine.process(_order(2, Side.BUY, 100, 400_000))
    _to(engine, Phase.POS_NO_CANCEL, Phase.POS_RANDOM_MATCHING)
    events = _to(engine, Phase.BLOCKING)
    fill = next(e for e in events if isinstance(e, Fill))
    assert fill.aggressor_side is Side.BUY
    reports = [e for e in events if isinstance(e, ExecutionReport) and e.last_qty]
    assert [r.order_id for r in reports] == [1, 2]
    assert all(r.exec_type is ExecType.FILLED and r.exec_id == fill.exec_id for r in reports)


def test_unmatched_at_auction_orders_expire_after_the_opening_auction() -> None:
    engine = _engine()
    _open_pre_opening(engine)
    engine.process(_order(1, Side.BUY, 500))
    engine.process(_order(2, Side.SELL, 200, 400_000))
    _to(engine, Phase.POS_NO_CANCEL, Phase.POS_RANDOM_MATCHING)
    events = _to(engine, Phase.BLOCKING)
    expired = [
        e for e in events if isinstance(e, ExecutionReport) and e.exec_type is ExecType.EXPIRED
    ]
    assert [(e.order_id, e.cum_qty) for e in expired] == [(1, 200)]
    assert engine.resting_orders(SEC) == []


def test_phase_rules_for_requests() -> None:
    engine = _engine()
    _open_pre_opening(engine)
    ioc = PlaceOrder(2, SEC, 1, "a", "m", Side.BUY, 100, 400_000, OrderType.LIMIT, TimeInForce.IOC)
    assert engine.process(ioc)[0].reason is RejectReason.INVALID_TIME_IN_FORCE  # type: ignore[union-attr]
    enhanced = PlaceOrder(2, SEC, 2, "a", "m", Side.BUY, 100, 400_000, OrderType.ENHANCED_LIMIT)
    assert engine.process(enhanced)[0].reason is RejectReason.ORDER_TYPE_NOT_ALLOWED  # type: ignore[union-attr]
    # a plain limit order in an auction is an at-auction limit order
    (accepted,) = engine.process(PlaceOrder(2, SEC, 3, "a", "m", Side.BUY, 100, 399_000))
    assert accepted.exec_type is ExecType.ACCEPTED  # type: ignore[union-attr]
    assert engine.process(CancelOrder(3, SEC, 3, "a"))[0].exec_type is ExecType.CANCELED  # type: ignore[union-attr]
    engine.process(_order(4, Side.BUY, 100, 399_000, account="a"))
    engine.process(_order(5, Side.SELL, 100, 401_000, account="b"))
    (amended,) = engine.process(AmendOrder(3, SEC, 4, "a", 399_200, 200))
    assert amended.exec_type is ExecType.AMENDED  # type: ignore[union-attr]
    _to(engine, Phase.POS_NO_CANCEL)
    # no-cancel: buys at most the lowest ask (401.000), sells at least the highest bid (399.200)
    too_high = engine.process(_order(6, Side.BUY, 100, 401_200))
    assert too_high[0].reason is RejectReason.PRICE_OUTSIDE_AUCTION_LIMITS  # type: ignore[union-attr]
    too_low = engine.process(_order(7, Side.SELL, 100, 399_000))
    assert too_low[0].reason is RejectReason.PRICE_OUTSIDE_AUCTION_LIMITS  # type: ignore[union-attr]
    assert engine.process(_order(8, Side.BUY, 100, 401_000))[0].exec_type is ExecType.ACCEPTED  # type: ignore[union-attr]
    (refused,) = engine.process(CancelOrder(4, SEC, 4, "a"))
    assert isinstance(refused, CancelRejected) and refused.reason is RejectReason.NOT_IN_THIS_PHASE
    _to(engine, Phase.POS_RANDOM_MATCHING, Phase.BLOCKING)
    late = engine.process(_order(9, Side.BUY, 100, 400_000))
    assert late[0].reason is RejectReason.NOT_IN_THIS_PHASE  # type: ignore[union-attr]


def test_illegal_phase_change_is_refused_and_changes_nothing() -> None:
    engine = _engine()
    (event,) = engine.process(ChangePhase(1, Phase.POS_ORDER_INPUT))
    assert event == PhaseChanged(1, Phase.POS_ORDER_INPUT, Phase.CONTINUOUS, True)
    assert engine.phase is Phase.CONTINUOUS


def test_a_resent_change_is_stale_so_a_schedule_may_resend_its_day() -> None:
    engine = _engine()
    day = [(10, Phase.LUNCH_BREAK), (20, Phase.CONTINUOUS)]
    for ts, phase in day:
        engine.process(ChangePhase(ts, phase))
    for ts, phase in day:  # resent after a restart: nothing moves back to lunch
        (event,) = engine.process(ChangePhase(ts, phase))
        assert isinstance(event, PhaseChanged) and event.refused
    assert engine.phase is Phase.CONTINUOUS and engine.phase_since_ns == 20


def test_an_unscheduled_venue_joins_a_schedule_at_a_day_start_closing_its_day() -> None:
    engine = _engine()
    _trade(engine, 410_000, 1)
    engine.process(PlaceOrder(1, SEC, 3, "r", "mr", Side.BUY, 100, 405_000))
    events = _to(engine, Phase.NOT_YET_OPEN)
    expired = [
        e for e in events if isinstance(e, ExecutionReport) and e.exec_type is ExecType.EXPIRED
    ]
    assert [e.order_id for e in expired] == [3]
    _to(engine, Phase.POS_ORDER_INPUT)
    assert engine.day_figures(SEC)[3] == 410_000  # the previous close


def _trade(engine: Engine, price: int, oid: int) -> None:
    engine.process(PlaceOrder(1, SEC, oid, "x", "mx", Side.SELL, 100, price))
    engine.process(PlaceOrder(1, SEC, oid + 1, "y", "my", Side.BUY, 100, price))


def test_closing_auction_band_close_and_roll_over() -> None:
    engine = _engine()
    _trade(engine, 410_000, 1)
    engine.process(PlaceOrder(1, SEC, 3, "r", "mr", Side.BUY, 100, 405_000))  # rests into CAS
    _to(engine, Phase.CAS_REFERENCE_PRICE_FIXING)
    assert engine.day_figures(SEC)[:3] == (410_000, 389_600, 430_400)  # +/-5%, onto ticks
    _to(engine, Phase.CAS_ORDER_INPUT)
    out_of_band = engine.process(_order(10, Side.SELL, 100, 389_400))
    assert out_of_band[0].reason is RejectReason.PRICE_OUTSIDE_AUCTION_LIMITS  # type: ignore[union-attr]
    engine.process(_order(11, Side.SELL, 300, 404_000))
    engine.process(_order(12, Side.BUY, 100))
    _to(engine, Phase.CAS_NO_CANCEL, Phase.CAS_RANDOM_CLOSE)
    events = _to(engine, Phase.CLOSED)
    uncrossed = next(e for e in events if isinstance(e, AuctionUncrossed))
    # 404 and 405 both trade 200; at 404 the imbalance is 100 (sell), at 405 also 100:
    # nearest the reference price 410 wins.
    assert uncrossed[1:] == (SEC, 405_000, 200)
    expired = [
        e for e in events if isinstance(e, ExecutionReport) and e.exec_type is ExecType.EXPIRED
    ]
    assert [e.order_id for e in expired] == [11]  # every order left expires at the close
    assert engine.resting_orders(SEC) == []
    _to(engine, Phase.NOT_YET_OPEN, Phase.POS_ORDER_INPUT)
    reference, low, high, prev_close = engine.day_figures(SEC)
    assert (reference, prev_close) == (405_000, 405_000)
    assert (low, high) == (344_400, 465_600)  # +/-15% of the previous close


def test_closing_auction_without_an_iep_matches_at_the_reference_price() -> None:
    engine = _engine()
    _trade(engine, 410_000, 1)
    _to(engine, Phase.CAS_REFERENCE_PRICE_FIXING, Phase.CAS_ORDER_INPUT)
    engine.process(_order(11, Side.SELL, 300))
    engine.process(_order(12, Side.BUY, 100))
    assert engine.indicative(SEC) is None
    _to(engine, Phase.CAS_NO_CANCEL, Phase.CAS_RANDOM_CLOSE)
    events = _to(engine, Phase.CLOSED)
    uncrossed = next(e for e in events if isinstance(e, AuctionUncrossed))
    assert uncrossed[1:] == (SEC, 410_000, 100)


def test_snapshot_round_trip_in_the_middle_of_an_auction() -> None:
    engine = _engine()
    _open_pre_opening(engine)
    engine.process(_order(1, Side.BUY, 300, 401_000))
    engine.process(_order(2, Side.SELL, 200))
    engine.process(_order(3, Side.SELL, 200, 399_000))
    restored = Engine.restore(engine.snapshot())
    assert restored.snapshot() == engine.snapshot()
    restored.validate()
    tail = [Phase.POS_NO_CANCEL, Phase.POS_RANDOM_MATCHING, Phase.BLOCKING]
    assert _to(restored, *tail) == _to(engine, *tail)


def test_band_rounds_inward_onto_ticks() -> None:
    table = SPREAD_TABLES[1]
    assert band(table, 100_000, 1_500) == (85_000, 115_000)
    assert band(table, 10_010, 500) == (9_510, 10_510)  # 9.5095 up to 9.51, 10.5105 down
    assert band(table, 0, 500) == (0, 0)


@pytest.mark.parametrize(
    ("bids", "asks", "aa", "reference", "expected"),
    [
        # rule 1: most volume
        ([(101, 5)], [(99, 3), (101, 5)], (0, 0), 100, Equilibrium(101, 5, Side.SELL, 3)),
        # rule 2: same volume at 100 and 101, smaller imbalance at 101
        ([(101, 4), (100, 2)], [(100, 4)], (0, 0), 100, Equilibrium(101, 4, None, 0)),
        # rule 3: 99..101 trade 5 with no imbalance; 101 is nearest the reference 104
        ([(101, 5)], [(99, 5)], (0, 0), 104, Equilibrium(101, 5, None, 0)),
        # rule 4: 98 and 102 as near the reference 100 as each other: the higher
        ([(102, 5)], [(98, 5)], (0, 0), 100, Equilibrium(102, 5, None, 0)),
        # no price trades anything
        ([(99, 5)], [(101, 5)], (0, 0), 100, None),
        # at-auction orders count at every price
        ([], [(100, 3), (101, 3)], (10, 0), 0, Equilibrium(101, 6, Side.BUY, 4)),
    ],
)
def test_each_iep_rule_on_a_small_book(
    bids: list[tuple[int, int]],
    asks: list[tuple[int, int]],
    aa: tuple[int, int],
    reference: int,
    expected: Equilibrium | None,
) -> None:
    assert equilibrium(bids, asks, aa[0], aa[1], reference) == expected


# ------------------------------------------------------------------ against the reference


def _random_auction(
    rng: random.Random, closing: bool
) -> tuple[Engine, dict[int, AuctionOrder], int]:
    """An engine in an auction's random period, and the reference's own view of its book."""
    nominal = rng.choice([0, 100_000, 100_000, 20_000])
    engine = _engine(nominal)
    ticks = {100_000: 100, 20_000: 20, 0: 100}[nominal]
    mid = nominal or 100_000
    if closing:
        _trade(engine, mid, 900_001)
        _to(engine, Phase.CAS_REFERENCE_PRICE_FIXING, Phase.CAS_ORDER_INPUT)
        reference = mid
        arrival_base = 0
    else:
        _open_pre_opening(engine)
        reference = nominal
        arrival_base = 0
    book: dict[int, AuctionOrder] = {}
    arrival = arrival_base
    spread = rng.choice([1, 2, 3, 6])
    n_orders = rng.choice([1, 2, 4, 8, 20, 60])
    for oid in range(1, n_orders + 1):
        side = rng.choice([Side.BUY, Side.SELL])
        price = 0 if rng.random() < 0.15 else mid + ticks * rng.randint(-spread, spread)
        qty = 100 * rng.choice([1, 1, 2, 3, 5])
        events = engine.process(_order(oid, side, qty, price, account=f"a{oid}"))
        if events[0].exec_type is ExecType.ACCEPTED:  # type: ignore[union-attr]
            arrival += 1
            book[oid] = AuctionOrder(oid, side, price, qty, arrival)
        if book and rng.random() < 0.2:  # cancel or amend a random live order
            target = rng.choice(sorted(book))
            order = book[target]
            if rng.random() < 0.5:
                engine.process(CancelOrder(3, SEC, target, f"a{target}"))
                del book[target]
            else:
                new_qty = 100 * rng.choice([1, 2, 4])
                new_price = (
                    order.price_e3
                    if order.price_e3 == 0 or rng.random() < 0.5
                    else (mid + ticks * rng.randint(-spread, spread))
                )
                (ev,) = engine.process(AmendOrder(3, SEC, target, f"a{target}", new_price, new_qty))
                if isinstance(ev, ExecutionReport):
                    keeps = new_price == order.price_e3 and new_qty < order.leaves
                    order.price_e3, order.leaves = new_price, new_qty
                    if not keeps:
                        arrival += 1
                        order.arrival = arrival
    if closing:
        _to(engine, Phase.CAS_NO_CANCEL, Phase.CAS_RANDOM_CLOSE)
    else:
        _to(engine, Phase.POS_NO_CANCEL, Phase.POS_RANDOM_MATCHING)
    engine.validate()
    return engine, book, reference


@pytest.mark.parametrize("closing", [False, True])
def test_engine_agrees_with_the_reference_auction_on_thousands_of_books(closing: bool) -> None:
    rng = random.Random(1515 + closing)
    decided_by: Counter[int | None] = Counter()
    for _ in range(2000 if not closing else 1000):
        engine, book, reference = _random_auction(rng, closing)
        expected = reference_iep(list(book.values()), reference)
        decided_by[expected.rule if expected else None] += 1
        got = engine.indicative(SEC)
        if expected is None:
            assert got is None
        else:
            assert got is not None and (got.price_e3, got.qty) == (expected.price_e3, expected.qty)
        events = _to(engine, Phase.CLOSED if closing else Phase.BLOCKING)
        engine.validate()
        fills = [(f.buy_order_id, f.sell_order_id, f.qty) for f in events if isinstance(f, Fill)]
        uncrossed = next(e for e in events if isinstance(e, AuctionUncrossed))
        if expected is None:
            if closing:
                # matched at the reference price instead
                want = reference_uncross(list(book.values()), reference)
                assert fills == want
            else:
                assert fills == [] and uncrossed.qty == 0
            continue
        assert fills == reference_uncross(list(book.values()), expected.price_e3)
        assert uncrossed.price_e3 == expected.price_e3 and uncrossed.qty == expected.qty
        assert all(
            isinstance(f, Fill) and f.price_e3 == expected.price_e3
            for f in events
            if isinstance(f, Fill)
        )
    # every rule of the IEP decided some books, and some had no IEP at all
    assert all(decided_by[rule] >= 5 for rule in (1, 2, 3, 4, None)), decided_by
