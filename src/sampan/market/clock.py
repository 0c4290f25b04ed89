"""The one venue clock: real time in production, a day in minutes for the demo and the tests.

Guarantees: every reading is an integer of nanoseconds since the Unix epoch (UTC), never a
float, and never goes backwards (a wall clock stepped back holds the last reading). An
accelerated clock starts at a chosen venue time and runs `factor` times faster than the wall
clock: `accelerated:60` runs an hour of the venue in a minute. `wall_s_until(venue_ns)` says
how long, in wall seconds, a process must wait for the venue clock to reach a moment, so a
scheduler sleeps the right time at any speed.

`parse_clock(spec)` reads the command-line form: `real`, `accelerated:FACTOR` (starting now) or
`accelerated:FACTOR@YYYY-MM-DDTHH:MM[:SS]` (starting at that Hong Kong time). A bad spec is a
`ClockSpecError` naming what is wrong.

Limits: a clock is per process; two processes given the same accelerated spec and started at
different wall moments disagree by the difference times the factor, so a stack shares one
start (the supervisor passes the same `@` start and each process the same origin).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

from sampan.market.calendar import NS_PER_S

FACTOR_MAX = 100_000  # a trading day in under a second; beyond that schedules alias
HKT = timezone(timedelta(hours=8))


class ClockSpecError(ValueError):
    """A `--clock` value that cannot be read."""


@dataclass(slots=True)
class Clock:
    """Venue time = origin_ns + (wall - wall_origin_ns) * factor. `factor` 1 with origin equal
    to the wall origin is real time."""

    origin_ns: int
    wall_origin_ns: int
    factor: int = 1
    wall_ns: Callable[[], int] = time.time_ns
    _last_ns: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        if not 1 <= self.factor <= FACTOR_MAX:
            raise ClockSpecError(f"clock factor {self.factor} not in 1..{FACTOR_MAX}")

    @classmethod
    def real(cls, wall_ns: Callable[[], int] = time.time_ns) -> Clock:
        now = wall_ns()
        return cls(now, now, 1, wall_ns)

    @classmethod
    def accelerated(
        cls, factor: int, start_ns: int | None = None, wall_ns: Callable[[], int] = time.time_ns
    ) -> Clock:
        now = wall_ns()
        return cls(now if start_ns is None else start_ns, now, factor, wall_ns)

    @property
    def is_real(self) -> bool:
        return self.factor == 1 and self.origin_ns == self.wall_origin_ns

    def now_ns(self) -> int:
        venue = self.origin_ns + (self.wall_ns() - self.wall_origin_ns) * self.factor
        if venue < self._last_ns:
            return self._last_ns
        self._last_ns = venue
        return venue

    def wall_s_until(self, venue_ns: int) -> float:
        """Wall seconds until the venue clock reads `venue_ns` (0 if it already has). A float
        because it is a sleep duration, never a timestamp."""
        wall_target = self.wall_origin_ns + -(-(venue_ns - self.origin_ns) // self.factor)
        return max(0, wall_target - self.wall_ns()) / NS_PER_S


def parse_clock(spec: str, wall_ns: Callable[[], int] = time.time_ns) -> Clock:
    """A `Clock` from `real`, `accelerated:FACTOR` or `accelerated:FACTOR@HKT-START`."""
    text = spec.strip()
    if text == "real":
        return Clock.real(wall_ns)
    kind, sep, rest = text.partition(":")
    if kind != "accelerated" or not sep:
        raise ClockSpecError(
            f"clock {spec!r}: expected 'real', 'accelerated:FACTOR' or "
            "'accelerated:FACTOR@YYYY-MM-DDTHH:MM' (Hong Kong time)"
        )
    factor_text, at, start_text = rest.partition("@")
    if not factor_text.isdigit():
        raise ClockSpecError(f"clock {spec!r}: FACTOR must be a whole number")
    factor = int(factor_text)
    start_ns = None
    if at:
        try:
            start = datetime.fromisoformat(start_text)
        except ValueError:
            raise ClockSpecError(f"clock {spec!r}: start must be YYYY-MM-DDTHH:MM") from None
        if start.tzinfo is None:
            start = start.replace(tzinfo=HKT)
        start_ns = _epoch_ns(start)
    return Clock.accelerated(factor, start_ns, wall_ns)


def _epoch_ns(moment: datetime) -> int:
    """Integer ns since the epoch of an aware datetime (no float on the way)."""
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * 1_000
