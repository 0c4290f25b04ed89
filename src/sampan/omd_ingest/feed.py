"""The feed handler's pure core: packets in, normalised market data out, for one channel.

Guarantees:
- ``on_line_packet`` takes any datagram from line A or B (or a packet retransmitted over
  TCP): a malformed one is counted and returned as ``None`` (the shell logs it in hex), never
  raised. Valid packets go through the ``LineArbiter``, so every sequence number is applied
  once, in order.
- Applied messages update the 10-level books, the reference data and the statistics, and
  produce outputs: ``TradeOut`` per Trade (50), ``InstrumentOut`` per SecurityDefinition (11),
  ``StatsOut`` per Statistics (60) or NominalPrice (40); ``take_depth`` returns one
  ``DepthOut`` (top five a side) per security whose book changed since its last call
  (conflated, because only the latest depth matters on a compacted topic). Every output
  carries the SendTime of the packet that produced it.
- A message type not modelled is counted in ``counters.unknown`` and skipped.
- A book update that contradicts the book (``BookInconsistent``) or an arbiter that gives up
  on a gap starts a refresh: live messages are cached, the next complete snapshot from the
  refresh channel replaces the books (``on_refresh_packet``), and the cache after its
  LastSeqNum is replayed (§4.4). Outputs of the snapshot are depth, instruments and stats;
  trades are never replayed, so none is published twice.
- A SequenceReset (100) clears books, statistics and reference data; the publisher sends the
  reference data and books again after it (start of day). Only the arbiter decides whether a
  reset is believed (both lines, see ``arbitration``); packets carry the line they came on.
- Trades are never lost to a refresh: ``trades_through`` is the sequence number up to which
  every Trade has been output (set from what was committed before a restart by
  ``resume_trades_after``). A snapshot at LastSeqNum L beyond it starts a trade backfill:
  ``poll`` returns ``TradeGap`` for the caller to request from the retransmission server
  (at most its 50,000 messages back; older ones are reported as ``TradesUnrecovered``), the
  Trades among the retransmitted messages are output, and live trades wait (at most
  ``HELD_TRADES_MAX``) so each security's trades still come out in TradeID order. A backfill
  not complete within ``backfill_timeout_ns``, or given up by the caller, releases the
  waiting trades and reports the rest as unrecovered. ``take_released`` returns what waited.

Limits: no clock (``now_ns`` is the caller's). The ``open_e3`` of statistics is the first trade
seen since the last reset; after a late join it stays unknown.
"""

from __future__ import annotations

from dataclasses import dataclass

from sampan.omd.packets import Packet, decode_packet
from sampan.omd.wire import (
    AggregateOrderBookUpdate,
    Buffer,
    MalformedPacket,
    Message,
    NominalPrice,
    SecurityDefinition,
    SequenceReset,
    Statistics,
    Trade,
    UnknownMessage,
)
from sampan.omd_ingest.arbitration import (
    RETRANS_AVAILABLE_MAX,
    ArbiterEvent,
    ArbiterState,
    Delivery,
    Line,
    LineArbiter,
    RefreshCollector,
)
from sampan.omd_ingest.book import BookInconsistent, BookSet, Level

DEPTH_OUT_LEVELS = 5
HELD_TRADES_MAX = 100_000
BACKFILL_TIMEOUT_NS_DEFAULT = 30_000_000_000


@dataclass(frozen=True, slots=True)
class DepthOut:
    security: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    seq_num: int
    send_time_ns: int


@dataclass(frozen=True, slots=True)
class TradeOut:
    security: int
    trade_id: int
    price_e3: int
    qty: int
    trade_time_ns: int
    seq_num: int
    send_time_ns: int


@dataclass(frozen=True, slots=True)
class StatsOut:
    security: int
    prev_close_e3: int | None
    nominal_e3: int | None
    open_e3: int | None
    high_e3: int | None
    low_e3: int | None
    last_e3: int | None
    volume: int
    turnover_e3: int
    send_time_ns: int


@dataclass(frozen=True, slots=True)
class InstrumentOut:
    definition: SecurityDefinition
    send_time_ns: int


Output = DepthOut | TradeOut | StatsOut | InstrumentOut


@dataclass(frozen=True, slots=True)
class TradeGap:
    """The Trades among messages begin..end (inclusive) were never output: retransmit them."""

    begin_seq_num: int
    end_seq_num: int


