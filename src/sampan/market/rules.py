"""HKEX-wide trading rules: the spread tables, the price bounds and the order size in lots.

Guarantees: tick arithmetic is exact integer arithmetic on prices in HK$0.001 (`price_e3`);
a price is on tick when it is a multiple of the tick of the band holding it (upper bounds
inclusive, as HKEX publishes them). Both venues, the router's risk checks and the simulator
read these tables from here.

Limits: only the Part A (equities) spread tables are defined. HKEX publishes the code of the
current Part A table as "01"; sampan numbers it 1 and gives the table in force before
4 Aug 2025 the venue-local code 101 so that replays of older days stay reproducible.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass

PRICE_MIN_E3 = 10  # HK$0.01, the lowest price the Part A tables cover.
PRICE_MAX_E3 = 9_995_000  # HK$9,995, the highest.

LOTS_PER_ORDER_MAX = 3000  # HKEX's largest order, in board lots.

SPREAD_TABLE_PART_A = 1
SPREAD_TABLE_PART_A_BEFORE_2025_08 = 101


@dataclass(frozen=True, slots=True)
class SpreadTable:
    """Price bands as (inclusive upper bound, tick), both in HK$0.001, ascending."""

    code: int
    uppers_e3: tuple[int, ...]
    ticks_e3: tuple[int, ...]

    def tick_e3(self, price_e3: int) -> int:
        """The tick of the band holding `price_e3` (which must lie in the table)."""
        return self.ticks_e3[bisect_left(self.uppers_e3, price_e3)]

    def is_on_tick(self, price_e3: int) -> bool:
        return price_e3 % self.ticks_e3[bisect_left(self.uppers_e3, price_e3)] == 0

    def tick_up(self, price_e3: int, ticks: int) -> int:
        """`price_e3` moved `ticks` spreads up, clamped to the table's highest price."""
        uppers, steps = self.uppers_e3, self.ticks_e3
        for _ in range(ticks):
            if price_e3 >= PRICE_MAX_E3:
                return PRICE_MAX_E3
            # At a band's upper bound the next price uses the next band's tick.
            price_e3 += steps[bisect_right(uppers, price_e3)]
        return price_e3

    def tick_down(self, price_e3: int, ticks: int) -> int:
        """`price_e3` moved `ticks` spreads down, clamped to the table's lowest price."""
        uppers, steps = self.uppers_e3, self.ticks_e3
        for _ in range(ticks):
            if price_e3 <= PRICE_MIN_E3:
                return PRICE_MIN_E3
            price_e3 -= steps[bisect_left(uppers, price_e3)]
        return price_e3


def _table(code: int, bands: tuple[tuple[int, int], ...]) -> SpreadTable:
    for upper, tick in bands:
        assert upper % tick == 0, "a band's upper bound must be on its own tick"
    return SpreadTable(code, tuple(u for u, _ in bands), tuple(t for _, t in bands))


SPREAD_TABLES: dict[int, SpreadTable] = {
    SPREAD_TABLE_PART_A: _table(
        SPREAD_TABLE_PART_A,
        (
            (250, 1),
            (500, 5),
            (10_000, 10),
            (20_000, 10),
            (50_000, 20),
            (100_000, 50),
            (200_000, 100),
            (500_000, 200),
            (1_000_000, 500),
            (2_000_000, 1_000),
            (5_000_000, 2_000),
            (9_995_000, 5_000),
        ),
    ),
    SPREAD_TABLE_PART_A_BEFORE_2025_08: _table(
        SPREAD_TABLE_PART_A_BEFORE_2025_08,
        (
            (250, 1),
            (500, 5),
            (10_000, 10),
            (20_000, 20),
            (50_000, 50),
            (100_000, 50),
            (200_000, 100),
            (500_000, 200),
            (1_000_000, 500),
            (2_000_000, 1_000),
            (5_000_000, 2_000),
            (9_995_000, 5_000),
        ),
    ),
}
