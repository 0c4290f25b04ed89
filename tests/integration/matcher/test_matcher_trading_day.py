"""A trading day on the internal venue on the real stack: the venue clock writes the day's
phase changes into orders.internal among the orders, the matcher process runs the opening
auction, the lunch break and the closing auction, expires the day's orders at the close and
rolls over to the next day; `sampan matcher verify` replays the log and finds it identical."""

from __future__ import annotations

import signal
import threading
import time
from datetime import date

import pytest
from test_matcher_crash import committed_total, end_total, log_tail, produce, start_matcher

from sampan.config import Settings
from sampan.market.calendar import NS_PER_S, midnight_ns
from sampan.market.clock import Clock
from sampan.market.schedule import VenueSchedule
from sampan.market.sessions import Phase
from sampan.market.venue_calendar import VenueCalendar
from sampan.matcher.verify import verify
from sampan.tools.records import read_topic
from sampan.tools.venue_clock import VenueClock

pytestmark = pytest.mark.integration
CATCH_UP_TIMEOUT_S = 120.0
DAY = date(2026, 3, 10)  # a Tuesday
SEED = 20260310


def _at(h: int, m: int, s: int = 0, day: date = DAY) -> int:
    return midnight_ns(day) + (h * 3600 + m * 60 + s) * NS_PER_S


def _order(n: int, side: str, qty: int, price_e3: int, ts_ns: int) -> dict:
    account = f"ACC{n % 4 + 1}"
    return {
        "command_id": f"c{n}",
        "kind": "NEW",
        "account": account,
        "member": f"M{n % 4 + 1}",
        "security": 700,
        "cl_ord_id": f"o{n}",
        "orig_cl_ord_id": None,
        "side": side,
        "ord_type": "LIMIT",
        "time_in_force": "DAY",
        "price_e3": price_e3,
        "qty": qty,
        "route": "INTERNAL",
        "batch_id": None,
        "parent_id": None,
        "user": "test",
        "ts_ns": ts_ns,
        "stp": None,
    }


def _wait_caught_up(settings: Settings) -> None:
    deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
    while committed_total(settings) < end_total(settings):
        assert time.monotonic() < deadline, f"matcher did not catch up:\n{log_tail()}"
        time.sleep(0.5)


def test_a_day_with_both_auctions_lunch_and_roll_over_replays_identically(
    env_settings: Settings,
) -> None:
    schedule = VenueSchedule(VenueCalendar(), SEED)
    venue = VenueClock(env_settings, schedule, Clock.real())
    windows = schedule.day_windows(DAY)
    opening = next(w for w in windows if w.phase is Phase.BLOCKING).start_ns  # the drawn end
    closing = next(w for w in windows if w.phase is Phase.CLOSED).start_ns

    matcher = start_matcher()
    try:
        # 700 TENCENT, previous close 512.000 (tick 0.500): the opening auction crosses.
        venue.send(schedule.changes(_at(0, 0) - 1, _at(9, 0)))
        produce(env_settings, [
            _order(1, "BUY", 300, 515_000, _at(9, 1)),
            _order(2, "SELL", 200, 510_000, _at(9, 2)),
            _order(3, "SELL", 200, 514_000, _at(9, 3)),
            _order(4, "BUY", 100, 505_000, _at(9, 4)),
        ])  # fmt: skip
        venue.send(schedule.changes(_at(9, 0), _at(12, 30)))  # the uncross, then lunch
        produce(env_settings, [_order(5, "BUY", 100, 512_000, _at(12, 30))])  # refused
        venue.send(schedule.changes(_at(12, 30), _at(16, 2)))
        produce(env_settings, [
            _order(6, "SELL", 400, 514_000, _at(16, 2)),
            _order(7, "BUY", 200, 515_000, _at(16, 3)),
        ])  # fmt: skip
        venue.send(schedule.changes(_at(16, 2), _at(9, 1, day=date(2026, 3, 11))))
        _wait_caught_up(env_settings)
    finally:
        matcher.send_signal(signal.SIGTERM)
        matcher.wait(timeout=60)

    fills = read_topic(env_settings, "fills", "Fill")
    by_time = sorted((f["ts_ns"], f["price_e3"], f["qty"]) for f in fills)
    # Opening, reference 512 (the previous close): 300 can trade at 514 and at 515 with the
    # same imbalance; 514 is nearer the reference. Buy 1 takes sell 2 (200), then sell 3 (100).
    # Closing, reference 514 (the last trade): buy 7 (200 @ 515) meets sell 3's last 100 and
    # 100 of sell 6, at 514 again by the nearest-reference rule.
    opening_fills = [(p, q) for ts, p, q in by_time if ts == opening]
    assert opening_fills == [(514_000, 100), (514_000, 200)], by_time
    closing_fills = [(p, q) for ts, p, q in by_time if ts == closing]
    assert sum(q for _, q in closing_fills) == 200 and {p for p, _ in closing_fills} == {514_000}
    assert len(by_time) == len(opening_fills) + len(closing_fills)

    reports = read_topic(env_settings, "orders.events", "ExecutionReport")
    lunch = [r for r in reports if r["cl_ord_id"] == "o5"]
    assert [(r["exec_type"], r["reject_reason"]) for r in lunch] == [
        ("REJECTED", "NOT_IN_THIS_PHASE")
    ]
    expired = {r["cl_ord_id"] for r in reports if r["exec_type"] == "EXPIRED"}
    assert expired == {"o4", "o6"}  # the day's orders left at the close

    result = verify(env_settings, progress=False)
    assert result.difference is None and result.behind is None, result.summary()
    assert result.fills == len(fills)


def test_the_venue_clock_writes_an_accelerated_day_to_every_partition(
    env_settings: Settings,
) -> None:
    from sampan.market.clock import parse_clock

    schedule = VenueSchedule(VenueCalendar(), SEED)
    clock = parse_clock("accelerated:3600@2026-03-10T08:59")  # an hour a second
    venue = VenueClock(env_settings, schedule, clock)
    stop = threading.Event()
    started = time.monotonic()
    venue.run(stop, until_ns=_at(16, 11))
    assert time.monotonic() - started < 60, "a day of 7 hours at 3600x takes about 7 s"
    commands = read_topic(env_settings, "orders.internal", "OrderCommand")
    sent = [(c["ts_ns"], c["phase"]) for c in commands if c["kind"] == "PHASE"]
    expected = [
        (change.ts_ns, change.phase.name) for change in schedule.changes(_at(0, 0) - 1, _at(16, 11))
    ]
    # every change once per partition (3), read partition by partition
    assert sorted(sent) == sorted(expected * 3)
    assert sent[: len(expected)] == expected
    drawn = [c for c in commands if c["phase_seed"] is not None]
    assert {c["phase"] for c in drawn} == {"BLOCKING", "CLOSED"} and {
        c["phase_seed"] for c in drawn
    } == {SEED}
