"""The omd_ingest process body: UDP receivers, the feed handler, recovery, the Kafka sink.

Guarantees:
- Lines A and B and the refresh channel are received on their own UDP sockets (joining the
  multicast group when the host is one) into one bounded queue (``queue_max`` datagrams); a
  datagram that finds the queue full is dropped and counted, which the arbiter then sees as
  a gap and recovers like any loss.
- One consumer task applies datagrams to the ``FeedHandler`` in arrival order, on their arrival
  times (so a slow loop turn never looks like a loss), and hands its
  outputs to the sink; depth is published once per drained batch (at most ``BATCH_MAX``
  datagrams), so under load it conflates instead of queueing. Gaps the arbiter reports are
  filled from the retransmission server (one recovery task at a time, gaps queued up to
  ``GAPS_QUEUED_MAX``); a refused request or an unreachable server starts a refresh instead.
  Trades a refresh skipped over (``TradeGap``) are fetched the same way; if that fails they
  are logged as unrecovered with their range. Retransmitted packets are applied as they
  arrive. Each packet carries the line it came on, for the arbiter's reset rule.
- ``IngestConfig.trades_through`` (what the sink read back as committed) makes a restarted
  ingest complete the trades between that point and its first snapshot.
- A rejected SequenceReset and unrecoverable trades are logged as warnings with their range.
- A malformed datagram is counted and logged in hex (the first ``MALFORMED_LOGGED_MAX``, then
  every thousandth); no input stops the process.
- ``run`` returns when ``stop`` is set; every wait is bounded by ``poll_s``. A status line is
  logged every ``status_interval_s``.

Limits: one channel per process. The sink is called on the event loop, so a slow sink slows
the loop (and a queue overflow follows); the Kafka sink never blocks longer than its bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import struct
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sampan.omd_ingest.arbitration import (
    GAP_TIMEOUT_NS_DEFAULT,
    RESET_CONFIRM_NS_DEFAULT,
    GapDetected,
    Line,
    LineArbiter,
    RefreshRequired,
    ResetRejected,
    retransmission_requests,
)
from sampan.omd_ingest.feed import FeedHandler, Output, TradeGap, TradesUnrecovered
from sampan.omd_ingest.rts_client import RtsClient, RtsUnavailable

log = logging.getLogger(__name__)

QUEUE_MAX_DEFAULT = 100_000
BATCH_MAX = 512  # datagrams applied per loop turn before the loop polls timers again
GAPS_QUEUED_MAX = 1_000
MALFORMED_LOGGED_MAX = 20
ANY_INTERFACE = "0.0.0.0"  # noqa: S104 - join the group on the default interface
RCVBUF_BYTES = 8 * 1024 * 1024
DATAGRAM_BYTES_MAX = 65_536
READS_PER_WAKEUP_MAX = 1_000
SOURCE_REFRESH = "refresh"
Source = Line | str


class Sink(Protocol):
    def publish(self, outputs: Sequence[Output]) -> None: ...

    def poll(self) -> None: ...


@dataclass(frozen=True, slots=True)
class IngestConfig:
    host: str = "127.0.0.1"  # the lines' destination: 127.0.0.1 here, a group in production
    port_a: int = 51_000
    port_b: int = 51_001
    refresh_port: int = 51_002
    rts_host: str = "127.0.0.1"
    rts_port: int = 51_003
    rts_username: str = "sampan"
    channel_id: int = 1
    late_join: bool = True  # start from the refresh channel (False: expect seq 1 next)
    queue_max: int = QUEUE_MAX_DEFAULT
    gap_timeout_ns: int = GAP_TIMEOUT_NS_DEFAULT
    reset_confirm_ns: int = RESET_CONFIRM_NS_DEFAULT
    trades_through: int | None = None  # last sequence number whose trades were committed
    poll_s: float = 0.01
    status_interval_s: float = 5.0


class _Receiver:
    """Reads every datagram waiting on one socket when it becomes readable (at most
    ``READS_PER_WAKEUP_MAX``). asyncio's datagram transport reads one datagram per socket per
    loop turn, so under a burst the line with more, smaller packets fell behind the other in
    our own queue by whole loop turns and its copies looked lost; draining both sockets in the
    same turn keeps the lines' copies side by side."""

    def __init__(self, source: Source, ingest: OmdIngest, sock: socket.socket) -> None:
        self.source = source
        self.ingest = ingest
        self.sock = sock

    def on_readable(self) -> None:
        ingest = self.ingest
        now_ns = ingest.feed_clock_ns()
        for _ in range(READS_PER_WAKEUP_MAX):
            try:
                data = self.sock.recv(DATAGRAM_BYTES_MAX)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("omd-ingest: receiving on %s: %s", self.source, exc)
                return
            try:
                ingest.queue.put_nowait((self.source, data, now_ns))
            except asyncio.QueueFull:
                ingest.queue_dropped += 1


