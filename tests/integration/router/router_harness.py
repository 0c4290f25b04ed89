"""Harness for the router's integration tests: the simulated HKEX in a thread of this process,
the matcher and the router as subprocesses, and Kafka helpers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from sampan import credentials
from sampan.config import Settings
from sampan.fix.codec import FixMessage
from sampan.fix.session import Session
from sampan.fix.session_types import SessionConfig, SessionRole
from sampan.fix.store import MemorySessionStore
from sampan.fix.transport import SessionConnection, open_initiator
from sampan.hkex_sim.market import LiquidityConfig, ListedSecurity, Market
from sampan.hkex_sim.ocg_gateway import FirmConfig, Gateway, GatewayConfig
from sampan.matching import Side
from sampan.schemas import registry
from sampan.tools.seed import AccountSeed, account_record

TENCENT = ListedSecurity(700, "TENCENT", 100, 512_000)
HKEX_MAKER = "HKMM01"


@dataclass
class DropCopy:
    """A drop-copy client inside the simulator's loop: the ExecIDs of every copied report."""

    exec_ids: list[str] = field(default_factory=list)
    trades: list[str] = field(default_factory=list)
    reports: list[FixMessage] = field(default_factory=list)

    def on_logon(self, conn: SessionConnection) -> None:
        pass

    def on_message(self, conn: SessionConnection, msg: FixMessage) -> None:
        if msg.msg_type == "8":
            self.exec_ids.append(msg.get(17) or "")
            self.reports.append(msg)
            if msg.get(150) == "F":
                self.trades.append(msg.get(17) or "")

    def on_session_ended(self, conn: SessionConnection, reason: str, was_logged_on: bool) -> None:
        pass


