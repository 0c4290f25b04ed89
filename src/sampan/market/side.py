"""The side of an order or a trade: one enum for every process and record.

Guarantees: its values are the Avro `Side` symbols, so a member is the string a record carries
(`Side.BUY == "BUY"`). The matching engine knows BUY and SELL only (a covered short sale
matches as a sale); FIX maps its wire codes to and from this enum (`fix.messages`).
"""

from __future__ import annotations

import enum


class Side(enum.StrEnum):
    BUY = "BUY"
    SELL = "SELL"
    SELL_SHORT = "SELL_SHORT"  # a covered short sale

    @property
    def buys(self) -> bool:
        return self is Side.BUY
