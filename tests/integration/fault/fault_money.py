"""Each account's cash and positions recomputed from fills, independently of the ledger's code.

Written from the charge table (reference/hkex.md) and the broker's commission as the venue
configures it, with exact fractions, not from `sampan.ledger_sink.rules`: if both agree to the
cent over thousands of fills, neither carries a rounding or sign error the other lacks.

- Consideration: price (HK$, 3 decimals) x shares, to the cent, a half cent to the even cent.
- Stamp duty 0.1% of the consideration, rounded up to the whole dollar.
- SEHK trading fee 0.00565%, SFC levy 0.0027%, AFRC levy 0.00015%: to the nearest cent, a half
  cent up.
- Commission 0.025%, at least HK$50, to the nearest cent, a half cent up.
- Each member side pays every charge on the exact consideration; the exchange side of an HKEX
  fill (member `HKEX`) pays none. The buyer pays the consideration, the seller receives it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import Any

EXCHANGE = "HKEX"
CENT = Fraction(1, 100)


def _nearest_cent_half_up(dollars: Fraction) -> int:
    return math.floor(dollars * 100 + Fraction(1, 2))


def _cents_half_even(dollars: Fraction) -> int:
    return round(dollars * 100)  # Fraction.__round__ rounds a half to even


def charges_cents(consideration: Fraction) -> int:
    """One member side's charges on a consideration in HK$ (exact)."""
    stamp = math.ceil(consideration * Fraction(1, 1000)) * 100
    trading = _nearest_cent_half_up(consideration * Fraction(565, 10_000_000))
    sfc = _nearest_cent_half_up(consideration * Fraction(27, 1_000_000))
    afrc = _nearest_cent_half_up(consideration * Fraction(15, 10_000_000))
    commission = max(_nearest_cent_half_up(consideration * Fraction(25, 100_000)), 50_00)
    return stamp + trading + sfc + afrc + commission


def recompute(
    opening_cents: Mapping[str, int], fills: Iterable[Mapping[str, Any]]
) -> tuple[dict[str, int], dict[tuple[str, int], int]]:
    """(cash in cents per account, shares per (account, security)) after `fills`."""
    cash: dict[str, int] = defaultdict(int, opening_cents)
    shares: dict[tuple[str, int], int] = defaultdict(int)
    for fill in fills:
        consideration = Fraction(fill["price_e3"], 1000) * fill["qty"]
        paid = _cents_half_even(consideration)
        fee = charges_cents(consideration)
        buyer, seller = fill["buy_account"], fill["sell_account"]
        cash[buyer] -= paid
        cash[seller] += paid
        shares[(buyer, fill["security"])] += fill["qty"]
        shares[(seller, fill["security"])] -= fill["qty"]
        if fill["buy_member"] != EXCHANGE:
            cash[buyer] -= fee
        if fill["sell_member"] != EXCHANGE:
            cash[seller] -= fee
    return dict(cash), dict(shares)