@dataclass(frozen=True, slots=True)
class TradesUnrecovered:
    """The Trades among messages begin..end may be missing from the output: say so."""

    begin_seq_num: int
    end_seq_num: int
    reason: str


FeedEvent = ArbiterEvent | TradeGap | TradesUnrecovered


@dataclass(slots=True)
class _Backfill:
    next_seq: int
    end_seq: int
    deadline_ns: int


@dataclass(slots=True)
class FeedCounters:
    packets: int = 0
    malformed: int = 0
    unknown: int = 0
    applied: int = 0
    trades: int = 0
    inconsistent: int = 0
    resets: int = 0
    refreshes_started: int = 0
    refreshes_completed: int = 0
    trades_backfilled: int = 0
    backfills_abandoned: int = 0


@dataclass(slots=True)
class _Stats:
    nominal_e3: int | None = None
    open_e3: int | None = None
    high_e3: int | None = None
    low_e3: int | None = None
    last_e3: int | None = None
    volume: int = 0
    turnover_e3: int = 0


class FeedHandler:
    """Arbiter + books + reference data + statistics of one OMD-C channel."""

    def __init__(
        self, arbiter: LineArbiter, backfill_timeout_ns: int = BACKFILL_TIMEOUT_NS_DEFAULT
    ) -> None:
        self.arbiter = arbiter
        self.backfill_timeout_ns = backfill_timeout_ns
        # Every Trade up to this sequence number has been output; None: unknown (a first
        # late join has no earlier trades to complete).
        self.trades_through: int | None = None if arbiter.state is ArbiterState.REFRESHING else 0
        self._backfill: _Backfill | None = None
        self._held: list[Output] = []
        self._released: list[Output] = []
        self._feed_events: list[FeedEvent] = []
        self.books = BookSet()
        self.definitions: dict[int, SecurityDefinition] = {}
        self.counters = FeedCounters()
        self._stats: dict[int, _Stats] = {}
        self._collector: RefreshCollector | None = None
        self._dirty: dict[int, tuple[int, int]] = {}  # security -> (seq, SendTime) to publish
        if arbiter.state is ArbiterState.REFRESHING:
            self._collector = RefreshCollector()
            self.counters.refreshes_started += 1

    @property
    def refreshing(self) -> bool:
        return self.arbiter.state is ArbiterState.REFRESHING

    # ------------------------------------------------------------------ input

    def resume_trades_after(self, seq_num: int) -> None:
        """Trades up to ``seq_num`` were output before a restart: complete the rest."""
        self.trades_through = seq_num

    def on_line_packet(self, raw: Buffer, now_ns: int, line: Line = Line.A) -> list[Output] | None:
        """A datagram from line A/B or a retransmitted packet; None when malformed."""
        packet = self._decode(raw)
        if packet is None:
            return None
        out: list[Output] = []
        if line is Line.RETRANSMISSION and self._backfill is not None:
            self._backfill_from(packet, out)
        deliveries = self.arbiter.on_packet(packet.seq_num, packet.messages, now_ns, line)
        if self.refreshing and self._collector is None:
            self._begin_collecting()  # the arbiter gave up on its own (buffer full)
        self._apply_all(deliveries, packet.send_time_ns, out)
        return out

    def _backfill_from(self, packet: Packet, out: list[Output]) -> None:
        backfill = self._backfill
        assert backfill is not None
        seq = packet.seq_num
        for message in packet.messages:
            if seq == backfill.next_seq and seq <= backfill.end_seq:
                if type(message) is Trade:
                    out.append(_trade_out(message, seq, packet.send_time_ns))
                    self.counters.trades_backfilled += 1
                backfill.next_seq += 1
            seq += 1
        if backfill.next_seq > backfill.end_seq:
            self._end_backfill(out)

    def _end_backfill(self, out: list[Output]) -> None:
        self._backfill = None
        out.extend(self._held)
        self._held = []

    def abandon_backfill(self, reason: str, out: list[Output] | None = None) -> None:
        """The caller cannot get the retransmission: release what waits (to ``out``, else to
        ``take_released``), report the loss."""
        backfill = self._backfill
        if backfill is None:
            return
        self.counters.backfills_abandoned += 1
        self._feed_events.append(TradesUnrecovered(backfill.next_seq, backfill.end_seq, reason))
        self._end_backfill(self._released if out is None else out)

    def take_released(self) -> list[Output]:
        """Trades that waited for a backfill that has since ended or been given up."""
        out, self._released = self._released, []
        return out

    def _start_backfill(self, last_seq_num: int, now_ns: int) -> None:
        """A snapshot synchronised with ``last_seq_num``: complete the trades before it."""
        through = self.trades_through
        self.trades_through = last_seq_num
        if through is None or through >= last_seq_num:
            return
        begin = through + 1
        reach = last_seq_num - RETRANS_AVAILABLE_MAX + 1
        if begin < reach:
            self._feed_events.append(
                TradesUnrecovered(begin, reach - 1, "older than the retransmission server keeps")
            )
            begin = reach
        backfill = self._backfill
        if backfill is not None and backfill.end_seq + 1 >= begin:
            begin = backfill.end_seq + 1
            backfill.end_seq = last_seq_num
        else:
            if backfill is not None:
                self.abandon_backfill("a later refresh overtook it")  # before the snapshot
            self._backfill = _Backfill(begin, last_seq_num, now_ns + self.backfill_timeout_ns)
        self._feed_events.append(TradeGap(begin, last_seq_num))

    def on_refresh_packet(self, raw: Buffer, now_ns: int) -> list[Output] | None:
        """A datagram from the refresh channel; ignored unless a refresh is under way."""
        if self._collector is None:
            return []
        if not self.refreshing:  # a SequenceReset ended the refresh: nothing to wait for
            self._collector = None
            return []
        packet = self._decode(raw)
        if packet is None:
            return None
        snapshot = self._collector.on_packet(packet.seq_num, packet.messages)
        if snapshot is None:
            return []
        self._collector = None
        self._clear()
        self._start_backfill(snapshot.last_seq_num, now_ns)
        out: list[Output] = []
        touched: set[int] = set()
        for message in snapshot.messages:
            self._apply(message, snapshot.last_seq_num, packet.send_time_ns, out, touched)
        self._depth(touched, snapshot.last_seq_num, packet.send_time_ns, out)
        self.counters.refreshes_completed += 1
        replay = self.arbiter.complete_refresh(snapshot.last_seq_num, now_ns)
        self._apply_all(replay, packet.send_time_ns, out)
        return out

    def poll(self, now_ns: int) -> list[FeedEvent]:
        """Gaps to fill from the retransmission server (messages, or trades after a refresh),
        a refresh the arbiter started, a rejected reset, trades that could not be recovered."""
        events: list[FeedEvent] = list(self.arbiter.poll(now_ns))
        if self.refreshing and self._collector is None:
            self._begin_collecting()
        backfill = self._backfill
        if backfill is not None and now_ns >= backfill.deadline_ns:
            self.abandon_backfill("not retransmitted in time")
        events += self._feed_events
        self._feed_events = []
        return events

    def request_refresh(self) -> None:
        """The caller could not fill a gap (RTS refused or unreachable): resynchronise."""
        if not self.refreshing:
            self.arbiter.begin_refresh()
        if self._collector is None:
            self._begin_collecting()

    # ------------------------------------------------------------------ applying

    def _decode(self, raw: Buffer) -> Packet | None:
        self.counters.packets += 1
        try:
            return decode_packet(raw)
        except MalformedPacket:
            self.counters.malformed += 1
            return None

    def _begin_collecting(self) -> None:
        self._collector = RefreshCollector()
        self.counters.refreshes_started += 1

    def _apply_all(self, deliveries: list[Delivery], send_ns: int, out: list[Output]) -> None:
        touched: set[int] = set()
        last_seq = 0
        for seq, message in deliveries:
            if self.refreshing:
                break  # an inconsistency switched to refresh: the snapshot covers the rest
            self._apply(message, seq, send_ns, out, touched)
            last_seq = seq
            self.trades_through = seq
        self._depth(touched, last_seq, send_ns, out)

    def _apply(
        self, message: Message, seq: int, send_ns: int, out: list[Output], touched: set[int]
    ) -> None:
        self.counters.applied += 1
        kind = type(message)
        if kind is AggregateOrderBookUpdate:
            assert isinstance(message, AggregateOrderBookUpdate)
            try:
                self.books.apply(message)
            except BookInconsistent:
                self.counters.inconsistent += 1
                self.books.books.pop(message.security_code, None)
                self.request_refresh()
                return
            touched.add(message.security_code)
        elif kind is Trade:
            assert isinstance(message, Trade)
            self._on_trade(message, seq, send_ns, out)
        elif kind is Statistics:
            assert isinstance(message, Statistics)
            self._on_statistics(message, send_ns, out)
        elif kind is NominalPrice:
            assert isinstance(message, NominalPrice)
            self._stats_of(message.security_code).nominal_e3 = message.nominal_price_e3
            out.append(self._stats_out(message.security_code, send_ns))
        elif kind is SecurityDefinition:
            assert isinstance(message, SecurityDefinition)
            self.definitions[message.security_code] = message
            out.append(InstrumentOut(message, send_ns))
        elif kind is SequenceReset:
            self.counters.resets += 1
            self._collector = None  # the arbiter is live again after a reset
            if self._backfill is not None:
                self.abandon_backfill("a SequenceReset ended the old numbering", out)
            self._clear()
            touched.clear()
        elif kind is UnknownMessage:
            self.counters.unknown += 1

    def _clear(self) -> None:
        self.books.clear_all()
        self._stats.clear()
        self.definitions.clear()

    def _stats_of(self, code: int) -> _Stats:
        stats = self._stats.get(code)
        if stats is None:
            stats = self._stats[code] = _Stats()
        return stats

    def _on_trade(self, trade: Trade, seq: int, send_ns: int, out: list[Output]) -> None:
        self.counters.trades += 1
        stats = self._stats_of(trade.security_code)
        if stats.volume == 0 and stats.open_e3 is None:
            stats.open_e3 = trade.price_e3
        if self._backfill is None:
            out.append(_trade_out(trade, seq, send_ns))
        elif len(self._held) < HELD_TRADES_MAX:
            self._held.append(_trade_out(trade, seq, send_ns))
        else:
            self.abandon_backfill(f"{HELD_TRADES_MAX} live trades waiting", out)
            out.append(_trade_out(trade, seq, send_ns))

    def _on_statistics(self, message: Statistics, send_ns: int, out: list[Output]) -> None:
        stats = self._stats_of(message.security_code)
        traded = message.shares_traded > 0
        stats.volume = message.shares_traded
        stats.turnover_e3 = message.turnover_e3
        stats.high_e3 = message.high_price_e3 if traded else None
        stats.low_e3 = message.low_price_e3 if traded else None
        stats.last_e3 = message.last_price_e3 if traded else None
        out.append(self._stats_out(message.security_code, send_ns))

    def _stats_out(self, code: int, send_ns: int) -> StatsOut:
        s = self._stats_of(code)
        definition = self.definitions.get(code)
        prev = definition.previous_closing_price_e3 if definition is not None else None
        return StatsOut(
            code,
            prev,
            s.nominal_e3,
            s.open_e3,
            s.high_e3,
            s.low_e3,
            s.last_e3,
            s.volume,
            s.turnover_e3,
            send_ns,
        )

    def _depth(self, touched: set[int], seq: int, send_ns: int, out: list[Output]) -> None:
        """Mark ``touched`` books dirty; ``take_depth`` emits them (conflated)."""
        del out  # depth is conflated across packets, see take_depth
        for code in touched:
            self._dirty[code] = (seq, send_ns)

    def take_depth(self) -> list[Output]:
        """One DepthOut per book changed since the last call: under load, depth conflates
        (only the latest matters on the compacted md.depth) while trades never do."""
        out: list[Output] = []
        for code in sorted(self._dirty):
            seq, send_ns = self._dirty[code]
            book = self.books.books.get(code)
            bids = () if book is None else tuple(Level(*t) for t in book.bids[:DEPTH_OUT_LEVELS])
            asks = () if book is None else tuple(Level(*t) for t in book.asks[:DEPTH_OUT_LEVELS])
            out.append(DepthOut(code, bids, asks, seq, send_ns))
        self._dirty.clear()
        return out


def _trade_out(trade: Trade, seq: int, send_ns: int) -> TradeOut:
    return TradeOut(
        trade.security_code,
        trade.trade_id,
        trade.price_e3,
        trade.quantity,
        trade.trade_time_ns,
        seq,
        send_ns,
    )
