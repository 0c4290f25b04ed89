"""Which days a venue trades, and how long: holidays and half days from a calendar file.

Guarantees: a weekday not named in the file is a full trading day; Saturdays and Sundays are
holidays; a line of the file makes its date a holiday, a half day or (to trade on a weekend) a
full day. A malformed file is refused as a whole with the line that is wrong
(`CalendarError`), never half-read. `next_trading_day` and `previous_trading_day` look at most
`SEARCH_DAYS_MAX` days ahead or back.

The file is text, one date a line: `YYYY-MM-DD KIND [note...]` where KIND is `holiday`, `half`
or `full`; `#` starts a comment. Hong Kong's public holidays are published by the government
and HKEX each year; sampan ships no list of its own as fact (the file under deploy/calendar is
an example to copy and check against HKEX's published calendar).

Limits: a day's kind is fixed when the file is read; a typhoon or black-rainstorm closure is
not modelled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from sampan.market.sessions import DayKind

SEARCH_DAYS_MAX = 31  # no real calendar has a month without a trading day
LINES_MAX = 10_000

_KINDS = {"holiday": DayKind.HOLIDAY, "half": DayKind.HALF, "full": DayKind.FULL}


class CalendarError(ValueError):
    """The calendar file cannot be used; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class VenueCalendar:
    days: dict[date, DayKind] = field(default_factory=dict)
    notes: dict[date, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str, origin: str = "<calendar>") -> VenueCalendar:
        days: dict[date, DayKind] = {}
        notes: dict[date, str] = {}
        lines = text.splitlines()
        if len(lines) > LINES_MAX:
            raise CalendarError(f"{origin}: more than {LINES_MAX} lines")
        for number, raw in enumerate(lines, start=1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split(None, 2)
            where = f"{origin}:{number}: {raw.strip()!r}"
            if len(parts) < 2:
                raise CalendarError(f"{where}: expected 'YYYY-MM-DD KIND [note]'")
            try:
                day = date.fromisoformat(parts[0])
            except ValueError:
                raise CalendarError(f"{where}: not a date (YYYY-MM-DD)") from None
            kind = _KINDS.get(parts[1].lower())
            if kind is None:
                raise CalendarError(f"{where}: kind must be one of {', '.join(_KINDS)}")
            if day in days:
                raise CalendarError(f"{where}: {day} is listed twice")
            days[day] = kind
            notes[day] = parts[2] if len(parts) > 2 else ""
        return cls(days, notes)

    @classmethod
    def load(cls, path: Path) -> VenueCalendar:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise CalendarError(f"cannot read calendar {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise CalendarError(f"calendar {path} is not UTF-8 text") from None
        return cls.parse(text, str(path))

    def kind(self, day: date) -> DayKind:
        listed = self.days.get(day)
        if listed is not None:
            return listed
        return DayKind.HOLIDAY if day.weekday() >= 5 else DayKind.FULL

    def is_trading_day(self, day: date) -> bool:
        return self.kind(day) is not DayKind.HOLIDAY

    def next_trading_day(self, day: date) -> date:
        """The first trading day after `day`."""
        return self._step(day, 1)

    def previous_trading_day(self, day: date) -> date:
        """The last trading day before `day` (whose close is `day`'s previous close)."""
        return self._step(day, -1)

    def _step(self, day: date, direction: int) -> date:
        for n in range(1, SEARCH_DAYS_MAX + 1):
            candidate = day + timedelta(days=n * direction)
            if self.is_trading_day(candidate):
                return candidate
        raise CalendarError(f"no trading day within {SEARCH_DAYS_MAX} days of {day}")
