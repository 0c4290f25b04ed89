"""On the real stack: orders over FIX to an in-process simulator, the drop-copy process writes
every report to Kafka exactly once across a SIGKILL and restart, and reconciliation against the
fills the router would book finds nothing to report."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer

from sampan import credentials
from sampan.config import Settings
from sampan.dropcopy.recon_runner import ReconRunner, load_breaks, report
from sampan.fix.codec import FixMessage
from sampan.fix.messages import NewOrderSingle, OrdType, Side, TimeInForce
from sampan.fix.session import Session
from sampan.fix.session_types import SessionConfig, SessionRole
from sampan.fix.store import MemorySessionStore
from sampan.fix.transport import SessionConnection, open_initiator
from sampan.hkex_sim.market import MAKER_ACCOUNT, MAKER_MEMBER, ListedSecurity, Market
from sampan.hkex_sim.ocg_gateway import FirmConfig, Gateway, GatewayConfig
from sampan.market.calendar import trading_day_iso
from sampan.matching import Side as MSide
from sampan.schemas import registry

pytestmark = pytest.mark.integration

HSBC = ListedSecurity(5, "HSBC HOLDINGS", 400, 98_550)
WAIT_S = 60.0


@dataclass
class Client:
    logons: int = 0
    reports: list[FixMessage] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def on_logon(self, conn: SessionConnection) -> None:
        self.logons += 1
        self.changed.set()

    def on_message(self, conn: SessionConnection, msg: FixMessage) -> None:
        if msg.msg_type == "8":
            self.reports.append(msg)
        self.changed.set()

    def on_session_ended(self, conn: SessionConnection, reason: str, was_logged_on: bool) -> None:
        self.changed.set()

    async def until(self, predicate: Callable[[], bool], what: str) -> None:
        try:
            async with asyncio.timeout(WAIT_S):
                while not predicate():
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}") from None


def read_topic(settings: Settings, topic: str, schema: str) -> list[dict[str, Any]]:
    """Every committed record of `topic` now (read to the end of each partition)."""
    consumer = Consumer(
        settings.kafka(
            **{
                "group.id": f"test-{uuid.uuid4().hex[:8]}",
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
            }
        )
    )
    name = settings.topic(topic)
    partitions = len(consumer.list_topics(name, timeout=10).topics[name].partitions)
    consumer.subscribe([name])
    records: list[dict[str, Any]] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + 30
    try:
        while len(at_end) < partitions:
            assert time.monotonic() < deadline, f"{topic} not read to its end"
            for message in consumer.consume(500, 0.2):
                if message.error() is not None:
                    at_end.add(message.partition())
                    continue
                records.append(registry().decode(schema, message.value()))
    finally:
        consumer.close()
    return records


def start_dropcopy(port: int, state_dir: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "sampan.dropcopy.cli", "dropcopy", "--port", str(port)]
    argv += ["--comp-id", "SAMPANDC", "--heartbeat-s", "1", "--state-dir", str(state_dir)]
    return subprocess.Popen(argv, env=dict(os.environ))


async def wait_records(settings: Settings, count: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + WAIT_S
    while (
        len(await asyncio.to_thread(read_topic, settings, "hkex.dropcopy", "DropCopyExecution"))
        < count
    ):
        assert proc.poll() is None, "the dropcopy process exited"
        assert time.monotonic() < deadline, f"fewer than {count} drop-copy records"
        await asyncio.sleep(0.3)


def trade_orders(market: Market, conn: SessionConnection, first: int, count: int) -> None:
    """`count` crossing orders: a maker offer, then our bid taking it (New + Trade each)."""
    for n in range(first, first + count):
        market.place(
            ts_ns=time.time_ns(),
            security=5,
            account=MAKER_ACCOUNT,
            member=MAKER_MEMBER,
            side=MSide.SELL,
            qty=400,
            price_e3=98_550,
        )
        order = NewOrderSingle(
            str(n), "5", Side.BUY, OrdType.LIMIT, 400, 98_550, TimeInForce.DAY, time.time_ns()
        )
        conn.send(order.to_fix())


def produce_fills(settings: Settings, trades: list[FixMessage]) -> None:
    producer = Producer(settings.kafka(**{"enable.idempotence": True, "acks": "all"}))
    for t in trades:
        fill = {
            "exec_id": t.get(17),
            "venue": "HKEX",
            "security": 5,
            "price_e3": 98_550,
            "qty": int(t.get(32) or 0),
            "buy_account": "ACC1",
            "buy_member": "SAMPAN",
            "buy_order_id": t.get(37),
            "sell_account": "HKEX",
            "sell_member": "HKEX",
            "sell_order_id": "HKEX",
            "aggressor": "BUY",
            "parent_id": None,
            "ts_ns": time.time_ns(),
        }
        producer.produce(settings.topic("fills"), registry().encode("Fill", fill), b"ACC1")
    assert producer.flush(10) == 0


async def scenario(settings: Settings, tmp: Path) -> None:
    market = Market([HSBC])
    firm = FirmConfig("SAMPAN", "SAMPANDC", throttle_per_s=0)
    gateway = Gateway(GatewayConfig((firm,), state_dir=tmp / "sim"), market)
    await gateway.start()
    dropcopy = start_dropcopy(gateway.drop_copy_port, tmp / "dc")
    orders = Client()
    session = Session(
        SessionConfig(
            SessionRole.INITIATOR,
            "SAMPAN",
            "HKEX",
            heartbeat_interval_s=1,
            heartbeat_interval_s_min=1,
            password=credentials.session_password("SAMPAN"),
        ),
        MemorySessionStore(),
    )
    try:
        conn = await open_initiator("127.0.0.1", gateway.order_port, session, orders)
        task = asyncio.create_task(conn.run())
        await orders.until(lambda: orders.logons == 1, "order session logon")

        trade_orders(market, conn, 1, 20)
        await wait_records(settings, 20, dropcopy)
        dropcopy.send_signal(signal.SIGKILL)
        dropcopy.wait(timeout=10)
        # While the drop-copy process is dead: more executions, and two order-session
        # reports lost on the wire (healed by the order session's own resend).
        gateway.lose_reports("SAMPAN", 2)
        trade_orders(market, conn, 21, 20)
        await orders.until(lambda: len(orders.reports) == 80, "all 80 reports on the order session")
        dropcopy = start_dropcopy(gateway.drop_copy_port, tmp / "dc")
        trade_orders(market, conn, 41, 10)
        await orders.until(lambda: len(orders.reports) == 100, "all 100 reports")
        await wait_records(settings, 100, dropcopy)
        await asyncio.sleep(2.0)  # a duplicate committed late would show up now
        records = await asyncio.to_thread(
            read_topic, settings, "hkex.dropcopy", "DropCopyExecution"
        )
        sent = [m.get(17) for m in orders.reports]
        assert len(records) == 100, f"{len(records)} drop-copy records for 100 reports"
        assert sorted(r["exec_id"] for r in records) == sorted(sent)
        assert len({r["msg_seq_num"] for r in records}) == 100
        assert sum(m.poss_dup for m in orders.reports) >= 2  # the lost ones came back as resends

        trades = [m for m in orders.reports if m.get(150) == "F"]
        assert len(trades) == 50
        await asyncio.to_thread(produce_fills, settings, trades)
        await asyncio.to_thread(run_recon_briefly, settings)
        day = trading_day_iso(time.time_ns())
        assert await asyncio.to_thread(load_breaks, settings, day) == {}
        result = await asyncio.to_thread(report, settings, day, 1.0)
        assert (result.summary.matched, result.summary.open_by_kind) == (50, {})

        conn.logout("done")
        await asyncio.wait_for(task, 5)
    finally:
        dropcopy.send_signal(signal.SIGTERM)
        try:
            dropcopy.wait(timeout=30)
        finally:
            dropcopy.kill()
            await gateway.close()


def run_recon_briefly(settings: Settings, seconds: float = 4.0) -> ReconRunner:
    runner = ReconRunner(settings, trading_day_iso(time.time_ns()), grace_s=1.0)
    timer = threading.Timer(seconds, runner.stop)
    timer.start()
    try:
        runner.run(tick_s=0.2)
    finally:
        timer.cancel()
    return runner


def test_dropcopy_exactly_once_across_sigkill_and_clean_recon(
    env_settings: Settings, tmp_path: Path
) -> None:
    started = time.monotonic()
    asyncio.run(scenario(env_settings, tmp_path))
    assert time.monotonic() - started < 90
