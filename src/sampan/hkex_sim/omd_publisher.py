"""The OMD-C publisher's pure core: the simulated market turned into numbered OMD-C messages.

Guarantees:
- Registered as a ``Market`` listener, it turns every book change into one
  AggregateOrderBookUpdate (53) whose entries, applied in order with the §5 level shifting
  by an ``omd_ingest.book.AggregateBook``, turn the previous disseminated view into the new
  one: the prices within 10 tick levels of the best, at most 10 a side
  (``Market.visible_depth``). Entries are computed by diffing the two views (``diff_side``).
- Every trade becomes a Trade (50), followed by that security's Statistics (60) and
  NominalPrice (40) after the command's book update. Its TradeID is the market's per-security
  trade number plus ``trade_id_base``: HKEX's TradeID never repeats for a security within a
  day, so a simulator started again the same day passes ``trade_id_base_at(now)`` (the
  seconds since Hong Kong midnight times ``TRADE_IDS_PER_S``) and its TradeIDs start above
  every earlier run's, as long as no run made ``TRADE_IDS_PER_S`` trades a second in one
  security.
- ``flush`` numbers the messages produced since the last flush consecutively (the channel's
  sequence numbers), keeps their bytes in a ``MessageStore`` of the last
  ``STORE_MESSAGES_MAX`` messages for the retransmission server, and returns them for the
  lines to pack. A heartbeat needs no sequence number (``last_seq_num``).
- ``sequence_reset`` starts a new numbering as HKEX does at start of day: a SequenceReset (100)
  carrying sequence number 1 with NewSeqNo 1 (so the next message is 2, the convention
  ``omd_ingest.arbitration`` follows), then SecurityDefinition (11) per security, the
  TradingSessionStatus (20) and every book from empty. The stream after a reset is therefore
  self-contained; the store is emptied because old numbers no longer mean anything.
- ``snapshot`` is the refresh channel's content (§4.4), synchronised with ``last_seq_num``.

Limits: one channel carries every security (HKEX spreads securities over several). No clock:
the shell passes ``now_ns``. Messages wait in ``_pending`` until the shell flushes; more than
``PENDING_MESSAGES_MAX`` unflushed is a shell bug and raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sampan.hkex_sim.market import DepthLevel, ListedSecurity, Market, MarketUpdate
from sampan.market.calendar import midnight_ns, trading_day
from sampan.market.rules import SPREAD_TABLE_PART_A
from sampan.market.sessions import Phase
from sampan.omd.wire import (
    ACTION_CHANGE,
    ACTION_DELETE,
    ACTION_NEW,
    SIDE_BID,
    SIDE_OFFER,
    AggregateOrderBookUpdate,
    BookEntry,
    ClosingPrice,
    MarketDefinition,
    Message,
    NominalPrice,
    SecurityDefinition,
    SequenceReset,
    Statistics,
    Trade,
    TradingSessionStatus,
)

STORE_MESSAGES_MAX = 50_000  # §4.3: the retransmission server keeps the last 50,000
PENDING_MESSAGES_MAX = 1_000_000
CHANNEL_ID_DEFAULT = 1
TRADE_IDS_PER_S = 10_000  # 86,400 s x 10,000 stays below the Uint32 TradeID's 2**32
LISTING_DATE_UNKNOWN = 19_000_101  # §3.7.2 ListingDate: "Value is 19000101 for unknown"
MARKET_CODE = "MAIN"
MARKET_NAME = "Main Board"
CONTROL_AUTOMATIC = "0"  # TradingSesControlFlag: the normal schedule
SPREAD_TABLE_CODES = {SPREAD_TABLE_PART_A: "01"}  # HKEX's code of the current Part A table

Views = tuple[tuple[DepthLevel, ...], tuple[DepthLevel, ...]]


def diff_side(old: Sequence[DepthLevel], new: Sequence[DepthLevel], side: int) -> list[BookEntry]:
    """Entries that turn side ``old`` into ``new`` (both best first, at most 10 levels).

    Deletes come first, bottom up, so each delete's level is still its old level; then a walk
    down ``new`` inserts or changes level by level. What remains of ``old`` is then a sorted
    subsequence of ``new``, so an insert never pushes a level past the tenth.
    """
    entries: list[BookEntry] = []
    kept = {price for price, _, _ in new}
    work: list[int] = [price for price, _, _ in old]
    for i in range(len(old) - 1, -1, -1):
        price, qty, count = old[i]
        if price not in kept:
            entries.append(BookEntry(qty, price, count, side, i + 1, ACTION_DELETE))
            del work[i]
    before = {price: (qty, count) for price, qty, count in old}
    for i, (price, qty, count) in enumerate(new):
        if i < len(work) and work[i] == price:
            if before[price] != (qty, count):
                entries.append(BookEntry(qty, price, count, side, i + 1, ACTION_CHANGE))
        else:
            entries.append(BookEntry(qty, price, count, side, i + 1, ACTION_NEW))
            work.insert(i, price)
    return entries


def security_definition(listed: ListedSecurity) -> SecurityDefinition:
    """SecurityDefinition (11) of an ordinary equity; bond and warrant fields zero."""
    return SecurityDefinition(
        security_code=listed.security,
        market_code="MAIN",
        isin_code="",
        instrument_type="EQTY",
        product_type=1,
        spread_table_code=SPREAD_TABLE_CODES.get(listed.spread_table, "01"),
        security_short_name=listed.short_name,
        currency_code="HKD",
        security_name_gccs="",
        security_name_gb="",
        lot_size=listed.board_lot,
        previous_closing_price_e3=listed.prev_close_e3,
        vcm_flag="N",
        short_sell_flag="Y",
        cas_flag="Y",
        ccass_flag="Y",
        dummy_security_flag="N",
        stamp_duty_flag="Y",
        listing_date=LISTING_DATE_UNKNOWN,
        delisting_date=0,
        free_text="",
        pos_flag="N",
        pos_upper_limit_e3=0,
        pos_lower_limit_e3=0,
        domain_stmt_security_code=0,
        efn_flag="N",
        accrued_interest_e3=0,
        coupon_rate_e3=0,
        face_value=0,
        decimals_in_face_value=0,
        face_value_currency="",
        bond_maturity_date=0,
        investor_type="",
        conversion_ratio_e3=0,
        strike_price1_e3=0,
        strike_price2_e3=0,
        warrant_maturity_date=0,
        call_put_flag="",
        style="",
        warrant_type="",
        call_price=0,
        decimals_in_call_price=0,
        entitlement=0,
        decimals_in_entitlement=0,
        no_warrants_per_entitlement=0,
    )


def trade_id_base_at(now_ns: int) -> int:
    """The first TradeID offset for a simulator started at ``now_ns`` (see the module doc)."""
    since_midnight_s = (now_ns - midnight_ns(trading_day(now_ns))) // 1_000_000_000
    return since_midnight_s * TRADE_IDS_PER_S


class MessageStore:
    """The last ``capacity`` messages of a channel by sequence number, as encoded bytes.

    A ring indexed by ``seq % capacity``: O(1) append and lookup, no per-message allocation
    beyond the bytes themselves.
    """

    __slots__ = ("_ring", "capacity", "first_seq", "last_seq")

    def __init__(self, capacity: int = STORE_MESSAGES_MAX) -> None:
        assert capacity >= 1
        self.capacity = capacity
        self._ring: list[bytes] = [b""] * capacity
        self.first_seq = 1  # lowest number still held (valid when last_seq >= first_seq)
        self.last_seq = 0

    def clear(self, next_seq: int) -> None:
        self.first_seq = next_seq
        self.last_seq = next_seq - 1

    def append(self, seq: int, raw: bytes) -> None:
        assert seq == self.last_seq + 1, f"store expects {self.last_seq + 1}, got {seq}"
        self._ring[seq % self.capacity] = raw
        self.last_seq = seq
        self.first_seq = max(self.first_seq, seq - self.capacity + 1)

    def holds(self, begin: int, end: int) -> bool:
        return self.first_seq <= begin <= end <= self.last_seq

    def get(self, begin: int, end: int) -> list[bytes]:
        assert self.holds(begin, end), (begin, end, self.first_seq, self.last_seq)
        ring, cap = self._ring, self.capacity
        return [ring[seq % cap] for seq in range(begin, end + 1)]


@dataclass(frozen=True, slots=True)
class Flushed:
    """Messages numbered ``first_seq_num``.. in order, ready for the lines to pack."""

    first_seq_num: int
    messages: tuple[bytes, ...]


class OmdPublisher:
    """Listens to a ``Market`` and numbers what it publishes on one OMD-C channel."""

    def __init__(
        self,
        market: Market,
        *,
        channel_id: int = CHANNEL_ID_DEFAULT,
        store_messages_max: int = STORE_MESSAGES_MAX,
        trade_id_base: int = 0,
    ) -> None:
        self.market = market
        self.trade_id_base = trade_id_base
        self.channel_id = channel_id
        self.store = MessageStore(store_messages_max)
        self._views: dict[int, Views] = {}
        self._pending: list[bytes] = []
        self._next_seq = 1
        self._phase = Phase.CONTINUOUS
        self._session_ts_ns = 0
        market.add_listener(self._on_update)

    @property
    def last_seq_num(self) -> int:
        """The number of the last message flushed (what a heartbeat carries)."""
        return self._next_seq - 1

    def view(self, security: int) -> Views:
        """The book as last disseminated (after the last flush, what clients should hold)."""
        return self._views.get(security, ((), ()))

    # ------------------------------------------------------------------ producing

    def _emit(self, message: Message) -> None:
        if len(self._pending) >= PENDING_MESSAGES_MAX:
            raise RuntimeError(f"{PENDING_MESSAGES_MAX} messages unflushed: the shell stalled")
        self._pending.append(message.encode())

    def _on_update(self, update: MarketUpdate) -> None:
        code = update.security
        self._emit_book(code)
        for trade in update.trades:
            trade_id = self.trade_id_base + trade.trade_id
            self._emit(Trade(code, trade_id, trade.price_e3, trade.qty, 0, trade.ts_ns))
        if update.trades:
            self._emit(self._statistics(code))
            self._emit(NominalPrice(code, self.market.statistics(code).nominal_e3))

    def _emit_book(self, code: int) -> None:
        old_bids, old_asks = self._views.get(code, ((), ()))
        new_bids, new_asks = self.market.visible_depth(code)
        entries = diff_side(old_bids, new_bids, SIDE_BID)
        entries += diff_side(old_asks, new_asks, SIDE_OFFER)
        self._views[code] = (new_bids, new_asks)
        if entries:
            self._emit(AggregateOrderBookUpdate(code, tuple(entries)))

    def _statistics(self, code: int) -> Statistics:
        s = self.market.statistics(code)
        vwap_e3 = s.turnover_e3 // s.volume if s.volume else 0
        return Statistics(
            code, s.volume, s.turnover_e3, s.high_e3, s.low_e3, s.last_e3, vwap_e3, 0, 0
        )

    def _session(self, phase: Phase, now_ns: int) -> TradingSessionStatus:
        """The spec's codes for `phase` (3.8.1): SubID 3 / status 30 in continuous trading,
        SubID 103 / status 50 after the close; the schedule is automatic."""
        sub_id, status = phase.omd_codes
        return TradingSessionStatus(MARKET_CODE, sub_id, status, CONTROL_AUTOMATIC, now_ns, 0)

    def _market_definition(self) -> MarketDefinition:
        count = len(list(self.market.securities()))
        return MarketDefinition(MARKET_CODE, MARKET_NAME, "HKD", count)

    def sequence_reset(self, now_ns: int) -> None:
        """Start numbering again at 1 and republish the reference data and every book."""
        self._pending.clear()
        self._next_seq = 1
        self.store.clear(1)
        self._emit(SequenceReset(1))
        self._views.clear()
        for listed in self.market.securities():
            self._emit(security_definition(listed))
        self._session_ts_ns = now_ns
        self._emit(self._session(self._phase, now_ns))
        for listed in self.market.securities():
            self._emit_book(listed.security)
            if self.market.statistics(listed.security).trade_count:
                self._emit(self._statistics(listed.security))

    def close_session(self, now_ns: int) -> None:
        """End of continuous trading: session status closed and a ClosingPrice each."""
        self._phase = Phase.CLOSED
        self._session_ts_ns = now_ns
        self._emit(self._session(Phase.CLOSED, now_ns))
        for listed in self.market.securities():
            s = self.market.statistics(listed.security)
            self._emit(ClosingPrice(listed.security, s.last_e3, s.trade_count))

    def flush(self) -> Flushed | None:
        """Number and store the messages produced since the last flush; None if none."""
        if not self._pending:
            return None
        first = self._next_seq
        messages = tuple(self._pending)
        self._pending.clear()
        append = self.store.append
        for i, raw in enumerate(messages):
            append(first + i, raw)
        self._next_seq = first + len(messages)
        return Flushed(first, messages)

    # ------------------------------------------------------------------ refresh

    def snapshot(self) -> tuple[int, list[Message]]:
        """(LastSeqNum, messages): the market state as of the last flushed message (§4.4).

        Call it right after ``flush`` so no unflushed change is half included.
        """
        assert not self._pending, "snapshot between flushes only"
        out: list[Message] = [self._market_definition()]
        for listed in self.market.securities():
            out.append(security_definition(listed))
        out.append(self._session(self._phase, self._session_ts_ns))
        for listed in self.market.securities():
            code = listed.security
            bids, asks = self.view(code)
            entries = diff_side((), bids, SIDE_BID) + diff_side((), asks, SIDE_OFFER)
            # An empty book is sent with NoEntries 0, as §4.4 allows, so it is cleared too.
            out.append(AggregateOrderBookUpdate(code, tuple(entries)))
            s = self.market.statistics(code)
            if s.trade_count:
                out.append(self._statistics(code))
            out.append(NominalPrice(code, s.nominal_e3))
            if self._phase is Phase.CLOSED:  # after the close the refresh carries the close
                out.append(ClosingPrice(code, s.last_e3, s.trade_count))
        return self.last_seq_num, out
