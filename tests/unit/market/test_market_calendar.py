from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from sampan.market.calendar import NS_PER_DAY, midnight_ns, trading_day, trading_day_iso

# 2026-03-10 00:00:00 in Hong Kong is 2026-03-09 16:00:00 UTC.
MIDNIGHT_NS = 1_773_072_000 * 1_000_000_000


def test_midnight_is_sixteen_hundred_utc_the_day_before() -> None:
    assert midnight_ns(date(2026, 3, 10)) == MIDNIGHT_NS


def test_last_nanosecond_before_hong_kong_midnight_is_the_day_before() -> None:
    assert trading_day(MIDNIGHT_NS - 1) == date(2026, 3, 9)
    assert trading_day_iso(MIDNIGHT_NS - 1) == "2026-03-09"


def test_first_nanosecond_of_hong_kong_midnight_is_the_new_day() -> None:
    assert trading_day(MIDNIGHT_NS) == date(2026, 3, 10)
    assert trading_day_iso(MIDNIGHT_NS) == "2026-03-10"


def test_a_float_of_seconds_would_have_crossed_midnight_early() -> None:
    # Why the day is computed in integers: 100 ns before midnight rounds up to midnight as a
    # float of seconds, and a float-based day would already be the next one.
    assert (MIDNIGHT_NS - 100) / 1e9 == MIDNIGHT_NS / 1e9
    assert trading_day(MIDNIGHT_NS - 100) == date(2026, 3, 9)


def test_the_epoch_is_eight_in_the_morning_in_hong_kong() -> None:
    assert trading_day(0) == date(1970, 1, 1)
    assert trading_day(-1) == date(1970, 1, 1)
    assert trading_day(midnight_ns(date(1970, 1, 1)) - 1) == date(1969, 12, 31)


@settings(deadline=None)
@given(st.integers(min_value=0, max_value=4_102_444_800 * 1_000_000_000))
def test_every_nanosecond_lies_in_its_day(ts_ns: int) -> None:
    day = trading_day(ts_ns)
    assert midnight_ns(day) <= ts_ns < midnight_ns(day) + NS_PER_DAY
