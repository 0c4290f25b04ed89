"""Runs the simulator's OMD-C side and the ingest in one asyncio loop over real UDP/TCP."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

from sampan.hkex_sim.market import LiquidityConfig, Market, MarketTrade, MarketUpdate
from sampan.hkex_sim.omd_lines import LineFaults
from sampan.hkex_sim.omd_server import OmdConfig, OmdSimulator
from sampan.omd_ingest.feed import Output
from sampan.omd_ingest.service import IngestConfig, OmdIngest, Sink

QUIESCE_TIMEOUT_S = 20.0


def free_udp_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@dataclass
class MemorySink:
    outputs: list[Output] = field(default_factory=list)

    def publish(self, outputs: Sequence[Output]) -> None:
        self.outputs.extend(outputs)

    def poll(self) -> None:
        pass


@dataclass
class Run:
    market: Market
    sim: OmdSimulator
    ingest: OmdIngest
    trades: list[MarketTrade]


async def run_scenario(
    sink: Sink,
    *,
    seed: int,
    faults_a: LineFaults,
    faults_b: LineFaults,
    active_s: float,
    late_join_after_s: float | None = None,
    rate: int = 400,
) -> Run:
    port_a, port_b, port_r = free_udp_ports(3)
    market = Market(liquidity=LiquidityConfig(seed=seed, actions_per_s=rate))
    trades: list[MarketTrade] = []

    def on_update(update: MarketUpdate) -> None:
        trades.extend(update.trades)

    market.add_listener(on_update)
    config = OmdConfig(
        port_a=port_a,
        port_b=port_b,
        refresh_port=port_r,
        rts_port=0,
        faults_a=faults_a,
        faults_b=faults_b,
        refresh_interval_s=0.3,
        heartbeat_s=0.2,
    )
    sim = OmdSimulator(market, config)
    ingest_config = IngestConfig(
        port_a=port_a,
        port_b=port_b,
        refresh_port=port_r,
        rts_port=0,
        late_join=late_join_after_s is not None,
        # Generous for a loaded two-core machine: the lines' copies are read by one loop
        # shared with the simulator, so a busy moment must not look like a loss.
        gap_timeout_ns=200_000_000,
    )
    stop_sim, stop_ingest = asyncio.Event(), asyncio.Event()
    ingest: OmdIngest | None = None
    if late_join_after_s is None:
        ingest = await _start_ingest(ingest_config, sink, 0)
    await sim.start()
    assert sim.rts.port
    if ingest is not None:
        ingest.rts.port = sim.rts.port
        ingest_task = asyncio.create_task(ingest.run(stop_ingest))
    sim_task = asyncio.create_task(sim.run(stop_sim))
    try:
        if late_join_after_s is not None:
            await asyncio.sleep(late_join_after_s)
            ingest = await _start_ingest(ingest_config, sink, sim.rts.port)
            ingest_task = asyncio.create_task(ingest.run(stop_ingest))
            await asyncio.sleep(active_s - late_join_after_s)
        else:
            await asyncio.sleep(active_s)
        sim.stepping = False
        await _quiesce(sim, ingest)
    finally:
        stop_sim.set()
        stop_ingest.set()
        await asyncio.wait_for(sim_task, 5)
        if ingest is not None:
            await asyncio.wait_for(ingest_task, 5)
            await ingest.close()
        await sim.close()
    return Run(market, sim, ingest, trades)


async def _start_ingest(config: IngestConfig, sink: Sink, rts_port: int) -> OmdIngest:
    ingest = OmdIngest(config, sink)
    ingest.rts.port = rts_port
    await ingest.start()
    return ingest


async def _quiesce(sim: OmdSimulator, ingest: OmdIngest) -> None:
    """Wait until the ingest has applied everything the simulator sent."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + QUIESCE_TIMEOUT_S
    while True:
        arbiter = ingest.feed.arbiter
        if (
            not ingest.feed.refreshing
            and arbiter.next_seq_num == sim.publisher.last_seq_num + 1
            and arbiter.pending_count == 0
            and ingest.queue.qsize() == 0
        ):
            return
        if loop.time() > deadline:
            raise AssertionError(
                f"ingest did not catch up in {QUIESCE_TIMEOUT_S} s: {ingest.status_line()}; "
                f"simulator {sim.status_line()}"
            )
        await asyncio.sleep(0.05)


def assert_books_equal(run: Run) -> None:
    for listed in run.market.securities():
        code = listed.security
        expected = run.market.visible_depth(code)
        book = run.ingest.feed.books.books.get(code)
        got = ((), ()) if book is None else (tuple(book.bids), tuple(book.asks))
        assert got == expected, f"security {code}: ingest {got} != simulator {expected}"
