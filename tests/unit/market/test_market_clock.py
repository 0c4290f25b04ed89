from datetime import date

import pytest

from sampan.market.calendar import NS_PER_S, midnight_ns
from sampan.market.clock import Clock, ClockSpecError, parse_clock


class FakeWall:
    def __init__(self, now_ns: int) -> None:
        self.now = now_ns

    def __call__(self) -> int:
        return self.now


WALL0 = 1_800_000_000 * NS_PER_S


def test_real_time_is_the_wall_clock() -> None:
    wall = FakeWall(WALL0)
    clock = parse_clock("real", wall)
    wall.now += 5 * NS_PER_S
    assert clock.now_ns() == WALL0 + 5 * NS_PER_S and clock.is_real


def test_accelerated_runs_factor_times_faster_from_its_start() -> None:
    wall = FakeWall(WALL0)
    clock = parse_clock("accelerated:60@2026-03-10T08:59", wall)
    start = midnight_ns(date(2026, 3, 10)) + (8 * 3600 + 59 * 60) * NS_PER_S
    assert clock.now_ns() == start
    wall.now += NS_PER_S  # one wall second is a venue minute
    assert clock.now_ns() == start + 60 * NS_PER_S
    assert clock.wall_s_until(start + 600 * NS_PER_S) == 9.0
    assert clock.wall_s_until(start) == 0.0
    assert not clock.is_real


def test_accelerated_without_a_start_starts_now() -> None:
    wall = FakeWall(WALL0)
    clock = parse_clock("accelerated:10", wall)
    wall.now += 2 * NS_PER_S
    assert clock.now_ns() == WALL0 + 20 * NS_PER_S


def test_the_clock_never_goes_backwards() -> None:
    wall = FakeWall(WALL0)
    clock = Clock.real(wall)
    assert clock.now_ns() == WALL0
    wall.now -= NS_PER_S  # the wall clock was stepped back
    assert clock.now_ns() == WALL0


@pytest.mark.parametrize(
    "spec", ["fast", "accelerated", "accelerated:x", "accelerated:0", "accelerated:5@noon"]
)
def test_bad_specs_are_refused_with_a_reason(spec: str) -> None:
    with pytest.raises(ClockSpecError, match="clock"):
        parse_clock(spec)
