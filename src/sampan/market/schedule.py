"""The phase changes a venue makes over time, from its calendar, the timetable and a seed.

Guarantees: `VenueSchedule.changes(after_ns, until_ns)` lists, in time order, every phase
change with `after_ns < ts_ns <= until_ns`, across any number of days (holidays produce none,
the day's roll-over produces CLOSED -> NOT_YET_OPEN at midnight). The random end of the
pre-opening random matching and of the closing random close comes from `random_end_ns` with
the schedule's seed and is carried on the change (`seed`, `drawn`), so the record of a change
says how its moment was drawn and a reader can check it. The same arguments give the same
changes: a shell that restarts can resume from the last change it recorded.

Limits: at most `CHANGES_MAX` changes per call (a caller far behind asks again).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sampan.market.calendar import trading_day
from sampan.market.sessions import RANDOM_END_PHASES, Phase, PhaseWindow, random_end_ns, timetable
from sampan.market.venue_calendar import VenueCalendar

CHANGES_MAX = 1_000


@dataclass(frozen=True, slots=True)
class PhaseChange:
    """The venue enters `phase` at `ts_ns` on `day`. `drawn` is True when `ts_ns` was drawn at
    random (the end of a random window) from `seed`."""

    ts_ns: int
    day: date
    phase: Phase
    seed: int = 0
    drawn: bool = False


@dataclass(frozen=True, slots=True)
class VenueSchedule:
    calendar: VenueCalendar
    seed: int

    def day_windows(self, day: date) -> tuple[PhaseWindow, ...]:
        """`day`'s timetable with each random window cut at its drawn end (the next phase
        starts there)."""
        windows = list(timetable(day, self.calendar.kind(day)))
        for i, window in enumerate(windows):
            if window.phase in RANDOM_END_PHASES:
                end = random_end_ns(self.seed, window)
                windows[i] = PhaseWindow(window.phase, window.start_ns, end)
                nxt = windows[i + 1]
                windows[i + 1] = PhaseWindow(nxt.phase, end, nxt.end_ns)
        return tuple(windows)

    def phase_at(self, ts_ns: int) -> Phase:
        for window in self.day_windows(trading_day(ts_ns)):
            if window.start_ns <= ts_ns < window.end_ns:
                return window.phase
        raise AssertionError("a day's windows cover the day")

    def changes(self, after_ns: int, until_ns: int) -> list[PhaseChange]:
        out: list[PhaseChange] = []
        day, last = trading_day(after_ns + 1), trading_day(until_ns)
        while day <= last and len(out) < CHANGES_MAX:
            windows = self.day_windows(day)
            for i, window in enumerate(windows):
                if not after_ns < window.start_ns <= until_ns:
                    continue
                drawn = i > 0 and windows[i - 1].phase in RANDOM_END_PHASES
                out.append(PhaseChange(window.start_ns, day, window.phase, self.seed, drawn))
                if len(out) == CHANGES_MAX:
                    break
            day += timedelta(days=1)
        return out
