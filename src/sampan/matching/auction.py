"""Single-price auctions: the indicative equilibrium price and the uncross, pure.

Guarantees:
- `equilibrium(...)` chooses the Indicative Equilibrium Price (IEP) among the prices of the
  priced orders of both sides, by these rules in turn (OMD-C spec Appendix B and HKEX's
  published auction rules; v1.45's Appendix B is a chart, so sampan states its reading here):
  1. the price at which the most shares can trade (the IEV);
  2. then the smallest order imbalance (|buy quantity - sell quantity| matchable at the price);
  3. then the price nearest the reference price (the previous close in the pre-opening, the
     reference price in the closing auction; skipped when there is none);
  4. then the higher price.
  At-auction orders (no price) count at every price, ahead of every priced order. No price
  with a positive volume means no IEP (None).
- The uncross itself (`OrderBook.uncross`) trades at the one price in priority order; this
  module decides the price.
- `band(...)` rounds a price band inward onto the spread table, so a limit is a valid price.
"""

from __future__ import annotations

from typing import NamedTuple

from sampan.market.rules import PRICE_MAX_E3, PRICE_MIN_E3, SpreadTable
from sampan.market.side import Side

# At-auction orders rest at these level prices so that each side's walk from its best level
# meets them first; their own `price_e3` stays 0.
AT_AUCTION_BID_LEVEL_E3 = PRICE_MAX_E3 + 1
AT_AUCTION_ASK_LEVEL_E3 = 0


class Equilibrium(NamedTuple):
    """The IEP, the IEV (shares that would trade) and the imbalance at the IEP: which side
    has more matchable quantity (None when equal) and by how much."""

    price_e3: int
    qty: int
    surplus_side: Side | None
    surplus_qty: int


def equilibrium(
    bid_levels: list[tuple[int, int]],
    ask_levels: list[tuple[int, int]],
    at_auction_buy_qty: int,
    at_auction_sell_qty: int,
    reference_e3: int,
) -> Equilibrium | None:
    """The IEP of a book given its priced levels as (price_e3, qty) in any order and its
    at-auction quantities. O(L log L) in the number of levels."""
    prices = sorted({p for p, _ in bid_levels} | {p for p, _ in ask_levels})
    if not prices:
        return None
    bid_at: dict[int, int] = {}
    for price, qty in bid_levels:
        bid_at[price] = bid_at.get(price, 0) + qty
    ask_at: dict[int, int] = {}
    for price, qty in ask_levels:
        ask_at[price] = ask_at.get(price, 0) + qty
    # demand[i]: buy quantity willing to pay prices[i]; supply[i]: sell quantity willing to
    # accept it.
    n = len(prices)
    supply = [0] * n
    running = at_auction_sell_qty
    for i, price in enumerate(prices):
        running += ask_at.get(price, 0)
        supply[i] = running
    demand = [0] * n
    running = at_auction_buy_qty
    for i in range(n - 1, -1, -1):
        running += bid_at.get(prices[i], 0)
        demand[i] = running
    best: tuple[int, int, int, int] | None = None
    best_i = -1
    for i, price in enumerate(prices):
        volume = min(demand[i], supply[i])
        if volume <= 0:
            continue
        distance = abs(price - reference_e3) if reference_e3 else 0
        key = (-volume, abs(demand[i] - supply[i]), distance, -price)
        if best is None or key < best:
            best, best_i = key, i
    if best is None:
        return None
    return _at(prices[best_i], demand[best_i], supply[best_i])


def at_price(
    bid_levels: list[tuple[int, int]],
    ask_levels: list[tuple[int, int]],
    at_auction_buy_qty: int,
    at_auction_sell_qty: int,
    price_e3: int,
) -> Equilibrium:
    """Volume and imbalance if the book traded at `price_e3` (the closing auction's fallback
    to the reference price when no IEP exists)."""
    demand = at_auction_buy_qty + sum(q for p, q in bid_levels if p >= price_e3)
    supply = at_auction_sell_qty + sum(q for p, q in ask_levels if p <= price_e3)
    return _at(price_e3, demand, supply)


def _at(price_e3: int, demand: int, supply: int) -> Equilibrium:
    side = Side.BUY if demand > supply else Side.SELL if supply > demand else None
    return Equilibrium(price_e3, min(demand, supply), side, abs(demand - supply))


def band(table: SpreadTable, reference_e3: int, bps: int) -> tuple[int, int]:
    """(low, high): `reference_e3` -/+ `bps` basis points, rounded inward onto ticks and
    clamped to the table. (0, 0) when there is no reference (no band applies)."""
    if reference_e3 <= 0:
        return 0, 0
    high = min(reference_e3 * (10_000 + bps) // 10_000, PRICE_MAX_E3)
    low = max(-(-reference_e3 * (10_000 - bps) // 10_000), PRICE_MIN_E3)
    high -= high % table.tick_e3(high)
    low += -low % table.tick_e3(low)
    return low, high
