"""A forged SequenceReset and an omd-ingest killed mid-stream, on the real simulator (UDP lines,
refresh, retransmission over TCP) and the real broker: md.trades holds every HKEX trade of
the day exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition
from omd_harness import free_udp_ports

from sampan.config import Settings
from sampan.hkex_sim.market import LiquidityConfig, Market, MarketTrade, MarketUpdate
from sampan.hkex_sim.omd_server import OmdConfig, OmdSimulator
from sampan.omd.packets import encode_packet
from sampan.omd.wire import SequenceReset
from sampan.schemas import registry

pytestmark = pytest.mark.integration

START_TIMEOUT_S = 60.0
CATCH_UP_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
READ_TIMEOUT_S = 30.0
LOG_WAIT_S = 30.0
TradeKey = tuple[int, int]


def _free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def read_trades(settings: Settings) -> list[TradeKey]:
    """Every committed HKEX trade on md.trades as (security, TradeID), to each partition's end."""
    topic = settings.topic("md.trades")
    consumer = Consumer(
        settings.kafka(
            **{
                "group.id": f"{topic}-check-{time.time_ns()}",
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
            }
        )
    )
    out: list[TradeKey] = []
    try:
        parts = consumer.list_topics(topic, timeout=READ_TIMEOUT_S).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        done: set[int] = set()
        deadline = time.monotonic() + READ_TIMEOUT_S
        while len(done) < len(parts):
            assert time.monotonic() < deadline, f"{topic} not read to its end"
            for msg in consumer.consume(1000, 0.2):
                error = msg.error()
                if error is not None:
                    assert error.code() == KafkaError._PARTITION_EOF, error
                    done.add(msg.partition())
                    continue
                done.discard(msg.partition())
                record = registry().decode("TradeTick", msg.value())
                identity = record["trade_id"].rsplit(":", 1)[-1]  # <day>:<security>-<TradeID>
                code, trade_id = identity.split("-")
                assert int(code) == record["security"]
                out.append((int(code), int(trade_id)))
    finally:
        consumer.close()
    return out


class Ingest:
    """``sampan omd-ingest`` as its own process, logging to a file."""

    def __init__(self, log_path: Path, args: list[str]) -> None:
        self.log_path = log_path
        self.args = args
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "sampan.cli",
                "omd-ingest",
                *self.args,
                stdout=log,
                stderr=log,
                env=dict(os.environ),
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while b"omd-ingest: listening" not in self.log_path.read_bytes():
            assert self.proc.returncode is None, self.log()
            assert time.monotonic() < deadline, f"omd-ingest did not start: {self.log()}"
            await asyncio.sleep(0.1)

    async def wait_for_log(self, text: str, timeout_s: float = LOG_WAIT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while text.encode() not in self.log_path.read_bytes():
            assert time.monotonic() < deadline, f"no {text!r} in {timeout_s} s: {self.log()}"
            await asyncio.sleep(0.1)

    async def stop(self, signum: int) -> int:
        assert self.proc is not None
        self.proc.send_signal(signum)
        return await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT_S)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def forge_reset(port: int) -> None:
    """One datagram that looks like the start of a new day: SeqNum 1, NewSeqNo 1."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(encode_packet(1, time.time_ns(), [SequenceReset(1)]), ("127.0.0.1", port))


async def scenario(settings: Settings, tmp: Path) -> tuple[list[MarketTrade], list[Path]]:
    port_a, port_b, port_r = free_udp_ports(3)
    rts_port = _free_tcp_port()
    market = Market(liquidity=LiquidityConfig(seed=41, actions_per_s=300))
    trades: list[MarketTrade] = []

    def on_update(update: MarketUpdate) -> None:
        trades.extend(update.trades)

    market.add_listener(on_update)
    sim = OmdSimulator(
        market,
        OmdConfig(
            port_a=port_a,
            port_b=port_b,
            refresh_port=port_r,
            rts_port=rts_port,
            refresh_interval_s=0.5,
            heartbeat_s=0.2,
        ),
    )
    ports = ["--port-a", str(port_a), "--port-b", str(port_b), "--refresh-port", str(port_r)]
    ports += ["--rts-port", str(rts_port), "--status-interval-s", "1"]
    logs = [tmp / "ingest-1.log", tmp / "ingest-2.log"]
    first = Ingest(logs[0], [*ports, "--from-start"])  # it sees the day from message 1
    await first.start()
    stop_sim = asyncio.Event()
    await sim.start()
    sim_task = asyncio.create_task(sim.run(stop_sim))
    second: Ingest | None = None
    try:
        # Past the first thousand messages, where a repeat of the day's reset is no longer
        # taken for the other line's late copy of it.
        await asyncio.sleep(5.0)
        forge_reset(port_a)
        await first.wait_for_log("SequenceReset at 1 on line A ignored")
        await asyncio.sleep(0.5)
        assert await first.stop(signal.SIGKILL) == -signal.SIGKILL
        await asyncio.sleep(1.5)  # trades go on while nobody listens
        second = Ingest(logs[1], ports)  # a late joiner that reads back what was committed
        await second.start()
        await asyncio.sleep(2.0)
        forge_reset(port_b)
        await second.wait_for_log("SequenceReset at 1 on line B ignored")
        await asyncio.sleep(0.5)
        sim.stepping = False
        expected = {(t.security, t.trade_id) for t in trades}
        deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
        while set(await asyncio.to_thread(read_trades, settings)) != expected:
            assert time.monotonic() < deadline, f"md.trades incomplete: {second.log()}"
            await asyncio.sleep(1.0)
        assert await second.stop(signal.SIGTERM) == 0, second.log()
    finally:
        for ingest in (first, second):
            if ingest is not None and ingest.proc is not None and ingest.proc.returncode is None:
                ingest.proc.kill()
                await ingest.proc.wait()
        stop_sim.set()
        await asyncio.wait_for(sim_task, 10)
        await sim.close()
    return trades, logs


def test_forged_reset_and_restart_keep_each_trade_exactly_once(
    env_settings: Settings, tmp_path: Path
) -> None:
    trades, logs = asyncio.run(scenario(env_settings, tmp_path))
    kafka = read_trades(env_settings)
    repeated = [k for k, n in Counter(kafka).items() if n > 1]
    assert not repeated, f"{len(repeated)} trades published twice, e.g. {repeated[:5]}"
    expected = {(t.security, t.trade_id) for t in trades}
    assert len(expected) == len(trades) > 100
    assert set(kafka) == expected, f"missing {sorted(expected - set(kafka))[:10]}"
    second = logs[1].read_text(errors="replace")
    assert "trades of messages" not in second  # nothing reported unrecovered
    (stopped,) = [line for line in second.splitlines() if "omd-ingest: stopped:" in line]
    assert "backfilled=0 " not in stopped  # the restart did fetch the trades it missed
