"""The feed handler: malformed and unknown input is counted, resets clear, books and trades flow."""

from __future__ import annotations

from sampan.omd.packets import encode_packet
from sampan.omd.wire import (
    ACTION_NEW,
    SIDE_BID,
    AggregateOrderBookUpdate,
    BookEntry,
    RefreshComplete,
    SequenceReset,
    Trade,
    UnknownMessage,
)
from sampan.omd_ingest.arbitration import Line, LineArbiter
from sampan.omd_ingest.feed import (
    DepthOut,
    FeedHandler,
    TradeGap,
    TradeOut,
    TradesUnrecovered,
)


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
    # A mid-day reset (identical on the wire), once both lines carry it, clears every book.
    feed.on_line_packet(encode_packet(1, 6, [SequenceReset(1)]), 0, Line.A)
    assert feed.books.books != {} and feed.counters.resets == 1
    feed.on_line_packet(encode_packet(1, 6, [SequenceReset(1)]), 0, Line.B)
    assert feed.books.books == {} and feed.counters.resets == 2
    assert feed.arbiter.next_seq_num == 2


def _trade(k: int) -> Trade:
    return Trade(700, k, 500_000, 100, 0, 1_700_000_000_000_000_000 + k)


def _refresh(feed: FeedHandler, last_seq_num: int) -> None:
    """One complete snapshot (an empty book of 700) synchronised with ``last_seq_num``."""
    feed.on_refresh_packet(encode_packet(1, 0, [RefreshComplete(0)]), 0)
    snapshot = [AggregateOrderBookUpdate(700, ()), RefreshComplete(last_seq_num)]
    feed.on_refresh_packet(encode_packet(2, 0, snapshot), 0)


def _trade_ids(outputs: list[object] | None) -> list[int]:
    return [o.trade_id for o in outputs or [] if isinstance(o, TradeOut)]


def test_a_restart_completes_the_trades_before_its_first_snapshot() -> None:
    feed = FeedHandler(LineArbiter(next_seq_num=None), backfill_timeout_ns=1_000)
    feed.resume_trades_after(10)  # trades through message 10 were committed before
    _refresh(feed, 14)
    assert feed.poll(0) == [TradeGap(11, 14)]
    # Live trades after the snapshot wait, so the trades stay in TradeID order.
    assert _trade_ids(feed.on_line_packet(encode_packet(15, 0, [_trade(4)]), 0)) == []
    got = feed.on_line_packet(
        encode_packet(11, 0, [_book(700, 1), _trade(1), _trade(2), _trade(3)]),
        0,
        Line.RETRANSMISSION,
    )
    assert _trade_ids(got) == [1, 2, 3, 4]
    assert _trade_ids(feed.on_line_packet(encode_packet(16, 0, [_trade(5)]), 0)) == [5]
    assert feed.counters.trades_backfilled == 3 and feed.trades_through == 16


def test_a_backfill_not_retransmitted_in_time_releases_what_waits() -> None:
    feed = FeedHandler(LineArbiter(next_seq_num=None), backfill_timeout_ns=1_000)
    feed.resume_trades_after(10)
    _refresh(feed, 12)
    assert feed.poll(0) == [TradeGap(11, 12)]
    assert _trade_ids(feed.on_line_packet(encode_packet(13, 0, [_trade(7)]), 0)) == []
    events = feed.poll(1_000)
    assert events == [TradesUnrecovered(11, 12, "not retransmitted in time")]
    assert _trade_ids(feed.take_released()) == [7]
    assert feed.counters.backfills_abandoned == 1


def test_a_first_late_join_has_nothing_to_complete() -> None:
    feed = FeedHandler(LineArbiter(next_seq_num=None))
    _refresh(feed, 500)
    assert feed.poll(0) == []
    assert _trade_ids(feed.on_line_packet(encode_packet(501, 0, [_trade(9)]), 0)) == [9]
