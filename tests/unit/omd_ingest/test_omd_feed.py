"""The feed handler: malformed and unknown input is counted, resets clear, books and trades flow."""

from __future__ import annotations

from sampan.omd.packets import encode_packet
from sampan.omd.wire import (
    ACTION_NEW,
    SIDE_BID,
    AggregateOrderBookUpdate,
    BookEntry,
    SequenceReset,
    Trade,
    UnknownMessage,
)
from sampan.omd_ingest.arbitration import LineArbiter
from sampan.omd_ingest.feed import DepthOut, FeedHandler, TradeOut


def _book(code: int, price: int) -> AggregateOrderBookUpdate:
    return AggregateOrderBookUpdate(code, (BookEntry(100, price, 1, SIDE_BID, 1, ACTION_NEW),))


def test_feed_counts_bad_input_and_applies_the_rest() -> None:
    feed = FeedHandler(LineArbiter(next_seq_num=1, reset_duplicate_window=5))
    assert feed.on_line_packet(b"\x01\x02garbage", 0) is None
    assert feed.counters.malformed == 1
    unknown = UnknownMessage(999, b"\x08\x00\xe7\x03abcd")
    out = feed.on_line_packet(
        encode_packet(
            1,
            5,
            [SequenceReset(1), _book(700, 500_000), unknown, Trade(700, 1, 500_000, 100, 0, 9)],
        ),
        0,
    )
    assert out is not None and feed.counters.unknown == 1
    assert [type(o) for o in out] == [TradeOut]
    depth = feed.take_depth()
    assert depth and isinstance(depth[0], DepthOut) and depth[0].bids[0].price_e3 == 500_000
    # The second line's copy is a duplicate: nothing twice.
    again = feed.on_line_packet(
        encode_packet(
            1,
            5,
            [SequenceReset(1), _book(700, 500_000), unknown, Trade(700, 1, 500_000, 100, 0, 9)],
        ),
        0,
    )
    assert again == [] and feed.take_depth() == []
    feed.on_line_packet(
        encode_packet(5, 7, [Trade(700, k, 500_000, 100, 0, 9) for k in (2, 3, 4)]), 0
    )
    # A mid-day reset (identical on the wire) clears every book.
    feed.on_line_packet(encode_packet(1, 6, [SequenceReset(1)]), 0)
    assert feed.books.books == {} and feed.counters.resets == 2
    assert feed.arbiter.next_seq_num == 2
