"""`sampan venue-clock`: the internal venue's trading day, written into the matcher's input log.

It reads the venue calendar and the one clock (`--clock real`, or `accelerated:60@...` for the
demo and the tests) and, at each scheduled moment, writes a PHASE `OrderCommand` to every
partition of `orders.internal`, so each matcher partition sees the day's phase changes among
the orders in the order they happened and a replay (`sampan matcher verify`) makes the same
moves. The random end of each auction comes from `--seed` (with the calendar and the day) and
the seed travels on the command that ends the random period.

Guarantees: on start it resends every change of the current day up to now; the engine refuses
a change not later than the last one it applied, so a restart neither repeats nor skips a
change. Every produce is flushed with a deadline; waits are bounded and end on a stop signal.

Limits: one venue clock per venue (two would each send the day; the engine keeps the first of
equal moments, so the result is the same, but the log holds both).
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from sampan.config import Settings, settings
from sampan.errors import SampanError
from sampan.market.calendar import midnight_ns, trading_day
from sampan.market.clock import Clock, ClockSpecError, parse_clock
from sampan.market.schedule import PhaseChange, VenueSchedule
from sampan.market.venue_calendar import CalendarError, VenueCalendar
from sampan.schemas import registry
from sampan.streams import profiles

log = logging.getLogger(__name__)

TOPIC = "orders.internal"
FLUSH_TIMEOUT_S = 30.0
SLEEP_STEP_S = 0.5  # the longest sleep between looks at the clock and the stop flag


def phase_command(change: PhaseChange) -> dict[str, Any]:
    """The OrderCommand that carries one phase change (no account: the venue's own record)."""
    return {
        "command_id": f"phase:{change.ts_ns}:{change.phase.name}",
        "kind": "PHASE",
        "account": "",
        "member": "",
        "security": 0,
        "cl_ord_id": "",
        "orig_cl_ord_id": None,
        "side": "BUY",
        "ord_type": "LIMIT",
        "time_in_force": "DAY",
        "price_e3": 0,
        "qty": 0,
        "route": "INTERNAL",
        "batch_id": None,
        "parent_id": None,
        "user": "venue-clock",
        "ts_ns": change.ts_ns,
        "stp": None,
        "phase": change.phase.name,
        "phase_seed": change.seed if change.drawn else None,
    }


class VenueClock:
    def __init__(self, settings: Settings, schedule: VenueSchedule, clock: Clock) -> None:
        from confluent_kafka import Producer

        self.settings = settings
        self.schedule = schedule
        self.clock = clock
        self.producer = Producer(profiles.producer(settings, linger_ms=0))
        self.topic = settings.topic(TOPIC)
        metadata = self.producer.list_topics(self.topic, timeout=FLUSH_TIMEOUT_S)
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None or not topic.partitions:
            raise SampanError(f"{self.topic} does not exist: run `sampan topics apply` first")
        self.partitions = sorted(topic.partitions)
        self.sent = 0

    def send(self, changes: list[PhaseChange]) -> None:
        for change in changes:
            value = registry().encode("OrderCommand", phase_command(change))
            for partition in self.partitions:
                self.producer.produce(self.topic, value, b"", partition=partition)
            log.info("phase %s at %d (day %s)", change.phase.name, change.ts_ns, change.day)
            self.sent += 1
        if self.producer.flush(FLUSH_TIMEOUT_S):
            raise SampanError(f"{self.topic}: phase changes not delivered in {FLUSH_TIMEOUT_S} s")

    def run(self, stop: threading.Event, until_ns: int | None = None) -> None:
        now = self.clock.now_ns()
        last = midnight_ns(trading_day(now)) - 1
        self.send(self.schedule.changes(last, now))  # the day so far (stale ones are refused)
        last = now
        while not stop.is_set() and (until_ns is None or last < until_ns):
            now = self.clock.now_ns()
            if until_ns is not None:
                now = min(now, until_ns)
            changes = self.schedule.changes(last, now)
            if changes:
                self.send(changes)
            last = now
            upcoming = self.schedule.changes(now, now + 86_400 * 1_000_000_000)
            wait_s = self.clock.wall_s_until(upcoming[0].ts_ns) if upcoming else SLEEP_STEP_S
            stop.wait(min(max(wait_s, 0.001), SLEEP_STEP_S))


def _run(args: argparse.Namespace) -> int:
    try:
        clock = parse_clock(args.clock)
        calendar = VenueCalendar.load(Path(args.calendar)) if args.calendar else VenueCalendar()
    except (ClockSpecError, CalendarError) as error:
        raise SampanError(str(error)) from None
    current = settings()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    venue = VenueClock(current, VenueSchedule(calendar, args.seed), clock)
    until_ns = None
    if args.run_s:
        until_ns = clock.now_ns() + int(args.run_s * clock.factor * 1_000_000_000)
    print(f"venue clock {args.clock} (seed {args.seed}) writing {venue.topic}", flush=True)
    started = time.monotonic()
    venue.run(stop, until_ns)
    print(f"venue clock stopped after {time.monotonic() - started:.1f} s, {venue.sent} changes")
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "venue-clock",
        help="write the internal venue's trading phases into orders.internal on schedule",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    parser.add_argument(
        "--clock",
        default="real",
        help="real, accelerated:FACTOR or accelerated:FACTOR@YYYY-MM-DDTHH:MM (Hong Kong time)",
    )
    parser.add_argument("--calendar", default="", help="holidays and half days (a text file)")
    parser.add_argument(
        "--seed", type=int, default=uuid.uuid4().int % 2**31, help="seeds the random ends"
    )
    parser.add_argument(
        "--run-s", type=float, default=0.0, help="stop after this many wall seconds (0: never)"
    )
    parser.set_defaults(handler=_run)
