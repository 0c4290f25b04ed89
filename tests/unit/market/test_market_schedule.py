import itertools
from datetime import date

from sampan.market.calendar import NS_PER_S, midnight_ns
from sampan.market.schedule import VenueSchedule
from sampan.market.sessions import Phase
from sampan.market.venue_calendar import VenueCalendar

CAL = VenueCalendar.parse("2026-03-11 holiday\n2026-03-12 half")
TUE, WED, THU = date(2026, 3, 10), date(2026, 3, 11), date(2026, 3, 12)


def _at(day: date, h: int, m: int) -> int:
    return midnight_ns(day) + (h * 3600 + m * 60) * NS_PER_S


def test_three_days_of_changes_with_a_holiday_and_a_half_day() -> None:
    schedule = VenueSchedule(CAL, seed=7)
    changes = schedule.changes(_at(TUE, 0, 0), _at(THU, 23, 0))
    phases_by_day: dict[date, list[Phase]] = {}
    for change in changes:
        phases_by_day.setdefault(change.day, []).append(change.phase)
    assert phases_by_day[TUE] == [
        Phase.POS_ORDER_INPUT, Phase.POS_NO_CANCEL, Phase.POS_RANDOM_MATCHING, Phase.BLOCKING,
        Phase.CONTINUOUS, Phase.LUNCH_BREAK, Phase.CONTINUOUS, Phase.CAS_REFERENCE_PRICE_FIXING,
        Phase.CAS_ORDER_INPUT, Phase.CAS_NO_CANCEL, Phase.CAS_RANDOM_CLOSE, Phase.CLOSED,
    ]  # fmt: skip
    assert phases_by_day[WED] == [Phase.NOT_YET_OPEN]  # the roll-over at midnight, then nothing
    assert phases_by_day[THU][0] is Phase.NOT_YET_OPEN
    assert Phase.LUNCH_BREAK not in phases_by_day[THU]
    assert phases_by_day[THU][-1] is Phase.CLOSED
    times = [c.ts_ns for c in changes]
    assert times == sorted(times)
    for a, b in itertools.pairwise(changes):
        assert a.phase.to(b.phase) is b.phase  # every listed change is legal


def test_random_ends_are_drawn_marked_and_inside_their_windows() -> None:
    schedule = VenueSchedule(CAL, seed=7)
    changes = schedule.changes(_at(TUE, 0, 0), _at(TUE, 23, 0))
    drawn = [c for c in changes if c.drawn]
    assert [c.phase for c in drawn] == [Phase.BLOCKING, Phase.CLOSED]
    assert _at(TUE, 9, 20) <= drawn[0].ts_ns < _at(TUE, 9, 22)
    assert _at(TUE, 16, 8) <= drawn[1].ts_ns < _at(TUE, 16, 10)
    assert all(c.seed == 7 for c in drawn)
    assert schedule.phase_at(drawn[0].ts_ns - 1) is Phase.POS_RANDOM_MATCHING
    assert schedule.phase_at(drawn[0].ts_ns) is Phase.BLOCKING


def test_changes_resume_exactly_from_the_last_one_recorded() -> None:
    schedule = VenueSchedule(CAL, seed=3)
    whole = schedule.changes(_at(TUE, 0, 0), _at(THU, 23, 0))
    first = schedule.changes(_at(TUE, 0, 0), _at(TUE, 12, 30))
    rest = schedule.changes(first[-1].ts_ns, _at(THU, 23, 0))
    assert first + rest == whole


def test_another_seed_draws_other_moments() -> None:
    ends = {
        tuple(c.ts_ns for c in VenueSchedule(CAL, seed).changes(_at(TUE, 0, 0), _at(TUE, 23, 0)))
        for seed in range(20)
    }
    assert len(ends) > 1
