"""Surveillance rule cores: each rule raises what it should, once, with its evidence, and
nothing on ordinary activity; a record delivered again changes nothing."""

from __future__ import annotations

from fractions import Fraction
from itertools import count

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sampan.analytics.surveillance.activity import OrderToTrade, wash_trade
from sampan.analytics.surveillance.detector import Surveillance, order_event
from sampan.analytics.surveillance.market import LiquidityGaps, PriceMoves, Touches, near_touch
from sampan.analytics.surveillance.model import (
    NS,
    FillEvent,
    Kind,
    OrderEvent,
    Rule,
    Thresholds,
    TouchEvent,
    TradeEvent,
    Window,
)
from sampan.errors import ConfigError
from sampan.schemas.codec import registry

T0 = 1_764_806_400 * NS + 3600 * NS  # a trading day's morning, UTC nanoseconds
LIMITS = Thresholds()
_exec = count(1)


def report(
    kind: Kind,
    order_id: str,
    *,
    buy: bool,
    qty: int,
    price_e3: int,
    t_s: float,
    account: str = "S1",
    cum_qty: int = 0,
    venue_cancel: bool = False,
    security: int = 700,
) -> OrderEvent:
    leaves = 0 if kind in (Kind.CANCELED, Kind.EXPIRED, Kind.REJECTED) else qty - cum_qty
    return OrderEvent(
        account=account,
        member="MS",
        venue="INTERNAL",
        security=security,
        order_id=order_id,
        buy=buy,
        kind=kind,
        price_e3=price_e3,
        order_qty=qty,
        cum_qty=cum_qty,
        leaves_qty=leaves,
        exec_id=f"E{next(_exec)}",
        venue_cancel=venue_cancel,
        ts_ns=T0 + int(t_s * NS),
    )


def touch(
    bid: int | None, ask: int | None, seq: int, t_s: float = 0, qty: int = 1000
) -> TouchEvent:
    return TouchEvent("INTERNAL", 700, bid, qty, ask, qty, seq, T0 + int(t_s * NS))


def spoof_sequence() -> list[TouchEvent | OrderEvent]:
    """Two layered buys of HK$2M near the bid, a small sell that trades, both buys cancelled."""
    return [
        touch(99_900, 100_100, 1, 0),
        report(Kind.NEW, "B1", buy=True, qty=20_000, price_e3=99_900, t_s=1),
        report(Kind.NEW, "B2", buy=True, qty=20_000, price_e3=99_800, t_s=1.1),
        report(Kind.NEW, "S9", buy=False, qty=500, price_e3=100_000, t_s=2),
        report(Kind.TRADE, "S9", buy=False, qty=500, price_e3=100_000, t_s=3, cum_qty=500),
        report(Kind.CANCELED, "B1", buy=True, qty=20_000, price_e3=99_900, t_s=4),
        report(Kind.CANCELED, "B2", buy=True, qty=20_000, price_e3=99_800, t_s=4.1),
    ]


def run(events: list[TouchEvent | OrderEvent], limits: Thresholds = LIMITS) -> list:  # type: ignore[type-arg]
    rules = Surveillance(limits)
    alerts = []
    for event in events:
        alerts += rules.apply(event)
    return alerts


def test_layered_spoof_raises_one_alert_with_its_evidence() -> None:
    events = spoof_sequence()
    alerts = run(events)
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.rule is Rule.SPOOFING
    assert alert.alert_id == "SPOOFING:S1:700:B1"
    assert alert.accounts == ("S1",) and alert.member == "MS" and alert.security == 700
    assert alert.order_ids == ("B1", "B2", "S9")
    trade = events[4]
    assert isinstance(trade, OrderEvent)
    assert alert.exec_ids == (trade.exec_id,)
    record = alert.to_record()
    assert (
        registry().decode("SurveillanceAlert", registry().encode("SurveillanceAlert", record))
        == record
    )


