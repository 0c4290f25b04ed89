from datetime import date
from pathlib import Path

import pytest

from sampan.market.sessions import DayKind
from sampan.market.venue_calendar import CalendarError, VenueCalendar

TEXT = """
# comment line
2026-12-24 half Christmas Eve
2026-12-25 holiday Christmas Day  # trailing comment
2026-12-26 full  a Saturday that trades
"""


def test_listed_days_weekdays_and_weekends() -> None:
    cal = VenueCalendar.parse(TEXT)
    assert cal.kind(date(2026, 12, 24)) is DayKind.HALF
    assert cal.kind(date(2026, 12, 25)) is DayKind.HOLIDAY
    assert cal.kind(date(2026, 12, 26)) is DayKind.FULL  # listed, though a Saturday
    assert cal.kind(date(2026, 12, 27)) is DayKind.HOLIDAY  # Sunday
    assert cal.kind(date(2026, 12, 28)) is DayKind.FULL  # Monday, not listed
    assert cal.notes[date(2026, 12, 25)] == "Christmas Day"


def test_next_and_previous_trading_days_skip_holidays_and_weekends() -> None:
    cal = VenueCalendar.parse(TEXT)
    assert cal.next_trading_day(date(2026, 12, 24)) == date(2026, 12, 26)
    assert cal.next_trading_day(date(2026, 12, 26)) == date(2026, 12, 28)
    assert cal.previous_trading_day(date(2026, 12, 28)) == date(2026, 12, 26)
    assert VenueCalendar().next_trading_day(date(2026, 3, 13)) == date(2026, 3, 16)  # Fri -> Mon


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("2026-13-01 holiday", "not a date"),
        ("2026-12-01 closed", "kind must be"),
        ("2026-12-01", "expected"),
        ("2026-12-01 holiday\n2026-12-01 half", "listed twice"),
    ],
)
def test_a_bad_line_refuses_the_file_naming_the_line(text: str, match: str) -> None:
    with pytest.raises(CalendarError, match=match) as info:
        VenueCalendar.parse(text, "cal.txt")
    assert "cal.txt:" in str(info.value)


def test_a_month_of_holidays_is_refused() -> None:
    text = "\n".join(f"2026-08-{d:02d} holiday" for d in range(1, 32))
    text += "\n" + "\n".join(f"2026-09-{d:02d} holiday" for d in range(1, 10))
    with pytest.raises(CalendarError, match="no trading day"):
        VenueCalendar.parse(text).next_trading_day(date(2026, 7, 31))


def test_load_reads_the_shipped_example_and_reports_a_missing_file(tmp_path: Path) -> None:
    example = Path(__file__).parents[3] / "deploy" / "calendar" / "example.txt"
    cal = VenueCalendar.load(example)
    assert cal.kind(date(2026, 12, 25)) is DayKind.HOLIDAY
    with pytest.raises(CalendarError, match="cannot read"):
        VenueCalendar.load(tmp_path / "missing.txt")
