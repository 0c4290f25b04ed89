"""The OMD-C side of the simulator process: steps the market, publishes lines A and B, heartbeats,
the refresh channel and the retransmission server, on one asyncio loop.

Guarantees:
- Every ``tick_s`` it steps the market's synthetic liquidity to the current time (unless
  ``stepping`` is off), flushes the publisher and sends the numbered messages on both lines:
  a change made by any other caller of the ``Market`` on the same loop (the FIX acceptor)
  reaches the lines within one tick.
- A line that has sent nothing for ``heartbeat_s`` sends a heartbeat (§3.4.1).
- Every ``refresh_interval_s`` it sends a full snapshot followed by RefreshComplete (203) on
  the refresh channel, synchronised with the last message sent on the lines (§4.4).
- ``run`` returns when ``stop`` is set (or after ``duration_s``); ``close`` releases the sockets
  and stops the retransmission server. Every wait is bounded by the tick.

Limits: the clock is injected (``clock_ns``, default ``time.time_ns``), so SendTime and trade
times are wall-clock by default; the market itself never reads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sampan.hkex_sim.market import Market
from sampan.hkex_sim.omd_lines import (
    LINE_B_PAYLOAD_BYTES_DEFAULT,
    LineConfig,
    LineFaults,
    UdpLine,
)
from sampan.hkex_sim.omd_publisher import CHANNEL_ID_DEFAULT, OmdPublisher
from sampan.hkex_sim.rts import RetransmissionServer, RetransmissionService, RtsLimits
from sampan.omd.packets import pack_messages
from sampan.omd.wire import RefreshComplete

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OmdConfig:
    host: str = "127.0.0.1"
    port_a: int = 51_000
    port_b: int = 51_001
    refresh_port: int = 51_002
    rts_host: str = "127.0.0.1"
    rts_port: int = 51_003  # TCP; 0 picks a free port (see ``OmdSimulator.rts.port``)
    channel_id: int = CHANNEL_ID_DEFAULT
    tick_s: float = 0.005
    heartbeat_s: float = 2.0
    refresh_interval_s: float = 1.0
    line_b_payload_bytes_max: int = LINE_B_PAYLOAD_BYTES_DEFAULT
    faults_a: LineFaults = field(default_factory=LineFaults)
    faults_b: LineFaults = field(default_factory=LineFaults)
    rts_limits: RtsLimits = field(default_factory=RtsLimits)
    rts_users: frozenset[str] = frozenset()
    status_interval_s: float = 10.0
    trade_id_base: int = 0  # added to every TradeID (see omd_publisher.trade_id_base_at)
    multicast_ttl: int = 1


@dataclass(slots=True)
class OmdCounters:
    messages: int = 0
    heartbeats: int = 0
    refreshes: int = 0
    actions: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class OmdSimulator:
    """Owns the publisher, the lines, the refresh channel and the retransmission server."""

    def __init__(
        self,
        market: Market,
        config: OmdConfig,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.market = market
        self.config = config
        self.clock_ns = clock_ns
        self.publisher = OmdPublisher(
            market, channel_id=config.channel_id, trade_id_base=config.trade_id_base
        )
        self.lines = (
            UdpLine(
                LineConfig("A", config.host, config.port_a, faults=config.faults_a),
                config.multicast_ttl,
            ),
            UdpLine(
                LineConfig(
                    "B",
                    config.host,
                    config.port_b,
                    config.line_b_payload_bytes_max,
                    config.faults_b,
                ),
                config.multicast_ttl,
            ),
        )
        self.refresh_line = UdpLine(
            LineConfig("R", config.host, config.refresh_port), config.multicast_ttl
        )
        service = RetransmissionService(
            {config.channel_id: self.publisher.store}, config.rts_limits, config.rts_users
        )
        self.rts = RetransmissionServer(service, config.rts_host, config.rts_port, clock_ns)
        self.counters = OmdCounters()
        self.stepping = True
        self._refresh_seq = 1
        self._last_sent_s = 0.0
        self._started = False

    async def start(self, *, seed_books: bool = True) -> None:
        """Bind the retransmission server, start the day's numbering, quote the books."""
        await self.rts.start()
        now_ns = self.clock_ns()
        self.publisher.sequence_reset(now_ns)
        if seed_books:
            self.market.seed_books(now_ns)
        self.pump()
        self._started = True

    def pump(self) -> int:
        """Send whatever the publisher has produced; return the number of messages."""
        flushed = self.publisher.flush()
        if flushed is None:
            return 0
        now_ns = self.clock_ns()
        for line in self.lines:
            line.send_messages(flushed.first_seq_num, flushed.messages, now_ns)
        self.counters.messages += len(flushed.messages)
        self._last_sent_s = time.monotonic()
        return len(flushed.messages)

    def sequence_reset(self) -> None:
        """A mid-day SequenceReset: numbering restarts and the whole state is republished."""
        self.pump()
        self.publisher.sequence_reset(self.clock_ns())
        self.pump()

    def send_refresh(self) -> None:
        self.pump()
        last_seq_num, messages = self.publisher.snapshot()
        packets = pack_messages(
            self._refresh_seq, self.clock_ns(), [*messages, RefreshComplete(last_seq_num)]
        )
        self._refresh_seq += len(messages) + 1
        self.refresh_line.send_packets(packets)
        self.counters.refreshes += 1

    async def run(self, stop: asyncio.Event, duration_s: float | None = None) -> None:
        """Tick until ``stop`` is set or ``duration_s`` has passed."""
        assert self._started, "start() first"
        cfg = self.config
        loop = asyncio.get_running_loop()
        end = None if duration_s is None else loop.time() + duration_s
        next_refresh = loop.time() + cfg.refresh_interval_s
        next_status = loop.time() + cfg.status_interval_s
        while not stop.is_set() and (end is None or loop.time() < end):
            if self.stepping:
                self.counters.actions += self.market.step(self.clock_ns())
            self.pump()
            now = loop.time()
            if time.monotonic() - self._last_sent_s >= cfg.heartbeat_s:
                for line in self.lines:
                    line.send_heartbeat(self.publisher.last_seq_num, self.clock_ns())
                self.counters.heartbeats += 1
                self._last_sent_s = time.monotonic()
            if now >= next_refresh:
                self.send_refresh()
                next_refresh = now + cfg.refresh_interval_s
            if now >= next_status:
                log.info("hkex-sim omd: %s", self.status_line())
                next_status = now + cfg.status_interval_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=cfg.tick_s)
        self.pump()

    def status_line(self) -> str:
        a, b = (line.counters for line in self.lines)
        return (
            f"seq={self.publisher.last_seq_num} msgs={self.counters.messages} "
            f"actions={self.counters.actions} A(pkts={a.packets} drop={a.dropped} "
            f"dup={a.duplicated} reord={a.reordered}) B(pkts={b.packets} drop={b.dropped} "
            f"dup={b.duplicated} reord={b.reordered}) refreshes={self.counters.refreshes}"
        )

    async def close(self) -> None:
        await self.rts.close()
        for line in (*self.lines, self.refresh_line):
            line.close()
