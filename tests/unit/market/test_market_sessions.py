import itertools
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sampan.market.calendar import NS_PER_S, midnight_ns
from sampan.market.sessions import (
    RANDOM_END_PHASES,
    DayKind,
    IllegalPhaseChangeError,
    OrderInput,
    Phase,
    PhaseWindow,
    phase_at,
    random_end_ns,
    timetable,
)

DAY = date(2026, 3, 10)


def _at(h: int, m: int, s: int = 0) -> int:
    return midnight_ns(DAY) + (h * 3600 + m * 60 + s) * NS_PER_S


def test_a_full_day_follows_hkex_sessions() -> None:
    windows = timetable(DAY, DayKind.FULL)
    expected = [
        (0, 0, Phase.NOT_YET_OPEN),
        (9, 0, Phase.POS_ORDER_INPUT),
        (9, 14, Phase.POS_ORDER_INPUT),
        (9, 15, Phase.POS_NO_CANCEL),
        (9, 20, Phase.POS_RANDOM_MATCHING),
        (9, 22, Phase.BLOCKING),
        (9, 30, Phase.CONTINUOUS),
        (11, 59, Phase.CONTINUOUS),
        (12, 0, Phase.LUNCH_BREAK),
        (13, 0, Phase.CONTINUOUS),
        (16, 0, Phase.CAS_REFERENCE_PRICE_FIXING),
        (16, 1, Phase.CAS_ORDER_INPUT),
        (16, 6, Phase.CAS_NO_CANCEL),
        (16, 8, Phase.CAS_RANDOM_CLOSE),
        (16, 10, Phase.CLOSED),
        (23, 59, Phase.CLOSED),
    ]
    for h, m, phase in expected:
        assert phase_at(windows, _at(h, m)) is phase, (h, m)
    assert windows[0].start_ns == midnight_ns(DAY)
    assert windows[-1].end_ns == midnight_ns(date(2026, 3, 11))
    for before, after in itertools.pairwise(windows):
        assert before.end_ns == after.start_ns and before.start_ns < before.end_ns


def test_a_half_day_closes_with_the_auction_at_noon() -> None:
    windows = timetable(DAY, DayKind.HALF)
    assert phase_at(windows, _at(11, 59)) is Phase.CONTINUOUS
    assert phase_at(windows, _at(12, 0)) is Phase.CAS_REFERENCE_PRICE_FIXING
    assert phase_at(windows, _at(12, 9)) is Phase.CAS_RANDOM_CLOSE
    assert phase_at(windows, _at(12, 10)) is Phase.CLOSED
    assert Phase.LUNCH_BREAK not in {w.phase for w in windows}


def test_a_holiday_never_opens() -> None:
    windows = timetable(DAY, DayKind.HOLIDAY)
    assert [w.phase for w in windows] == [Phase.NOT_YET_OPEN]
    assert phase_at(windows, _at(10, 0)) is Phase.NOT_YET_OPEN


def test_a_moment_outside_the_day_is_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        phase_at(timetable(DAY, DayKind.FULL), _at(24, 0))


@pytest.mark.parametrize("kind", [DayKind.FULL, DayKind.HALF])
def test_each_scheduled_move_is_a_legal_phase_change(kind: DayKind) -> None:
    windows = timetable(DAY, kind)
    for before, after in itertools.pairwise(windows):
        assert before.phase.to(after.phase) is after.phase
    assert windows[-1].phase.to(Phase.NOT_YET_OPEN) is Phase.NOT_YET_OPEN


def test_illegal_phase_changes_raise() -> None:
    with pytest.raises(IllegalPhaseChangeError):
        Phase.POS_ORDER_INPUT.to(Phase.CONTINUOUS)  # the opening auction cannot be skipped
    with pytest.raises(IllegalPhaseChangeError):
        Phase.CAS_ORDER_INPUT.to(Phase.CONTINUOUS)


def test_omd_codes_are_the_specs() -> None:
    # OMD-C 3.8.1: TradingSessionSubID, then TradingSesStatus.
    assert Phase.CONTINUOUS.omd_codes == (3, 30)
    assert Phase.CLOSED.omd_codes == (103, 50)
    assert Phase.NOT_YET_OPEN.omd_codes == (100, 0)
    assert Phase.POS_ORDER_INPUT.omd_codes == (1, 20)
    assert Phase.POS_NO_CANCEL.omd_codes == (101, 20)
    assert Phase.POS_RANDOM_MATCHING.omd_codes == (108, 20)
    assert Phase.BLOCKING.omd_codes == (7, 20)
    assert Phase.CAS_REFERENCE_PRICE_FIXING.omd_codes == (105, 40)
    assert Phase.CAS_ORDER_INPUT.omd_codes == (5, 40)
    assert Phase.CAS_NO_CANCEL.omd_codes == (106, 40)
    assert Phase.CAS_RANDOM_CLOSE.omd_codes == (107, 40)
    assert Phase.DAY_CLOSED.omd_codes == (0, 100)


def test_what_each_phase_allows() -> None:
    assert Phase.CONTINUOUS.order_input is OrderInput.CONTINUOUS and Phase.CONTINUOUS.cancel_allowed
    auctions = {p for p in Phase if p.is_auction}
    assert auctions == {
        Phase.POS_ORDER_INPUT, Phase.POS_NO_CANCEL, Phase.POS_RANDOM_MATCHING,
        Phase.CAS_ORDER_INPUT, Phase.CAS_NO_CANCEL, Phase.CAS_RANDOM_CLOSE,
    }  # fmt: skip
    cancellable = {p for p in Phase if p.cancel_allowed}
    assert cancellable == {
        Phase.POS_ORDER_INPUT,
        Phase.CONTINUOUS,
        Phase.LUNCH_BREAK,
        Phase.CAS_ORDER_INPUT,
    }
    assert Phase.BLOCKING.order_input is OrderInput.NONE and not Phase.BLOCKING.cancel_allowed


@given(st.integers(min_value=0, max_value=2**63))
def test_the_random_end_falls_inside_its_window_on_a_whole_second(seed: int) -> None:
    for window in timetable(DAY, DayKind.FULL):
        if window.phase not in RANDOM_END_PHASES:
            continue
        end = random_end_ns(seed, window)
        assert window.start_ns <= end < window.end_ns
        assert (end - window.start_ns) % NS_PER_S == 0
        assert random_end_ns(seed, window) == end  # the same seed draws the same moment


def test_random_ends_spread_over_the_window() -> None:
    window = PhaseWindow(Phase.CAS_RANDOM_CLOSE, _at(16, 8), _at(16, 10))
    ends = {random_end_ns(seed, window) for seed in range(500)}
    assert len(ends) > 60  # 120 possible seconds: a draw, not a constant
