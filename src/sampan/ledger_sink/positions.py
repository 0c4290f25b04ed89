"""Positions with average cost and realised P&L. Pure: no I/O.

Scale: `cost_e3` and `realised_pnl_e3` are exact integers in HK$0.001, the unit of
`price_e3 * qty`, so buying and selling at exchange prices never rounds. Only closing part of a
position rounds: the cost removed is `cost_e3 * closed / |qty|`, rounded half to even; the
rest of the cost stays with the remaining shares, so `cost_e3 - realised_pnl_e3` always equals
the net amount paid for the shares bought less received for the shares sold, whatever the
order. A short position has negative `qty` and negative `cost_e3` (the proceeds received).

The average cost is derived, `avg_cost_e6 = cost_e3 * 1000 / qty` (HK$0.000001, half-even).
P&L is gross of charges. Limits: the split between cost and realised P&L depends on the order
fills reach the ledger (average cost is order-dependent by nature).
"""

from __future__ import annotations

from typing import NamedTuple

from sampan.ledger_sink.rules import round_half_even


class Position(NamedTuple):
    """A plain tuple: the sink applies two trades per fill (a frozen dataclass costs more)."""

    qty: int = 0
    cost_e3: int = 0
    realised_pnl_e3: int = 0

    @property
    def avg_cost_e6(self) -> int:
        if self.qty == 0:
            return 0
        sign = 1 if self.qty > 0 else -1
        return round_half_even(self.cost_e3 * 1000 * sign, abs(self.qty))


def apply_trade(position: Position, signed_qty: int, price_e3: int) -> Position:
    """The position after buying (signed_qty > 0) or selling (< 0) at price_e3."""
    assert signed_qty != 0 and price_e3 > 0
    qty, cost, realised = position.qty, position.cost_e3, position.realised_pnl_e3
    if qty == 0 or (qty > 0) == (signed_qty > 0):
        return Position(qty + signed_qty, cost + signed_qty * price_e3, realised)
    sign = 1 if qty > 0 else -1
    closed = min(abs(signed_qty), abs(qty))
    # round_half_even needs a positive denominator; the numerator keeps the cost's sign.
    removed = round_half_even(cost * closed, abs(qty))
    realised += sign * closed * price_e3 - removed
    qty -= sign * closed
    cost -= removed
    rest = signed_qty + sign * closed  # what is left of the trade after closing
    if rest:
        assert qty == 0
        return Position(rest, rest * price_e3, realised)
    return Position(qty, cost, realised)
