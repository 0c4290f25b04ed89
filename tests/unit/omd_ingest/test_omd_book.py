"""The aggregate book against the six worked examples of OMD-C §5 and a deeper "true" book."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sampan.omd.wire import AggregateOrderBookUpdate, BookEntry
from sampan.omd_ingest.book import LEVELS_MAX, AggregateBook, BookInconsistent, BookSet

BID, OFFER = 0, 1
NEW, CHANGE, DELETE, CLEAR = 0, 1, 2, 74


def msg(*entries: tuple[int, int, int, int, int, int]) -> AggregateOrderBookUpdate:
    return AggregateOrderBookUpdate(1234, tuple(BookEntry(*e) for e in entries))


def view(levels: list[tuple[int, int, int]]) -> list[tuple[int, int]]:
    return [(price, qty) for price, qty, _ in levels]


INITIAL_BIDS = [
    (9730, 700), (9720, 350), (9710, 150), (9700, 250), (9690, 100),
    (9680, 150), (9670, 50), (9660, 200), (9650, 100),
]  # fmt: skip
INITIAL_ASKS = [(9760, 500), (9770, 300), (9780, 100), (9790, 150)]


def spec_book() -> BookSet:
    """The book of the table just before Example 1, built by explicit additions."""
    books = BookSet()
    entries = [(q, p, 1, BID, i + 1, NEW) for i, (p, q) in enumerate(INITIAL_BIDS)]
    entries += [(q, p, 1, OFFER, i + 1, NEW) for i, (p, q) in enumerate(INITIAL_ASKS)]
    books.apply(msg(*entries))
    return books


def apply(books: BookSet, m: AggregateOrderBookUpdate) -> AggregateBook:
    book = books.apply(m)
    book.check_invariants()
    return book


EX1 = msg((200, 9770, 1, OFFER, 2, CHANGE), (300, 9850, 1, OFFER, 5, NEW))
EX2 = msg((50, 9740, 1, BID, 1, NEW))
EX3 = msg((250, 9750, 1, BID, 1, NEW), (150, 9660, 1, BID, 10, CHANGE))
EX4 = msg((250, 9750, 1, BID, 1, DELETE), (100, 9650, 1, BID, 10, NEW))
EX5 = msg((300, 9750, 1, OFFER, 1, NEW), (300, 9850, 1, OFFER, 6, DELETE))
EX6 = msg((0, 0, 0, 0, 0, CLEAR))

ASKS_AFTER_EX1 = [(9760, 500), (9770, 200), (9780, 100), (9790, 150), (9850, 300)]
BIDS_AFTER_EX2 = [(9740, 50), *INITIAL_BIDS[:9]]
BIDS_AFTER_EX3 = [(9750, 250), (9740, 50), *INITIAL_BIDS[:7], (9660, 150)]
# Example 4's table prints 9660 at 200, but Example 3 changed it to 150 and Example 4's message
# does not touch it; we follow the messages (the table looks copied from Example 2).
BIDS_AFTER_EX4 = [(9740, 50), *INITIAL_BIDS[:7], (9660, 150), (9650, 100)]
ASKS_AFTER_EX5 = [(9750, 300), (9760, 500), (9770, 200), (9780, 100), (9790, 150)]


def test_example_1_quantity_reduction_and_explicit_addition() -> None:
    book = apply(spec_book(), EX1)
    assert view(book.asks) == ASKS_AFTER_EX1
    assert view(book.bids) == INITIAL_BIDS


def test_example_2_implicit_level_adjustment() -> None:
    books = spec_book()
    apply(books, EX1)
    book = apply(books, EX2)
    assert view(book.bids) == BIDS_AFTER_EX2
    assert view(book.asks) == ASKS_AFTER_EX1


def test_example_3_implicit_deletion_past_ten_levels() -> None:
    books = spec_book()
    for m in (EX1, EX2):
        apply(books, m)
    book = apply(books, EX3)
    assert view(book.bids) == BIDS_AFTER_EX3
    assert (9650, 100) not in view(book.bids)


def test_example_4_explicit_addition_of_revealed_level() -> None:
    books = spec_book()
    for m in (EX1, EX2, EX3):
        apply(books, m)
    book = apply(books, EX4)
    assert view(book.bids) == BIDS_AFTER_EX4
    assert view(book.asks) == ASKS_AFTER_EX1


def test_example_5_explicit_deletion() -> None:
    books = spec_book()
    for m in (EX1, EX2, EX3, EX4):
        apply(books, m)
    book = apply(books, EX5)
    assert view(book.asks) == ASKS_AFTER_EX5
    assert view(book.bids) == BIDS_AFTER_EX4


def test_example_5_explicit_versus_implicit_deletions() -> None:
    books = BookSet()
    start = [(9800, 700), (9790, 350), (9780, 150), (9760, 250), (9750, 100),
             (9730, 400), (9720, 200), (9710, 300)]  # fmt: skip
    apply(books, msg(*[(q, p, 1, BID, i + 1, NEW) for i, (p, q) in enumerate(start)]))
    book = apply(
        books,
        msg(
            (450, 9860, 1, BID, 1, NEW),
            (550, 9850, 1, BID, 2, NEW),
            (650, 9840, 1, BID, 3, NEW),
            (250, 9760, 1, BID, 7, DELETE),
            (100, 9750, 1, BID, 7, DELETE),
            (400, 9730, 1, BID, 7, DELETE),
            (200, 9720, 1, BID, 7, DELETE),
        ),
    )
    assert view(book.bids) == [(9860, 450), (9850, 550), (9840, 650),
                               (9800, 700), (9790, 350), (9780, 150)]  # fmt: skip


def test_example_6_orderbook_clear_empties_both_sides() -> None:
    books = spec_book()
    for m in (EX1, EX2, EX3, EX4, EX5):
        apply(books, m)
    book = apply(books, EX6)
    assert book.bids == [] and book.asks == []
    book = apply(books, msg((100, 9700, 1, BID, 1, NEW)))
    assert view(book.bids) == [(9700, 100)]


@pytest.mark.parametrize(
    "entry",
    [
        (1, 9000, 1, BID, 11, NEW),  # level beyond 10
        (1, 9000, 1, BID, 0, NEW),  # level 0 outside a clear
        (1, 9900, 1, OFFER, 6, NEW),  # insert past the end of the 4 offers
        (1, 9731, 1, BID, 2, NEW),  # breaks the sort
        (1, 9999, 1, BID, 3, CHANGE),  # change at the wrong price
        (1, 9720, 1, BID, 3, DELETE),  # delete at the wrong price
        (1, 9770, 1, OFFER, 9, CHANGE),  # change past the end
        (1, 9770, 1, 2, 1, NEW),  # unknown side
        (1, 9770, 1, OFFER, 1, 9),  # unknown action
    ],
)
def test_inconsistent_entries_raise(entry: tuple[int, int, int, int, int, int]) -> None:
    books = spec_book()
    with pytest.raises(BookInconsistent):
        books.apply(msg(entry))


def test_bad_security_code_is_rejected() -> None:
    with pytest.raises(BookInconsistent):
        BookSet().apply(AggregateOrderBookUpdate(0, ()))
    with pytest.raises(BookInconsistent):
        BookSet().apply(AggregateOrderBookUpdate(100_000, ()))


# --- Property: a deeper "true" book, and the updates a publisher would send for its top 10. ---


def publisher_entries(
    old: list[tuple[int, int, int]], new: list[tuple[int, int, int]], side: int, lazy: bool
) -> list[tuple[int, int, int, int, int, int]]:
    """Entries turning top-10 ``old`` into ``new`` under §5's rules.

    ``lazy`` first inserts new prices and lets the client drop what falls past level 10
    (implicit deletion), as Example 3 does; then it deletes, reveals and changes explicitly.
    """
    better = (lambda a, b: a > b) if side == BID else (lambda a, b: a < b)
    work = list(old)
    out: list[tuple[int, int, int, int, int, int]] = []
    new_prices = {p for p, _, _ in new}
    if lazy:
        for p, q, n in new:
            if any(w[0] == p for w in work):
                continue
            i = sum(1 for w in work if better(w[0], p))
            if i >= LEVELS_MAX:
                continue
            out.append((q, p, n, side, i + 1, NEW))
            work.insert(i, (p, q, n))
            del work[LEVELS_MAX:]
    for p, q, n in list(work):
        if p not in new_prices:
            i = [w[0] for w in work].index(p)
            out.append((q, p, n, side, i + 1, DELETE))
            del work[i]
    for i, (p, q, n) in enumerate(new):
        if i >= len(work) or work[i][0] != p:
            out.append((q, p, n, side, i + 1, NEW))
            work.insert(i, (p, q, n))
        elif work[i] != (p, q, n):
            out.append((q, p, n, side, i + 1, CHANGE))
            work[i] = (p, q, n)
    assert work == new
    return out


step = st.tuples(
    st.sampled_from(["add", "remove", "change"]),
    st.integers(0, 1),  # side
    st.integers(0, 30),  # tick index from the touch
    st.integers(1, 10_000),  # quantity
    st.booleans(),  # lazy publisher
)


@settings(max_examples=150, deadline=None)
@given(st.lists(step, min_size=1, max_size=80))
def test_book_tracks_the_top_ten_of_a_deeper_book(
    steps: list[tuple[str, int, int, int, bool]],
) -> None:
    truth: list[dict[int, tuple[int, int]]] = [{}, {}]
    book = AggregateBook(1234)

    def top(side: int) -> list[tuple[int, int, int]]:
        prices = sorted(truth[side], reverse=side == BID)[:LEVELS_MAX]
        return [(p, *truth[side][p]) for p in prices]

    for action, side, tick, qty, lazy in steps:
        price = 50_000 - 10 * tick if side == BID else 50_010 + 10 * tick
        old = top(side)
        if action == "add" or price not in truth[side]:
            truth[side][price] = (qty, 1)
        elif action == "remove":
            del truth[side][price]
        else:
            truth[side][price] = (qty, truth[side][price][1] + 1)
        entries = publisher_entries(old, top(side), side, lazy)
        book.apply_message(AggregateOrderBookUpdate(1234, tuple(BookEntry(*e) for e in entries)))
        book.check_invariants()
        assert book.bids == top(BID)
        assert book.asks == top(OFFER)