class Sim:
    """The simulated HKEX (order entry + drop copy) on an event loop in a daemon thread."""

    def __init__(self, state_dir: Path, throttle_per_s: int = 0, order_port: int = 0) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.market = Market([TENCENT], LiquidityConfig(actions_per_s=0))
        firm = FirmConfig("SAMPAN", "SAMPANDC", throttle_per_s=throttle_per_s)
        config = GatewayConfig((firm,), order_port=order_port, state_dir=state_dir)
        self.gateway = Gateway(config, self.market)
        self.run(self.gateway.start())
        self.drop_copy = DropCopy()
        config = SessionConfig(
            SessionRole.INITIATOR,
            "SAMPANDC",
            "HKEX",
            heartbeat_interval_s=1,
            heartbeat_interval_s_min=1,
            password=credentials.session_password("SAMPANDC"),
        )
        session = Session(config, MemorySessionStore())

        async def connect() -> None:
            self._dc_conn = await open_initiator(
                "127.0.0.1", self.gateway.drop_copy_port, session, self.drop_copy
            )
            self._dc_task = asyncio.create_task(self._dc_conn.run())

        self.run(connect())

    @property
    def port(self) -> int:
        return self.gateway.order_port

    def run(self, coro: Any, timeout_s: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def call(self, fn: Callable[[], Any]) -> Any:
        async def wrapper() -> Any:
            return fn()

        return self.run(wrapper())

    def rest_sell(self, qty: int, price_e3: int) -> None:
        self.call(
            lambda: self.market.place(
                ts_ns=time.time_ns(),
                security=700,
                account=HKEX_MAKER,
                member="MM01",
                side=Side.SELL,
                qty=qty,
                price_e3=price_e3,
            )
        )

    def close(self) -> None:
        async def shutdown() -> None:
            self._dc_conn.logout("done")
            await asyncio.wait({self._dc_task}, timeout=3)
            self._dc_task.cancel()
            await self.gateway.close()

        self.run(shutdown())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def state_dir() -> Path:
    root = Path(os.environ.get("SAMPAN_STATE_DIR", ".state")).resolve() / "test-router"
    path = root / uuid.uuid4().hex[:8]
    path.mkdir(parents=True, exist_ok=True)
    return path


class Proc:
    """A sampan process with its log in the test's state directory."""

    def __init__(self, name: str, args: list[str], directory: Path) -> None:
        self.log = directory / f"{name}.log"
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", *self.args],
                env=dict(os.environ),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout_s: float = 20.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError(f"{self.args} ignored SIGTERM for {timeout_s} s") from None
        return self.proc.returncode

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


def start_router(sim: Sim, directory: Path, *extra: str) -> Proc:
    return Proc(
        "router",
        [
            "sampan.router.cli",
            "--ocg-port",
            str(sim.port),
            "--heartbeat-s",
            "1",
            "--state-dir",
            str(directory / "router-fix"),
            "--batch-max",
            "200",
            *extra,
        ],
        directory,
    )


def start_matcher(directory: Path) -> Proc:
    return Proc("matcher", ["sampan.cli", "matcher", "--batch-size", "200"], directory)


def producer(settings: Settings) -> Producer:
    return Producer(
        settings.kafka(
            **{
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 1,
                "partitioner": "murmur2_random",
            }
        )
    )


def publish(settings: Settings, topic: str, schema: str, rows: list[tuple[str, dict]]) -> None:
    p = producer(settings)
    for key, value in rows:
        p.produce(settings.topic(topic), registry().encode(schema, value), key.encode())
    assert p.flush(30) == 0


def account(name: str, member: str, credit_line_cents: int, **kw: Any) -> tuple[str, dict]:
    seed = AccountSeed(
        name,
        member,
        0,
        credit_line_cents,
        kw.pop("cut_loss_cents", -(10**15)),
        kw.pop("max_order_notional_cents", 10**13),
        kw.pop("allow_short", False),
    )
    return name, account_record(seed, time.time_ns())


_SEQ = iter(range(1, 10**9))


def command(
    acct: str,
    member: str,
    side: str,
    qty: int,
    price_e3: int,
    route: str,
    *,
    kind: str = "NEW",
    tif: str = "DAY",
    cl_ord_id: str | None = None,
    orig: str | None = None,
) -> dict:
    n = next(_SEQ)
    return {
        "command_id": f"c{n}-{uuid.uuid4().hex[:6]}",
        "kind": kind,
        "account": acct,
        "member": member,
        "security": 700,
        "cl_ord_id": cl_ord_id or f"o{n}",
        "orig_cl_ord_id": orig,
        "side": side,
        "ord_type": "LIMIT",
        "time_in_force": tif,
        "price_e3": price_e3,
        "qty": qty,
        "route": route,
        "batch_id": None,
        "parent_id": None,
        "user": None,
        "ts_ns": time.time_ns(),
        "stp": None,
    }


def send(settings: Settings, *commands: dict) -> None:
    publish(settings, "orders.requests", "OrderCommand", [(c["account"], c) for c in commands])


def read_all(settings: Settings, topic: str, schema: str) -> list[dict]:
    """Every committed record of `topic` now (read_committed, to the end offsets)."""
    consumer = Consumer(
        settings.kafka(
            **{
                "group.id": f"t-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
            }
        )
    )
    name = settings.topic(topic)
    try:
        parts = consumer.list_topics(name, timeout=10).topics[name].partitions
        tps = [TopicPartition(name, p, 0) for p in parts]
        ends = {tp.partition: _end_offset(consumer, tp) for tp in tps}
        consumer.assign(tps)
        out: list[dict] = []
        done = {p for p, end in ends.items() if end == 0}
        idle = time.monotonic()
        while len(done) < len(ends) and time.monotonic() - idle < 3.0:
            for m in consumer.consume(500, 0.2):
                if m.error() is not None:
                    continue
                idle = time.monotonic()
                if m.value() is not None:
                    out.append(registry().decode(schema, m.value()))
                if m.offset() + 1 >= ends[m.partition()]:
                    done.add(m.partition())
        return out
    finally:
        consumer.close()


_METADATA_LAG = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
}


def _end_offset(consumer: Consumer, tp: TopicPartition, timeout_s: float = 10.0) -> int:
    """The partition's high watermark. A topic created a moment ago may not have its leader
    known to every broker yet (NOT_LEADER_FOR_PARTITION): ask again, within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return int(consumer.get_watermark_offsets(tp, timeout=timeout_s)[1])
        except KafkaException as error:
            if time.monotonic() > deadline or error.args[0].code() not in _METADATA_LAG:
                raise
            time.sleep(0.2)


def wait_for(what: str, predicate: Callable[[], Any], timeout_s: float, *procs: Proc) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.3)
    logs = "\n".join(f"--- {p.args[0]}\n{p.tail()}" for p in procs)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}\n{logs}")


def events_of(settings: Settings) -> list[dict]:
    return read_all(settings, "orders.events", "ExecutionReport")


def fills_of(settings: Settings) -> list[dict]:
    return read_all(settings, "fills", "Fill")


def iter_parent(events: list[dict], cl_ord_id: str) -> Iterator[dict]:
    return (e for e in events if e["cl_ord_id"] == cl_ord_id and e["order_id"].startswith("P"))
