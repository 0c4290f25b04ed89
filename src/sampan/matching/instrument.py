"""What the book needs to know of a security, and the `Rules` switches of a venue.

Guarantees: an `Instrument` names a spread table that exists and a positive board lot. The same
`Rules` value turns the internal venue's engine into an HKEX-like one (`Rules.hkex()`); nothing
else differs between the two.
"""

from __future__ import annotations

from dataclasses import dataclass

from sampan.market.rules import LOTS_PER_ORDER_MAX, SPREAD_TABLE_PART_A, SPREAD_TABLES


@dataclass(frozen=True, slots=True)
class Instrument:
    """A security as the book needs it. `nominal_price_e3` (0 = unknown) seeds the 9x check
    until the book's first trade sets a nominal price of its own."""

    security: int
    board_lot: int
    spread_table: int = SPREAD_TABLE_PART_A
    nominal_price_e3: int = 0
    enabled: bool = True

    def __post_init__(self) -> None:
        assert self.security > 0, "security codes are positive"
        assert self.board_lot > 0, "a board lot holds at least one share"
        assert self.spread_table in SPREAD_TABLES, f"unknown spread table {self.spread_table}"
        assert self.nominal_price_e3 >= 0


@dataclass(frozen=True, slots=True)
class Rules:
    """Switches that separate the internal venue from HKEX's continuous session.

    `limit_matches_best_only`: a limit order may trade only at the best opposite price, so a
    limit priced through it is rejected (HKEX). Otherwise a limit order sweeps to its price.
    `enhanced_limit_levels_max`: an enhanced limit order may reach this many spreads counted
    from the best opposite price inclusive (HKEX: 10, the best and 9 spreads beyond).
    `nominal_price_check_factor`: reject prices >= factor x nominal or <= nominal / factor
    (0 turns the check off). `market_collar_bps`: a market order trades no further than this
    from the best opposite price at arrival; the rest expires. `vcm_band_bps`: volatility
    control (`matching.volatility`); off at 0, as before it existed.
    """

    limit_matches_best_only: bool = False
    enhanced_limit_levels_max: int = 10
    max_lots_per_order: int = LOTS_PER_ORDER_MAX
    nominal_price_check_factor: int = 9
    stp_enabled: bool = True
    market_orders_allowed: bool = True
    market_collar_bps: int = 500
    vcm_band_bps: int = 0  # volatility control: 0 off; HKEX 1,000 (10%) for the large caps
    vcm_window_ns: int = 300 * 1_000_000_000  # the reference is the price this long before
    vcm_cooling_ns: int = 300 * 1_000_000_000  # a cooling-off period lasts this long

    def __post_init__(self) -> None:
        assert self.enhanced_limit_levels_max >= 1
        assert self.max_lots_per_order >= 1
        assert self.nominal_price_check_factor >= 0
        assert 0 <= self.market_collar_bps < 10_000
        assert 0 <= self.vcm_band_bps < 10_000

    @classmethod
    def internal(cls) -> Rules:
        return cls()

    @classmethod
    def hkex(cls) -> Rules:
        """HKEX continuous trading: no market orders, no self-trade prevention."""
        return cls(limit_matches_best_only=True, stp_enabled=False, market_orders_allowed=False)
