"""The book owns amend: its own structure (levels, FIFO links, index) changes only in `book`."""

from __future__ import annotations

from sampan.matching.book import Order, OrderBook
from sampan.matching.instrument import Instrument, Rules
from sampan.matching.model import (
    Event,
    ExecType,
    ExecutionReport,
    Fill,
    OrderType,
    Side,
    StpMode,
)

HSBC = Instrument(5, 400, nominal_price_e3=60_000)
_STP = StpMode.CANCEL_RESTING


def resting(book: OrderBook, order_id: int, side: Side, price_e3: int, qty: int) -> Order:
    order = Order(
        order_id, f"acc{order_id}", f"m{order_id}", side, price_e3, qty, OrderType.LIMIT, _STP, 1
    )
    book.rest(order)
    book.validate()
    return order


def queue(book: OrderBook, side: Side, price_e3: int) -> list[tuple[int, int]]:
    level = (book.bids if side is Side.BUY else book.asks).levels[price_e3]
    out, node = [], level.head
    while node is not None:
        out.append((node.order_id, node.leaves_qty))
        node = node.next
    return out


def test_a_smaller_quantity_at_the_same_price_keeps_its_place_and_shrinks_the_level() -> None:
    book = OrderBook(HSBC, Rules.internal())
    first = resting(book, 1, Side.BUY, 60_000, 1_200)
    resting(book, 2, Side.BUY, 60_000, 400)
    out: list[Event] = []
    book.amend(first, 60_000, 800, 5, out)
    book.validate()
    assert queue(book, Side.BUY, 60_000) == [(1, 800), (2, 400)]
    assert book.bids.levels[60_000].qty == 1_200
    assert [type(e) for e in out] == [ExecutionReport]
    assert out[0].exec_type is ExecType.AMENDED  # type: ignore[union-attr]


def test_a_new_price_leaves_the_old_level_and_rests_last_at_the_new_one() -> None:
    book = OrderBook(HSBC, Rules.internal())
    moved = resting(book, 1, Side.BUY, 60_000, 400)
    resting(book, 2, Side.BUY, 59_950, 400)
    out: list[Event] = []
    book.amend(moved, 59_950, 800, 7, out)
    book.validate()
    assert 60_000 not in book.bids.levels
    assert queue(book, Side.BUY, 59_950) == [(2, 400), (1, 800)]
    assert moved.ts_ns == 7


def test_a_price_through_the_opposite_side_trades_then_rests_the_rest() -> None:
    book = OrderBook(HSBC, Rules.internal())
    resting(book, 1, Side.SELL, 60_050, 400)
    bid = resting(book, 2, Side.BUY, 60_000, 800)
    out: list[Event] = []
    book.amend(bid, 60_050, 800, 9, out)
    book.validate()
    assert any(isinstance(e, Fill) for e in out)
    assert 60_050 not in book.asks.levels
    assert queue(book, Side.BUY, 60_050) == [(2, 400)]
