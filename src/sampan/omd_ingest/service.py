"""The omd_ingest process body: UDP receivers, the feed handler, recovery, the Kafka sink.

Guarantees:
- Lines A and B and the refresh channel are received on their own UDP sockets (joining the
  multicast group when the host is one) into one bounded queue (``queue_max`` datagrams); a
  datagram that finds the queue full is dropped and counted, which the arbiter then sees as
  a gap and recovers like any loss.
- One consumer task applies datagrams to the ``FeedHandler`` in arrival order and hands its
  outputs to the sink; depth is published once per drained batch (at most ``BATCH_MAX``
  datagrams), so under load it conflates instead of queueing. Gaps the arbiter reports are filled from the retransmission server
  (one recovery task at a time, gaps queued up to ``GAPS_QUEUED_MAX``); a refused request or
  an unreachable server starts a refresh instead. Retransmitted packets are applied as they
  arrive.
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
import functools
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
    GapDetected,
    LineArbiter,
    RefreshRequired,
    retransmission_requests,
)
from sampan.omd_ingest.feed import FeedHandler, Output
from sampan.omd_ingest.rts_client import RtsClient, RtsUnavailable

log = logging.getLogger(__name__)

QUEUE_MAX_DEFAULT = 100_000
BATCH_MAX = 512  # datagrams applied per loop turn before the loop polls timers again
GAPS_QUEUED_MAX = 1_000
MALFORMED_LOGGED_MAX = 20
ANY_INTERFACE = "0.0.0.0"  # noqa: S104 - join the group on the default interface
RCVBUF_BYTES = 8 * 1024 * 1024
SOURCE_LINE = 0
SOURCE_REFRESH = 1


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
    poll_s: float = 0.01
    status_interval_s: float = 5.0


class _Receiver(asyncio.DatagramProtocol):
    def __init__(self, source: int, ingest: OmdIngest) -> None:
        self.source = source
        self.ingest = ingest

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        try:
            self.ingest.queue.put_nowait((self.source, data))
        except asyncio.QueueFull:
            self.ingest.queue_dropped += 1


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
            next_seq_num=None if config.late_join else 1, gap_timeout_ns=config.gap_timeout_ns
        )
        self.feed = FeedHandler(arbiter)
        self.queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue(config.queue_max)
        self.queue_dropped = 0
        self.gaps_requested = 0
        self.gaps_failed = 0
        self._gaps: deque[GapDetected] = deque(maxlen=GAPS_QUEUED_MAX)
        self._recovery: asyncio.Task[None] | None = None
        self._transports: list[asyncio.DatagramTransport] = []
        self.rts = RtsClient(
            config.rts_host, config.rts_port, config.rts_username, self._on_retransmitted
        )

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        cfg = self.config
        for source, port in (
            (SOURCE_LINE, cfg.port_a),
            (SOURCE_LINE, cfg.port_b),
            (SOURCE_REFRESH, cfg.refresh_port),
        ):
            transport, _ = await loop.create_datagram_endpoint(
                functools.partial(_Receiver, source, self), sock=_udp_socket(cfg.host, port)
            )
            self._transports.append(transport)

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
            self.sink.poll()
            if loop.time() >= next_status:
                log.info("omd-ingest: %s", self.status_line())
                next_status = loop.time() + cfg.status_interval_s

    def _apply(self, source: int, data: bytes) -> None:
        now_ns = self.clock_ns()
        if source == SOURCE_LINE:
            outputs = self.feed.on_line_packet(data, now_ns)
        else:
            outputs = self.feed.on_refresh_packet(data, now_ns)
        if outputs is None:
            self._log_malformed(data)
        elif outputs:
            self.sink.publish(outputs)

    def _on_retransmitted(self, data: bytes) -> None:
        self._apply(SOURCE_LINE, data)
        self._publish_depth()

    def _publish_depth(self) -> None:
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
        for event in self.feed.poll(self.clock_ns()):
            if type(event) is GapDetected:
                self._gaps.append(event)
            elif type(event) is RefreshRequired:
                log.warning("omd-ingest: refresh: %s", event.reason)
        if self._gaps and (self._recovery is None or self._recovery.done()):
            self._recovery = asyncio.create_task(self._recover())

    async def _recover(self) -> None:
        """Fill the queued gaps from the retransmission server, else refresh."""
        while self._gaps:
            gap = self._gaps.popleft()
            if self.feed.refreshing:
                continue  # the snapshot will cover it
            try:
                if not self.rts.connected:
                    await self.rts.connect()
                for request in retransmission_requests(self.config.channel_id, gap):
                    self.gaps_requested += 1
                    status = await self.rts.request(
                        request.channel_id, request.begin_seq_num, request.end_seq_num
                    )
                    if status != 0:
                        raise RtsUnavailable(f"RetransStatus {status} for {request}")
            except RtsUnavailable as exc:
                self.gaps_failed += 1
                log.warning(
                    "omd-ingest: gap %d..%d not retransmitted (%s): refreshing",
                    gap.begin_seq_num,
                    gap.end_seq_num,
                    exc,
                )
                self.feed.request_refresh()
                self._gaps.clear()

    def status_line(self) -> str:
        c, a = self.feed.counters, self.feed.arbiter
        return (
            f"state={a.state.value} next={a.next_seq_num} pending={a.pending_count} "
            f"packets={c.packets} applied={c.applied} trades={c.trades} dup={a.counters.duplicates} "
            f"malformed={c.malformed} unknown={c.unknown} gaps_req={self.gaps_requested} "
            f"gaps_failed={self.gaps_failed} refreshes={c.refreshes_completed}/"
            f"{c.refreshes_started} resets={c.resets} queue={self.queue.qsize()} "
            f"queue_dropped={self.queue_dropped}"
        )

    async def close(self) -> None:
        if self._recovery is not None:
            self._recovery.cancel()
            with contextlib.suppress(asyncio.CancelledError, RtsUnavailable):
                await asyncio.wait_for(self._recovery, 5.0)
        await self.rts.close()
        for transport in self._transports:
            transport.close()