def _udp_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
    if ipaddress.ip_address(host).is_multicast:
        sock.bind(("", port))
        mreq = struct.pack("4s4s", socket.inet_aton(host), socket.inet_aton(ANY_INTERFACE))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    else:
        sock.bind((host, port))
    sock.setblocking(False)
    return sock


class OmdIngest:
    def __init__(
        self, config: IngestConfig, sink: Sink, clock_ns: Callable[[], int] = time.time_ns
    ) -> None:
        self.config = config
        self.sink = sink
        self.clock_ns = clock_ns
        arbiter = LineArbiter(
            next_seq_num=None if config.late_join else 1,
            gap_timeout_ns=config.gap_timeout_ns,
            reset_confirm_ns=config.reset_confirm_ns,
        )
        self.feed = FeedHandler(arbiter)
        if config.trades_through is not None:
            self.feed.resume_trades_after(config.trades_through)
        # (source, datagram, arrival time): arbitration runs on arrival times, see _feed_now_ns.
        self.queue: asyncio.Queue[tuple[Source, bytes, int]] = asyncio.Queue(config.queue_max)
        self._applied_arrival_ns = 0
        self._sink_blocked_ns = 0  # time the loop spent blocked in the sink, see feed_clock_ns
        self.queue_dropped = 0
        self.gaps_requested = 0
        self.gaps_failed = 0
        self._gaps: deque[GapDetected | TradeGap] = deque(maxlen=GAPS_QUEUED_MAX)
        self._recovery: asyncio.Task[None] | None = None
        self._receivers: list[_Receiver] = []
        self.rts = RtsClient(
            config.rts_host, config.rts_port, config.rts_username, self._on_retransmitted
        )

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        cfg = self.config
        sources: tuple[tuple[Source, int], ...] = (
            (Line.A, cfg.port_a),
            (Line.B, cfg.port_b),
            (SOURCE_REFRESH, cfg.refresh_port),
        )
        for source, port in sources:
            receiver = _Receiver(source, self, _udp_socket(cfg.host, port))
            loop.add_reader(receiver.sock.fileno(), receiver.on_readable)
            self._receivers.append(receiver)

    async def run(self, stop: asyncio.Event) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        next_status = loop.time() + cfg.status_interval_s
        while not stop.is_set():
            try:
                item = await asyncio.wait_for(self.queue.get(), timeout=cfg.poll_s)
            except TimeoutError:
                item = None
            if item is not None:
                self._apply(*item)
                for _ in range(BATCH_MAX):
                    try:
                        self._apply(*self.queue.get_nowait())
                    except asyncio.QueueEmpty:
                        break
                self._publish_depth()
            self._poll_feed()
            blocked_from_ns = time.monotonic_ns()
            self.sink.poll()
            self._sink_blocked_ns += time.monotonic_ns() - blocked_from_ns
            if loop.time() >= next_status:
                log.info("omd-ingest: %s", self.status_line())
                next_status = loop.time() + cfg.status_interval_s

    def _apply(self, source: Source, data: bytes, arrival_ns: int | None = None) -> None:
        now_ns = self.feed_clock_ns() if arrival_ns is None else arrival_ns
        self._applied_arrival_ns = now_ns
        if isinstance(source, Line):
            outputs = self.feed.on_line_packet(data, now_ns, source)
        else:
            outputs = self.feed.on_refresh_packet(data, now_ns)
        if outputs is None:
            self._log_malformed(data)
        elif outputs:
            self.sink.publish(outputs)

    def _on_retransmitted(self, data: bytes) -> None:
        self._apply(Line.RETRANSMISSION, data)
        self._publish_depth()

    def _publish_depth(self) -> None:
        released = self.feed.take_released()
        if released:
            self.sink.publish(released)
        depth = self.feed.take_depth()
        if depth:
            self.sink.publish(depth)

    def _log_malformed(self, data: bytes) -> None:
        n = self.feed.counters.malformed
        if n <= MALFORMED_LOGGED_MAX or n % 1000 == 0:
            log.warning(
                "omd-ingest: malformed packet #%d (%d bytes): %s", n, len(data), data[:256].hex()
            )

    def _poll_feed(self) -> None:
        for event in self.feed.poll(self._feed_now_ns()):
            if type(event) is GapDetected or type(event) is TradeGap:
                self._gaps.append(event)
            elif type(event) is RefreshRequired:
                log.warning("omd-ingest: refresh: %s", event.reason)
            elif type(event) is ResetRejected:
                log.warning(
                    "omd-ingest: SequenceReset at %d on line %s ignored: %s",
                    event.seq_num,
                    event.line.value,
                    event.reason,
                )
            elif type(event) is TradesUnrecovered:
                log.warning(
                    "omd-ingest: trades of messages %d..%d not recovered: %s",
                    event.begin_seq_num,
                    event.end_seq_num,
                    event.reason,
                )
        self._publish_depth()  # trades a backfill released, if any
        if self._gaps and (self._recovery is None or self._recovery.done()):
            self._recovery = asyncio.create_task(self._recover())

    def _feed_now_ns(self) -> int:
        """The time the arbiter's timers run on: while datagrams still wait in our queue,
        the arrival time of the last one applied, so the other line's copy of a message,
        already received but not yet applied, is never reported as missing (a slow loop
        turn, such as a Kafka commit, would otherwise look like a loss)."""
        return self._applied_arrival_ns if self.queue.qsize() else self.feed_clock_ns()

    def feed_clock_ns(self) -> int:
        """The clock minus the time the loop spent blocked in the sink (a Kafka commit): a
        datagram read after such a pause would otherwise look that much later than its
        other line's copy read before it, and a pause longer than the gap timeout would
        turn into retransmission requests for messages the other line did deliver."""
        return self.clock_ns() - self._sink_blocked_ns

    async def _recover(self) -> None:
        """Fill the queued gaps from the retransmission server, else refresh."""
        while self._gaps:
            gap = self._gaps.popleft()
            trades_only = type(gap) is TradeGap
            if self.feed.refreshing and not trades_only:
                continue  # the snapshot will cover it
            try:
                if not self.rts.connected:
                    await self.rts.connect()
                span = GapDetected(gap.begin_seq_num, gap.end_seq_num)
                for request in retransmission_requests(self.config.channel_id, span):
                    self.gaps_requested += 1
                    status = await self.rts.request(
                        request.channel_id, request.begin_seq_num, request.end_seq_num
                    )
                    if status != 0:
                        raise RtsUnavailable(f"RetransStatus {status} for {request}")
            except RtsUnavailable as exc:
                self.gaps_failed += 1
                if trades_only:
                    self.feed.abandon_backfill(f"retransmission failed: {exc}")
                    continue
                log.warning(
                    "omd-ingest: gap %d..%d not retransmitted (%s): refreshing",
                    gap.begin_seq_num,
                    gap.end_seq_num,
                    exc,
                )
                self.feed.request_refresh()
                trade_gaps = [g for g in self._gaps if type(g) is TradeGap]
                self._gaps.clear()
                self._gaps.extend(trade_gaps)

    def status_line(self) -> str:
        c, a = self.feed.counters, self.feed.arbiter
        return (
            f"state={a.state.value} next={a.next_seq_num} pending={a.pending_count} "
            f"packets={c.packets} applied={c.applied} trades={c.trades} dup={a.counters.duplicates} "
            f"malformed={c.malformed} unknown={c.unknown} gaps_req={self.gaps_requested} "
            f"gaps_failed={self.gaps_failed} refreshes={c.refreshes_completed}/"
            f"{c.refreshes_started} resets={c.resets} "
            f"resets_rejected={a.counters.resets_rejected} backfilled={c.trades_backfilled} "
            f"queue={self.queue.qsize()} "
            f"queue_dropped={self.queue_dropped}"
        )

    async def close(self) -> None:
        if self._recovery is not None:
            self._recovery.cancel()
            with contextlib.suppress(asyncio.CancelledError, RtsUnavailable):
                await asyncio.wait_for(self._recovery, 5.0)
        await self.rts.close()
        loop = asyncio.get_running_loop()
        for receiver in self._receivers:
            loop.remove_reader(receiver.sock.fileno())
            receiver.sock.close()
        self._receivers.clear()
