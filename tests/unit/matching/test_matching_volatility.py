"""Volatility control: a trade beyond the band around the price five minutes earlier is
stopped and starts a cooling-off in which trades stay inside the band."""

from __future__ import annotations

from sampan.market.sessions import Phase
from sampan.matching import (
    Engine,
    Fill,
    Instrument,
    PlaceOrder,
    RejectReason,
    Rules,
    Side,
    TimeInForce,
)
from sampan.matching.model import ChangePhase, ExecType, ExecutionReport, VolatilityControlStarted

SEC = 700
S = 1_000_000_000
MIN = 60 * S
RULES = Rules(vcm_band_bps=1_000)  # +/-10%


def _engine(rules: Rules = RULES) -> Engine:
    return Engine(rules, [Instrument(SEC, 100, nominal_price_e3=100_000)])


def _cross(engine: Engine, oid: int, price: int, ts: int, qty: int = 100) -> list:
    engine.process(PlaceOrder(ts, SEC, oid, "s", "ms", Side.SELL, qty, price))
    return engine.process(PlaceOrder(ts, SEC, oid + 1, "b", "mb", Side.BUY, qty, price))


def _fills(events: list) -> list[tuple[int, int]]:
    return [(e.price_e3, e.qty) for e in events if isinstance(e, Fill)]


def test_a_trade_beyond_the_band_is_stopped_and_starts_a_cooling_off() -> None:
    engine = _engine()
    assert _fills(_cross(engine, 1, 100_000, 0)) == [(100_000, 100)]  # the reference, at t=0
    # five minutes later, sells at 109 and 111; a buy up to 112 takes 109 and stops at the band
    engine.process(PlaceOrder(5 * MIN, SEC, 3, "s", "ms", Side.SELL, 100, 109_000))
    engine.process(PlaceOrder(5 * MIN, SEC, 4, "s", "ms", Side.SELL, 100, 111_000))
    events = engine.process(PlaceOrder(5 * MIN, SEC, 5, "b", "mb", Side.BUY, 200, 112_000))
    assert _fills(events) == [(109_000, 100)]
    (vcm,) = [e for e in events if isinstance(e, VolatilityControlStarted)]
    assert vcm == VolatilityControlStarted(5 * MIN, SEC, 10 * MIN, 100_000, 90_000, 110_000)
    assert isinstance(events[-1], ExecutionReport) and events[-1].exec_type is ExecType.EXPIRED
    # during the cooling-off an order priced outside the band is refused
    (refused,) = engine.process(PlaceOrder(7 * MIN, SEC, 6, "b", "mb", Side.BUY, 100, 111_000))
    assert isinstance(refused, ExecutionReport)
    assert refused.reason is RejectReason.PRICE_OUTSIDE_VCM_BAND
    assert (
        _fills(engine.process(PlaceOrder(7 * MIN, SEC, 8, "b", "mb", Side.BUY, 100, 110_000))) == []
    )
    engine.validate()
    # after it, the book trades freely again (one cooling-off a session: no second trigger)
    events = _cross(engine, 9, 120_000, 11 * MIN)
    assert _fills(events) == [(111_000, 100)]  # the resting sell at 111 first


def test_an_ioc_stopped_at_the_band_expires_its_rest_and_inside_the_band_nothing_changes() -> None:
    engine = _engine()
    _cross(engine, 1, 100_000, 0)
    engine.process(PlaceOrder(6 * MIN, SEC, 3, "s", "ms", Side.SELL, 100, 105_000))
    inside = engine.process(PlaceOrder(6 * MIN, SEC, 4, "b", "mb", Side.BUY, 100, 105_000))
    assert _fills(inside) == [(105_000, 100)]
    assert not any(isinstance(e, VolatilityControlStarted) for e in inside)
    engine.process(PlaceOrder(6 * MIN, SEC, 5, "s", "ms", Side.SELL, 100, 80_000))
    # the book's best offer is 80; a buy at 80 trades at 80, 20% under 100: stopped
    ioc = PlaceOrder(6 * MIN, SEC, 6, "b2", "mb2", Side.BUY, 100, 80_000, tif=TimeInForce.IOC)
    events = engine.process(ioc)
    assert _fills(events) == []
    assert any(isinstance(e, VolatilityControlStarted) for e in events)
    last = events[-1]
    assert isinstance(last, ExecutionReport) and last.exec_type is ExecType.EXPIRED


def test_no_reference_five_minutes_back_means_no_control() -> None:
    engine = _engine()
    _cross(engine, 1, 100_000, 0)
    events = _cross(engine, 3, 150_000, 4 * MIN)  # only four minutes later
    assert _fills(events) == [(150_000, 100)]


def test_without_the_rule_nothing_is_stopped() -> None:
    engine = _engine(Rules())
    _cross(engine, 1, 100_000, 0)
    assert _fills(_cross(engine, 3, 150_000, 5 * MIN)) == [(150_000, 100)]


def test_the_cooling_off_ends_with_its_session_and_survives_a_snapshot() -> None:
    engine = _engine()
    _cross(engine, 1, 100_000, 0)
    engine.process(PlaceOrder(5 * MIN, SEC, 3, "s", "ms", Side.SELL, 100, 120_000))
    events = engine.process(PlaceOrder(5 * MIN, SEC, 4, "b", "mb", Side.BUY, 100, 120_000))
    assert any(isinstance(e, VolatilityControlStarted) for e in events)
    restored = Engine.restore(engine.snapshot())
    probe = PlaceOrder(6 * MIN, SEC, 5, "b", "mb", Side.BUY, 100, 120_000)
    assert restored.process(probe) == engine.process(probe)  # still cooling: no trade
    engine.process(ChangePhase(7 * MIN, Phase.LUNCH_BREAK))
    engine.process(ChangePhase(8 * MIN, Phase.CONTINUOUS))
    events = engine.process(PlaceOrder(8 * MIN, SEC, 6, "b", "mb", Side.BUY, 100, 120_000))
    assert _fills(events) == [] and any(isinstance(e, VolatilityControlStarted) for e in events)


def test_an_amend_outside_the_band_during_a_cooling_off_is_refused() -> None:
    from sampan.matching import AmendOrder, CancelRejected

    engine = _engine()
    _cross(engine, 1, 100_000, 0)
    engine.process(PlaceOrder(5 * MIN, SEC, 3, "s", "ms", Side.SELL, 100, 111_000))
    engine.process(PlaceOrder(5 * MIN, SEC, 4, "b", "mb", Side.BUY, 100, 111_000))  # stopped
    engine.process(PlaceOrder(6 * MIN, SEC, 5, "b", "mb", Side.BUY, 100, 105_000))
    (refused,) = engine.process(AmendOrder(6 * MIN, SEC, 5, "b", 112_000, 100))
    assert isinstance(refused, CancelRejected)
    assert refused.reason is RejectReason.PRICE_OUTSIDE_VCM_BAND
    engine.validate()
