"""One test per reject reason: each names the smallest command stream that triggers it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sampan.matching import (
    AmendOrder,
    CancelOrder,
    CancelRejected,
    Engine,
    ExecType,
    ExecutionReport,
    Instrument,
    MassCancel,
    OrderType,
    PlaceOrder,
    RejectReason,
    RequestKind,
    Rules,
    Side,
    TimeInForce,
)

TENCENT = Instrument(700, 100, nominal_price_e3=400_000)


def engine(rules: Rules | None = None) -> Engine:
    return Engine(rules, [TENCENT])


def buy(order_id: int = 1, qty: int = 100, price_e3: int = 400_000, **kw: object) -> PlaceOrder:
    return PlaceOrder(1, 700, order_id, "acc-a", "mem-a", Side.BUY, qty, price_e3, **kw)  # type: ignore[arg-type]


def sell(order_id: int = 2, qty: int = 100, price_e3: int = 400_000, **kw: object) -> PlaceOrder:
    return PlaceOrder(1, 700, order_id, "acc-b", "mem-b", Side.SELL, qty, price_e3, **kw)  # type: ignore[arg-type]


def rejected_new(events: list, reason: RejectReason) -> None:
    assert len(events) == 1
    (ev,) = events
    assert isinstance(ev, ExecutionReport)
    assert ev.exec_type is ExecType.REJECTED and ev.reason is reason


def rejected_request(events: list, kind: RequestKind, reason: RejectReason) -> None:
    assert len(events) == 1
    (ev,) = events
    assert isinstance(ev, CancelRejected)
    assert ev.response_to is kind and ev.reason is reason


def test_unknown_security() -> None:
    e = engine()
    rejected_new(e.process(replace(buy(), security=1)), RejectReason.UNKNOWN_SECURITY)
    cancel = CancelOrder(1, 1, 1, "acc-a")
    rejected_request(e.process(cancel), RequestKind.CANCEL, RejectReason.UNKNOWN_SECURITY)
    amend = AmendOrder(1, 1, 1, "acc-a", 400_000, 100)
    rejected_request(e.process(amend), RequestKind.AMEND, RejectReason.UNKNOWN_SECURITY)
    mass = MassCancel(1, "acc-a", 1)
    rejected_request(e.process(mass), RequestKind.MASS_CANCEL, RejectReason.UNKNOWN_SECURITY)


def test_security_halted_rejects_new_and_amend_but_allows_cancel() -> None:
    e = engine()
    e.process(buy())
    e.add_instrument(replace(TENCENT, enabled=False))
    rejected_new(e.process(buy(order_id=3)), RejectReason.SECURITY_HALTED)
    amend = AmendOrder(2, 700, 1, "acc-a", 400_000, 200)
    rejected_request(e.process(amend), RequestKind.AMEND, RejectReason.SECURITY_HALTED)
    (cancelled,) = e.process(CancelOrder(3, 700, 1, "acc-a"))
    assert isinstance(cancelled, ExecutionReport) and cancelled.exec_type is ExecType.CANCELED


@pytest.mark.parametrize("qty", [0, -100])
def test_invalid_qty(qty: int) -> None:
    rejected_new(engine().process(buy(qty=qty)), RejectReason.INVALID_QTY)


def test_amend_below_filled_is_invalid_qty() -> None:
    e = engine()
    e.process(buy(qty=300))
    e.process(sell(qty=200))
    amend = AmendOrder(2, 700, 1, "acc-a", 400_000, 200)
    rejected_request(e.process(amend), RequestKind.AMEND, RejectReason.INVALID_QTY)


def test_not_board_lot() -> None:
    rejected_new(engine().process(buy(qty=150)), RejectReason.NOT_BOARD_LOT)


def test_too_many_lots() -> None:
    e = engine()
    assert e.process(buy(qty=300_000))[0].exec_type is ExecType.ACCEPTED  # type: ignore[union-attr]
    rejected_new(e.process(buy(order_id=5, qty=300_100)), RejectReason.TOO_MANY_LOTS)


@pytest.mark.parametrize("price_e3", [0, -10, 9, 9_995_001])
def test_invalid_price(price_e3: int) -> None:
    e = Engine(Rules(nominal_price_check_factor=0), [TENCENT])
    rejected_new(e.process(buy(price_e3=price_e3)), RejectReason.INVALID_PRICE)


@pytest.mark.parametrize("price_e3", [400_100, 400_300, 12_345])
def test_not_on_tick(price_e3: int) -> None:
    # 400.1 is off the 0.2 tick of the 200-500 band; 12.345 is off any tick above 10.
    e = Engine(Rules(nominal_price_check_factor=0), [TENCENT])
    rejected_new(e.process(buy(price_e3=price_e3)), RejectReason.NOT_ON_TICK)


@pytest.mark.parametrize("price_e3", [3_600_000, 4_000_000, 44_440])
def test_price_out_of_range(price_e3: int) -> None:
    # 9x nominal (400.00) is 3,600.00; one ninth is 44.444..; both rejected with margins.
    rejected_new(engine().process(buy(price_e3=price_e3)), RejectReason.PRICE_OUT_OF_RANGE)


def test_price_just_inside_the_nominal_band_is_accepted() -> None:
    e = engine()
    assert e.process(buy(price_e3=3_598_000))[0].exec_type is ExecType.ACCEPTED  # type: ignore[union-attr]
    assert e.process(buy(order_id=9, price_e3=44_460))[0].exec_type is ExecType.ACCEPTED  # type: ignore[union-attr]


def test_price_through_reach_for_hkex_limit() -> None:
    e = engine(Rules.hkex())
    e.process(sell(price_e3=400_000))
    rejected_new(e.process(buy(price_e3=400_200)), RejectReason.PRICE_THROUGH_REACH)


def test_price_through_reach_for_enhanced_limit() -> None:
    e = engine()
    e.process(sell(price_e3=400_000))
    # Ten levels from 400.0 on the 0.2 tick reach 401.8; 402.0 is one spread beyond.
    ok = e.process(buy(order_id=3, qty=100, price_e3=401_800, order_type=OrderType.ENHANCED_LIMIT))
    assert ok[0].exec_type is ExecType.ACCEPTED  # type: ignore[union-attr]
    e.process(sell(order_id=4, price_e3=400_000))
    beyond = buy(order_id=5, price_e3=402_000, order_type=OrderType.ENHANCED_LIMIT)
    rejected_new(e.process(beyond), RejectReason.PRICE_THROUGH_REACH)


def test_duplicate_order_id() -> None:
    e = engine()
    e.process(buy())
    rejected_new(e.process(buy()), RejectReason.DUPLICATE_ORDER_ID)


def test_unknown_order() -> None:
    e = engine()
    cancel = CancelOrder(1, 700, 42, "acc-a")
    rejected_request(e.process(cancel), RequestKind.CANCEL, RejectReason.UNKNOWN_ORDER)
    amend = AmendOrder(1, 700, 42, "acc-a", 400_000, 100)
    rejected_request(e.process(amend), RequestKind.AMEND, RejectReason.UNKNOWN_ORDER)


def test_not_owner() -> None:
    e = engine()
    e.process(buy())
    cancel = CancelOrder(1, 700, 1, "acc-b")
    rejected_request(e.process(cancel), RequestKind.CANCEL, RejectReason.NOT_OWNER)
    amend = AmendOrder(1, 700, 1, "acc-b", 400_000, 200)
    rejected_request(e.process(amend), RequestKind.AMEND, RejectReason.NOT_OWNER)


def test_fok_not_fillable_leaves_no_trace() -> None:
    e = engine()
    e.process(sell(qty=100))
    before = e.snapshot()
    rejected_new(
        e.process(buy(order_id=3, qty=200, tif=TimeInForce.FOK)), RejectReason.FOK_NOT_FILLABLE
    )
    assert e.depth(700) == ((), ((400_000, 100, 1),))
    assert e.snapshot() != before  # only the event sequence moved on
    assert e.resting_orders(700) == [(2, Side.SELL, 400_000, 100, 0, 100)]


def test_no_liquidity() -> None:
    market = buy(order_type=OrderType.MARKET, tif=TimeInForce.IOC)
    rejected_new(engine().process(market), RejectReason.NO_LIQUIDITY)


def test_amend_no_change() -> None:
    e = engine()
    e.process(buy())
    amend = AmendOrder(1, 700, 1, "acc-a", 400_000, 100)
    rejected_request(e.process(amend), RequestKind.AMEND, RejectReason.AMEND_NO_CHANGE)


def test_order_type_not_allowed_under_hkex_rules() -> None:
    market = buy(order_type=OrderType.MARKET, tif=TimeInForce.IOC)
    rejected_new(engine(Rules.hkex()).process(market), RejectReason.ORDER_TYPE_NOT_ALLOWED)


def test_invalid_time_in_force_for_a_day_market_order() -> None:
    market = buy(order_type=OrderType.MARKET, tif=TimeInForce.DAY)
    rejected_new(engine().process(market), RejectReason.INVALID_TIME_IN_FORCE)


def test_every_reject_reason_has_a_test() -> None:
    tested = {
        name.removeprefix("test_").split("_for_")[0].split("_rejects")[0].upper()
        for name in globals()
        if name.startswith("test_")
    }
    for reason in RejectReason:
        assert any(t.startswith(reason.name) for t in tested), reason


def test_not_in_this_phase() -> None:
    from sampan.market.sessions import Phase
    from sampan.matching.model import ChangePhase

    e = engine()
    e.process(buy())
    e.process(ChangePhase(2, Phase.CLOSED))  # the close expires order 1
    rejected_new(e.process(buy(order_id=3)), RejectReason.NOT_IN_THIS_PHASE)
    e.process(ChangePhase(3, Phase.NOT_YET_OPEN))
    e.process(ChangePhase(4, Phase.POS_ORDER_INPUT))
    e.process(buy(order_id=5))
    e.process(ChangePhase(5, Phase.POS_NO_CANCEL))
    cancel = CancelOrder(6, 700, 5, "acc-a")
    rejected_request(e.process(cancel), RequestKind.CANCEL, RejectReason.NOT_IN_THIS_PHASE)
    amend = AmendOrder(6, 700, 5, "acc-a", 400_000, 200)
    rejected_request(e.process(amend), RequestKind.AMEND, RejectReason.NOT_IN_THIS_PHASE)


def test_price_outside_auction_limits() -> None:
    from sampan.market.sessions import Phase
    from sampan.matching.model import ChangePhase

    e = engine()
    e.process(ChangePhase(1, Phase.CLOSED))
    e.process(ChangePhase(2, Phase.NOT_YET_OPEN))
    e.process(ChangePhase(3, Phase.POS_ORDER_INPUT))  # +/-15% of 400.000: 340.000..460.000
    rejected_new(e.process(buy(price_e3=460_200)), RejectReason.PRICE_OUTSIDE_AUCTION_LIMITS)
    assert e.process(buy(order_id=7, price_e3=460_000))[0].exec_type is ExecType.ACCEPTED


def test_price_outside_vcm_band() -> None:
    e = Engine(Rules(vcm_band_bps=1_000), [TENCENT])
    minute = 60 * 1_000_000_000
    e.process(PlaceOrder(0, 700, 1, "acc-b", "mem-b", Side.SELL, 100, 400_000))
    e.process(PlaceOrder(0, 700, 2, "acc-a", "mem-a", Side.BUY, 100, 400_000))  # reference
    e.process(PlaceOrder(5 * minute, 700, 3, "acc-b", "mem-b", Side.SELL, 100, 460_000))
    e.process(PlaceOrder(5 * minute, 700, 4, "acc-a", "mem-a", Side.BUY, 100, 460_000))  # stopped
    late = PlaceOrder(6 * minute, 700, 5, "acc-a", "mem-a", Side.BUY, 100, 450_000)
    rejected_new(e.process(late), RejectReason.PRICE_OUTSIDE_VCM_BAND)