def test_spoof_needs_the_other_side_traded() -> None:
    events = [e for e in spoof_sequence() if not (isinstance(e, OrderEvent) and e.order_id == "S9")]
    assert run(events) == []


@pytest.mark.parametrize(
    "change",
    ["small", "far", "slow", "venue_cancel", "filled"],
)
def test_ordinary_orders_are_not_spoofs(change: str) -> None:
    qty = 500 if change == "small" else 20_000
    price = 95_000 if change == "far" else 99_900
    cancel_at = 4 + LIMITS.spoof_life_s_max if change == "slow" else 4
    cum = 15_000 if change == "filled" else 0
    events = [
        touch(99_900, 100_100, 1, 0),
        report(Kind.NEW, "B1", buy=True, qty=qty, price_e3=price, t_s=1),
        report(Kind.NEW, "S9", buy=False, qty=500, price_e3=100_000, t_s=2),
        report(Kind.TRADE, "S9", buy=False, qty=500, price_e3=100_000, t_s=3, cum_qty=500),
        report(
            Kind.CANCELED,
            "B1",
            buy=True,
            qty=qty,
            price_e3=price,
            t_s=cancel_at,
            cum_qty=cum,
            venue_cancel=change == "venue_cancel",
        ),
    ]
    assert run(events) == []


def test_a_trade_after_the_cancels_within_the_grace_time_completes_the_spoof() -> None:
    events = [
        touch(99_900, 100_100, 1, 0),
        report(Kind.NEW, "B1", buy=True, qty=20_000, price_e3=99_900, t_s=1),
        report(Kind.CANCELED, "B1", buy=True, qty=20_000, price_e3=99_900, t_s=2),
        report(Kind.NEW, "S9", buy=False, qty=500, price_e3=100_000, t_s=3),
        report(Kind.TRADE, "S9", buy=False, qty=500, price_e3=100_000, t_s=4, cum_qty=500),
    ]
    assert [a.alert_id for a in run(events)] == ["SPOOFING:S1:700:B1"]
    late_trade = report(Kind.TRADE, "S9", buy=False, qty=500, price_e3=100_000, t_s=30, cum_qty=500)
    late = [*events[:4], late_trade]
    assert run(late) == []


def test_near_touch_is_the_same_whether_the_depth_includes_the_order_or_not() -> None:
    before = touch(99_900, 100_100, 1)
    after = touch(100_000, 100_100, 2)  # a buy at 100.000 improved the bid
    assert near_touch(before, True, 100_000, 50) and near_touch(after, True, 100_000, 50)
    assert near_touch(before, True, 99_500, 50) and not near_touch(before, True, 99_000, 50)
    assert near_touch(None, True, 1, 50) and near_touch(touch(None, 100_100, 3), True, 1, 50)
    touches = Touches(LIMITS)
    touches.take(before)
    touches.take(touch(90_000, 100_100, 3, t_s=10))
    assert touches.at("INTERNAL", 700, T0 + 5 * NS) == before


