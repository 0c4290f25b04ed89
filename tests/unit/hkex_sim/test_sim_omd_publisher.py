"""The publisher's book -> message 53 diffing, checked by decoding what it sends."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sampan.hkex_sim.market import LiquidityConfig, Market
from sampan.hkex_sim.omd_publisher import (
    TRADE_IDS_PER_S,
    MessageStore,
    OmdPublisher,
    diff_side,
    trade_id_base_at,
)
from sampan.market.calendar import midnight_ns, trading_day
from sampan.omd.packets import decode_packet, pack_messages
from sampan.omd.wire import (
    SIDE_BID,
    SIDE_OFFER,
    AggregateOrderBookUpdate,
    NominalPrice,
    SecurityDefinition,
    SequenceReset,
    Statistics,
    Trade,
)
from sampan.omd_ingest.book import AggregateBook, BookSet

T0 = 1_700_000_000_000_000_000


def _levels(prices: list[int], descending: bool) -> list[tuple[int, int, int]]:
    ordered = sorted(set(prices), reverse=descending)[:10]
    return [(p, 100 * (p % 7 + 1), p % 3 + 1) for p in ordered]


price_lists = st.lists(st.integers(1, 40), max_size=14)


@settings(max_examples=400, deadline=None)
@given(price_lists, price_lists, st.booleans())
def test_diff_side_turns_old_into_new(old_p: list[int], new_p: list[int], bid: bool) -> None:
    old = _levels(old_p, descending=bid)
    new = _levels(new_p, descending=bid)
    # Quantities at a kept price may change too.
    new = [(p, q + (p % 2) * 100, n) for p, q, n in new]
    side = SIDE_BID if bid else SIDE_OFFER
    book = AggregateBook(1)
    for entry in diff_side((), old, side):
        book.apply_entry(entry)
    for entry in diff_side(old, new, side):
        book.apply_entry(entry)
        book.check_invariants()
    assert (book.bids if bid else book.asks) == new


def _drive(seed: int, payload_max: int) -> tuple[Market, OmdPublisher, BookSet, list[type]]:
    market = Market(liquidity=LiquidityConfig(seed=seed, actions_per_s=5_000))
    publisher = OmdPublisher(market)
    books = BookSet()
    kinds: list[type] = []
    expected_seq = 1
    publisher.sequence_reset(T0)
    market.seed_books(T0)
    for i in range(150):
        if i:
            market.step(T0 + i * 10_000_000)
        flushed = publisher.flush()
        if flushed is None:
            continue
        assert flushed.first_seq_num == expected_seq
        for raw in pack_messages(flushed.first_seq_num, T0, flushed.messages, payload_max):
            packet = decode_packet(raw)
            assert packet.seq_num == expected_seq
            expected_seq += len(packet.messages)
            for message in packet.messages:
                kinds.append(type(message))
                if type(message) is AggregateOrderBookUpdate:
                    books.apply(message).check_invariants()
        for listed in market.securities():
            book = books.books.get(listed.security, AggregateBook(listed.security))
            bids, asks = market.visible_depth(listed.security)
            assert (tuple(book.bids), tuple(book.asks)) == (bids, asks)
            assert publisher.view(listed.security) == (bids, asks)
    assert publisher.last_seq_num == expected_seq - 1
    return market, publisher, books, kinds


def test_published_updates_rebuild_the_simulated_books() -> None:
    market, _, _, kinds = _drive(seed=11, payload_max=1456)
    assert kinds[0] is SequenceReset
    assert kinds.count(SecurityDefinition) == len(market.securities())
    assert Trade in kinds and Statistics in kinds and NominalPrice in kinds
    trades = sum(market.statistics(s.security).trade_count for s in market.securities())
    assert kinds.count(Trade) == trades


def test_line_b_packing_carries_the_same_messages() -> None:
    _, _pub_a, books_a, kinds_a = _drive(seed=5, payload_max=1456)
    _, _pub_b, books_b, kinds_b = _drive(seed=5, payload_max=1000)
    assert kinds_a == kinds_b
    assert {c: (b.bids, b.asks) for c, b in books_a.books.items()} == {
        c: (b.bids, b.asks) for c, b in books_b.books.items()
    }


def test_snapshot_rebuilds_the_books_from_empty() -> None:
    _market, publisher, books, _ = _drive(seed=3, payload_max=1456)
    last_seq, messages = publisher.snapshot()
    assert last_seq == publisher.last_seq_num
    fresh = BookSet()
    for message in messages:
        if type(message) is AggregateOrderBookUpdate:
            fresh.apply(message)
    for code, book in books.books.items():
        got = fresh.books.get(code, AggregateBook(code))
        assert (got.bids, got.asks) == (book.bids, book.asks)


def test_message_store_keeps_the_last_n() -> None:
    store = MessageStore(capacity=5)
    for seq in range(1, 13):
        store.append(seq, bytes([seq]))
    assert (store.first_seq, store.last_seq) == (8, 12)
    assert store.holds(8, 12) and not store.holds(7, 12) and not store.holds(8, 13)
    assert store.get(9, 11) == [b"\x09", b"\x0a", b"\x0b"]
    store.clear(1)
    assert not store.holds(1, 1)


def test_security_definition_listing_date_is_the_specs_unknown() -> None:
    # §3.7.2: ListingDate is YYYYMMDD, "19000101 for unknown"; the simulator knows none.
    market = Market(liquidity=LiquidityConfig(seed=1))
    publisher = OmdPublisher(market)
    publisher.sequence_reset(T0)
    flushed = publisher.flush()
    assert flushed is not None
    packet = pack_messages(flushed.first_seq_num, T0, list(flushed.messages))
    definitions = [
        m for raw in packet for m in decode_packet(raw).messages if type(m) is SecurityDefinition
    ]
    assert definitions
    assert {d.listing_date for d in definitions} == {19_000_101}


def test_a_simulator_started_again_the_same_day_never_reuses_a_trade_id() -> None:
    # HKEX's TradeID is unique per security and day; the feed handler relies on it.
    midnight = midnight_ns(trading_day(T0))
    assert trade_id_base_at(midnight) == 0
    first = trade_id_base_at(midnight + 3_600 * 10**9)
    assert trade_id_base_at(midnight + 3_601 * 10**9) == first + TRADE_IDS_PER_S
    assert trade_id_base_at(midnight + 86_400 * 10**9 - 1) + TRADE_IDS_PER_S < 2**32

    market = Market(liquidity=LiquidityConfig(seed=4))
    publisher = OmdPublisher(market, trade_id_base=first)
    publisher.sequence_reset(T0)
    market.seed_books(T0)
    for step in range(1, 200):
        market.step(T0 + step * 10_000_000)
    flushed = publisher.flush()
    assert flushed is not None
    trades = [
        m
        for raw in pack_messages(flushed.first_seq_num, T0, list(flushed.messages))
        for m in decode_packet(raw).messages
        if type(m) is Trade
    ]
    assert trades
    per_security: dict[int, list[int]] = {}
    for trade in trades:
        per_security.setdefault(trade.security_code, []).append(trade.trade_id)
    for ids in per_security.values():
        assert ids == list(range(first + 1, first + 1 + len(ids)))


def test_session_status_uses_the_specs_codes_and_the_refresh_carries_the_close() -> None:
    from sampan.omd.wire import ClosingPrice, MarketDefinition, TradingSessionStatus

    market, publisher, _, _kinds = _drive(seed=4, payload_max=1456)
    _, messages = publisher.snapshot()
    assert type(messages[0]) is MarketDefinition
    assert messages[0].number_of_securities == len(list(market.securities()))
    (session,) = [m for m in messages if type(m) is TradingSessionStatus]
    assert (session.trading_session_sub_id, session.trading_ses_status) == (3, 30)
    assert session.trading_ses_control_flag == "0"
    assert not any(type(m) is ClosingPrice for m in messages)
    publisher.close_session(T0 + 10**12)
    publisher.flush()
    _, messages = publisher.snapshot()
    (session,) = [m for m in messages if type(m) is TradingSessionStatus]
    assert (session.trading_session_sub_id, session.trading_ses_status) == (103, 50)
    closes = [m for m in messages if type(m) is ClosingPrice]
    assert len(closes) == len(list(market.securities()))
