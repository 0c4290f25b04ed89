"""Money and prices as integers with a known scale, and their exact text forms.

Guarantees: prices are integers in HK$0.001 (`price_e3`), cash integers in HK cents
(`cents`); a price times a quantity in shares is an exact notional in HK$0.001
(`notional_e3`). Formatting never goes through a float, so what is printed is what is stored.

Limits: only Hong Kong dollars; rounding between scales is left to the caller, which must
say which way it rounds (a hold rounds up, a ledger posting rounds as its rule says).
"""

from __future__ import annotations

E3_PER_CENT = 10
E3_PER_DOLLAR = 1_000
CENTS_PER_DOLLAR = 100


def format_price_e3(price_e3: int) -> str:
    """350200 -> "350.200": HK$ with the three decimals of the price scale."""
    sign = "-" if price_e3 < 0 else ""
    whole, frac = divmod(abs(price_e3), E3_PER_DOLLAR)
    return f"{sign}{whole}.{frac:03d}"


def format_notional_e3(notional_e3: int) -> str:
    """1234567890 -> "1,234,567.890": an amount in HK$0.001 with thousands separators."""
    sign = "-" if notional_e3 < 0 else ""
    whole, frac = divmod(abs(notional_e3), E3_PER_DOLLAR)
    return f"{sign}{whole:,}.{frac:03d}"


def format_cents(cents: int) -> str:
    """-123456 -> "-1,234.56": cash in HK$ with thousands separators."""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), CENTS_PER_DOLLAR)
    return f"{sign}{whole:,}.{frac:02d}"


def cents_half_even(amount_e3: int) -> int:
    """HK$0.001 -> HK cents, rounded to the nearest cent, ties to even (as the ledger values a
    position: `qty * last price`, each rounded so)."""
    quotient, remainder = divmod(amount_e3, E3_PER_CENT)
    twice = 2 * remainder
    if twice > E3_PER_CENT or (twice == E3_PER_CENT and quotient % 2 == 1):
        quotient += 1
    return quotient