def test_records_delivered_again_change_nothing() -> None:
    rules = Surveillance(LIMITS)
    values: list[tuple[str, bytes]] = []
    for event in spoof_sequence():
        if isinstance(event, TouchEvent):
            record = {
                "venue": "INTERNAL",
                "security": 700,
                "bids": [{"price_e3": event.bid_e3, "qty": 1000, "orders": 1}],
                "asks": [{"price_e3": event.ask_e3, "qty": 1000, "orders": 1}],
                "seq": event.seq,
                "ts_ns": event.ts_ns,
            }
            values.append(("md.depth", registry().encode("DepthSnapshot", record)))
            continue
        record = {
            "exec_id": event.exec_id,
            "venue": "INTERNAL",
            "order_id": event.order_id,
            "cl_ord_id": event.order_id,
            "account": event.account,
            "member": event.member,
            "security": event.security,
            "side": "BUY" if event.buy else "SELL",
            "exec_type": event.kind.value,
            "ord_status": "NEW",
            "price_e3": event.price_e3,
            "order_qty": event.order_qty,
            "last_px_e3": 0,
            "last_qty": 0,
            "cum_qty": event.cum_qty,
            "leaves_qty": event.leaves_qty,
            "cum_notional_e3": 0,
            "reject_reason": "REQUESTED" if event.kind is Kind.CANCELED else None,
            "ts_ns": event.ts_ns,
        }
        values.append(("orders.events", registry().encode("ExecutionReport", record)))
    alerts = []
    offsets = {"md.depth": 0, "orders.events": 0}
    for topic, value in values:
        # Every record arrives twice: the second time changes nothing.
        alerts += rules.take(topic, 0, offsets[topic], value)
        alerts += rules.take(topic, 0, offsets[topic], value)
        offsets[topic] += 1
    assert [a.alert_id for a in alerts] == ["SPOOFING:S1:700:B1"]
    with pytest.raises(ValueError, match=r"orders\.events"):
        rules.take("orders.events", 0, 99, b"not avro")


def test_order_to_trade_far_above_the_accounts_usual_raises_once() -> None:
    rules = OrderToTrade(LIMITS)
    alerts = []
    n = count()
    for bucket in range(LIMITS.otr_history_min):  # usual: 4 orders to 2 trades
        base = bucket * LIMITS.otr_bucket_s
        for i in range(4):
            alerts += rules.take(
                report(Kind.NEW, f"o{next(n)}", buy=True, qty=100, price_e3=1, t_s=base + i)
            )
        for i in range(2):
            alerts += rules.take(
                report(
                    Kind.TRADE, "x", buy=True, qty=100, price_e3=1, t_s=base + 5 + i, cum_qty=100
                )
            )
    assert alerts == []
    base = LIMITS.otr_history_min * LIMITS.otr_bucket_s
    burst = [
        report(Kind.NEW, f"b{i}", buy=True, qty=100, price_e3=1, t_s=base + i * 0.5)
        for i in range(LIMITS.otr_messages_min + 20)
    ]
    for event in burst:
        alerts += rules.take(event)
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.rule is Rule.ORDER_TO_TRADE and alert.accounts == ("S1",)
    assert (
        alert.alert_id
        == f"ORDER_TO_TRADE:S1:{(T0 + base * NS) // NS - (T0 // NS) % LIMITS.otr_bucket_s}"
    )
    assert alert.order_ids[0] == "b0" and len(alert.order_ids) == LIMITS.evidence_max
    # The same burst from an account with no history is not judged.
    fresh = OrderToTrade(LIMITS)
    assert [a for e in burst for a in fresh.take(e)] == []


def test_wash_trade_between_accounts_of_one_member() -> None:
    def fill(buy_member: str, sell_member: str) -> FillEvent:
        return FillEvent(
            "X1", "INTERNAL", 700, 100_000, 500, "A1", buy_member, "OB", "A2", sell_member, "OS", T0
        )

    alerts = wash_trade(fill("M1", "M1"))
    assert [(a.alert_id, a.accounts, a.member, a.order_ids, a.exec_ids) for a in alerts] == [
        ("WASH_TRADE:INTERNAL:X1", ("A1", "A2"), "M1", ("OB", "OS"), ("X1",))
    ]
    assert wash_trade(fill("M1", "M2")) == []


