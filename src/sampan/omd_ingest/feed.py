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
  reference data and books again after it (start of day).

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
    ArbiterEvent,
    ArbiterState,
    Delivery,
    LineArbiter,
    RefreshCollector,
)
from sampan.omd_ingest.book import BookInconsistent, BookSet, Level

DEPTH_OUT_LEVELS = 5


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

    def __init__(self, arbiter: LineArbiter) -> None:
        self.arbiter = arbiter
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

    def on_line_packet(self, raw: Buffer, now_ns: int) -> list[Output] | None:
        """A datagram from line A/B or a retransmitted packet; None when malformed."""
        packet = self._decode(raw)
        if packet is None:
            return None
        deliveries = self.arbiter.on_packet(packet.seq_num, packet.messages, now_ns)
        if self.refreshing and self._collector is None:
            self._begin_collecting()  # the arbiter gave up on its own (buffer full)
        out: list[Output] = []
        self._apply_all(deliveries, packet.send_time_ns, out)
        return out

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
        out: list[Output] = []
        touched: set[int] = set()
        for message in snapshot.messages:
            self._apply(message, snapshot.last_seq_num, packet.send_time_ns, out, touched)
        self._depth(touched, snapshot.last_seq_num, packet.send_time_ns, out)
        self.counters.refreshes_completed += 1
        replay = self.arbiter.complete_refresh(snapshot.last_seq_num, now_ns)
        self._apply_all(replay, packet.send_time_ns, out)
        return out

    def poll(self, now_ns: int) -> list[ArbiterEvent]:
        """Gaps to fill from the retransmission server, or a refresh the arbiter started."""
        events = self.arbiter.poll(now_ns)
        if self.refreshing and self._collector is None:
            self._begin_collecting()
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
        out.append(
            TradeOut(
                trade.security_code,
                trade.trade_id,
                trade.price_e3,
                trade.quantity,
                trade.trade_time_ns,
                seq,
                send_ns,
            )
        )

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
