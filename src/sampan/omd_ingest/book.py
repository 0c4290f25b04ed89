"""The HKEX aggregate order book: 10 levels a side per security, built from message 53.

Guarantees (the rules of OMD-C §5):
- Entries are applied one at a time, in message order, each with its own level shift:
  New inserts at PriceLevel and pushes the levels below it down, Delete removes PriceLevel and
  pulls the levels below it up, Change replaces the quantity and order count at PriceLevel,
  Orderbook Clear (74) empties both sides of the security.
- After every entry a side holds at most ``LEVELS_MAX`` (10) levels; an insert that pushes a
  level past the tenth drops it (the spec's "implicit deletion", Example 3).
- Each side stays strictly sorted (bids descending, offers ascending, no duplicate price).
- An entry that cannot apply to the book as it stands (a level out of range or past the end,
  a Change or Delete whose price differs from the price at that level, an insert that breaks
  the sort, an unknown Side or UpdateAction) raises ``BookInconsistent``. That means we missed
  or misordered data: the caller must treat the security as stale and rebuild it from a
  refresh. Entries of the same message before the bad one have already been applied.

Limits: the book does not know tick sizes; it keeps price levels only (the spec sends price
levels, never tick levels). Quantities are shares, prices ``price_e3`` (HK$0.001).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from sampan.omd.wire import (
    ACTION_CHANGE,
    ACTION_CLEAR,
    ACTION_DELETE,
    ACTION_NEW,
    SIDE_BID,
    SIDE_OFFER,
    AggregateOrderBookUpdate,
    BookEntry,
)

LEVELS_MAX = 10
SECURITY_CODE_MIN = 1
SECURITY_CODE_MAX = 99_999  # §3.7.2: five-digit codes, which also bounds BookSet's size


class BookInconsistent(ValueError):
    """A book update that contradicts the book: data was missed; refresh the security."""


@dataclass(frozen=True, slots=True)
class Level:
    """One price level of a side, as a reader sees it."""

    price_e3: int
    aggregate_quantity: int
    number_of_orders: int


# A side is a list of (price_e3, aggregate_quantity, number_of_orders), best first. Tuples in a
# plain list because insert/pop on a 10-element list is the cheapest structure in CPython.
_Side = list[tuple[int, int, int]]


class AggregateBook:
    """The board-lot aggregate book of one security."""

    __slots__ = ("asks", "bids", "security_code")

    def __init__(self, security_code: int) -> None:
        self.security_code = security_code
        self.bids: _Side = []
        self.asks: _Side = []

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()

    def apply_message(self, message: AggregateOrderBookUpdate) -> None:
        assert message.security_code == self.security_code
        for entry in message.entries:
            self.apply_entry(entry)

    def apply_entry(self, entry: BookEntry) -> None:
        action = entry.update_action
        if action == ACTION_CLEAR:
            self.bids.clear()
            self.asks.clear()
            return
        side = entry.side
        if side == SIDE_BID:
            levels, is_bid = self.bids, True
        elif side == SIDE_OFFER:
            levels, is_bid = self.asks, False
        else:
            raise self._bad(entry, f"unknown side {side}")
        index = entry.price_level - 1
        if not 0 <= index < LEVELS_MAX:
            raise self._bad(entry, "price level outside 1..10")
        price = entry.price_e3
        if action == ACTION_NEW:
            count = len(levels)
            if index > count:
                raise self._bad(entry, f"insert past the end of {count} levels")
            # Better means higher for bids, lower for offers: the level above must be better
            # and the one it displaces worse.
            if index > 0:
                above = levels[index - 1][0]
                if (above <= price) if is_bid else (above >= price):
                    raise self._bad(entry, f"insert not below level {index} at {above}")
            if index < count:
                below = levels[index][0]
                if (below >= price) if is_bid else (below <= price):
                    raise self._bad(entry, f"insert not above level {index + 1} at {below}")
            levels.insert(index, (price, entry.aggregate_quantity, entry.number_of_orders))
            if count == LEVELS_MAX:
                del levels[LEVELS_MAX:]
        elif action == ACTION_CHANGE:
            if index >= len(levels) or levels[index][0] != price:
                raise self._bad(entry, "change of a level that is not there at that price")
            levels[index] = (price, entry.aggregate_quantity, entry.number_of_orders)
        elif action == ACTION_DELETE:
            if index >= len(levels) or levels[index][0] != price:
                raise self._bad(entry, "delete of a level that is not there at that price")
            del levels[index]
        else:
            raise self._bad(entry, f"unknown update action {action}")

    def _bad(self, entry: BookEntry, why: str) -> BookInconsistent:
        return BookInconsistent(f"security {self.security_code}: {why}: {entry}")

    def bid_levels(self) -> tuple[Level, ...]:
        return tuple(Level(*t) for t in self.bids)

    def ask_levels(self) -> tuple[Level, ...]:
        return tuple(Level(*t) for t in self.asks)

    def check_invariants(self) -> None:
        """Assert what every reachable state satisfies; tests call it after each step."""
        for levels, sign in ((self.bids, -1), (self.asks, 1)):
            assert len(levels) <= LEVELS_MAX, levels
            prices = [p for p, _, _ in levels]
            assert all(sign * (b - a) > 0 for a, b in itertools.pairwise(prices))


class BookSet:
    """The aggregate books of one channel, one per security code seen."""

    __slots__ = ("books",)

    def __init__(self) -> None:
        self.books: dict[int, AggregateBook] = {}

    def apply(self, message: AggregateOrderBookUpdate) -> AggregateBook:
        """Apply a message 53 to its security's book (created on first sight) and return it."""
        code = message.security_code
        book = self.books.get(code)
        if book is None:
            if not SECURITY_CODE_MIN <= code <= SECURITY_CODE_MAX:
                raise BookInconsistent(f"security code {code} outside 1..99999")
            book = self.books[code] = AggregateBook(code)
        for entry in message.entries:
            book.apply_entry(entry)
        return book

    def clear_all(self) -> None:
        """Forget every book, as a SequenceReset or the start of a refresh requires."""
        self.books.clear()