def test_price_move_beyond_the_windows_deviations() -> None:
    moves = PriceMoves(LIMITS)
    alerts = []
    price = 100_000
    for i in range(LIMITS.move_samples_min + 5):
        price += 50 if i % 2 else -50  # ±5 bp
        alerts += moves.take(TradeEvent("INTERNAL", 700, f"T{i}", price, 100, T0 + i))
    assert alerts == []
    alerts = moves.take(TradeEvent("INTERNAL", 700, "JUMP", price * 103 // 100, 100, T0 + 99))
    assert [(a.rule, a.alert_id, a.exec_ids) for a in alerts] == [
        (Rule.PRICE_MOVE, "PRICE_MOVE:INTERNAL:700:JUMP", ("JUMP",))
    ]
    # A move under move_bp_min never alerts, however quiet the window.
    flat = PriceMoves(LIMITS)
    for i in range(LIMITS.move_samples_min + 1):
        assert flat.take(TradeEvent("HKEX", 5, f"F{i}", 100_000, 100, T0 + i)) == []
    assert flat.take(TradeEvent("HKEX", 5, "TINY", 100_100, 100, T0 + 99)) == []


def test_liquidity_gap_once_per_excursion() -> None:
    gaps = LiquidityGaps(LIMITS)
    seq = count(1)
    alerts = []
    for i in range(LIMITS.gap_samples_min):
        ask = 100_100 if i % 2 else 100_200
        alerts += gaps.take(touch(100_000, ask, next(seq), qty=1000 + 10 * (i % 3)))
    assert alerts == []
    wide = gaps.take(touch(100_000, 103_000, next(seq)))
    assert [a.rule for a in wide] == [Rule.LIQUIDITY_GAP] and "spread 300 bp" in wide[0].detail
    assert gaps.take(touch(100_000, 103_000, next(seq))) == []  # the same gap
    assert gaps.take(touch(100_000, 100_100, next(seq), qty=1010)) == []  # back in range
    thin = gaps.take(touch(100_000, 100_100, next(seq), qty=10))
    assert len(thin) == 1 and "depth at the touch 10" in thin[0].detail
    assert gaps.take(touch(100_000, 100_100, 1)) == []  # an old sequence number: ignored


@given(
    st.lists(st.integers(-(10**6), 10**6), min_size=1, max_size=40),
    st.integers(-(10**7), 10**7),
    st.integers(1, 6),
)
@settings(max_examples=200, deadline=None)
def test_window_deviation_test_equals_a_naive_one(
    samples: list[int], value: int, sigmas: int
) -> None:
    window = Window(len(samples))
    for sample in samples:
        window.add(sample)
    mean = Fraction(sum(samples), len(samples))
    variance = sum((Fraction(s) - mean) ** 2 for s in samples) / len(samples)
    beyond = (value - mean) ** 2 > sigmas * sigmas * variance
    expected = 0 if not beyond else (1 if value > mean else -1)
    assert window.beyond(value, sigmas) == expected


def test_thresholds_from_the_environment() -> None:
    limits = Thresholds.from_env({"SAMPAN_SURVEILLANCE_MOVE_SIGMAS": "6"})
    assert limits.move_sigmas == 6 and limits.gap_sigmas == Thresholds().gap_sigmas
    with pytest.raises(ConfigError, match="SAMPAN_SURVEILLANCE_OTR_FACTOR"):
        Thresholds.from_env({"SAMPAN_SURVEILLANCE_OTR_FACTOR": "many"})


@pytest.mark.parametrize(
    ("reason", "venue_cancel"),
    [(None, False), ("REQUESTED", False), ("MASS_CANCEL", False), ("SELF_TRADE_PREVENTED", True)],
)
def test_a_cancel_is_the_accounts_unless_the_venue_gave_its_own_reason(
    reason: str | None, venue_cancel: bool
) -> None:
    record = {
        "exec_id": "X1",
        "venue": "INTERNAL",
        "order_id": "O1",
        "account": "S1",
        "member": "MS",
        "security": 700,
        "side": "SELL",
        "exec_type": "CANCELED",
        "price_e3": 512_000,
        "order_qty": 100,
        "cum_qty": 0,
        "leaves_qty": 0,
        "reject_reason": reason,
        "ts_ns": T0,
    }
    event = order_event(record)
    assert event.venue_cancel is venue_cancel and event.kind is Kind.CANCELED and not event.buy
