"""The Kafka broker is SIGKILLed under a steady stream and restarted ~5 s later: the matcher,
the router and the drop-copy writer ride through it (abort, rewind, continue) without a
supervisor, and no fill, order event or drop-copy record is lost or duplicated.

It kills the broker, so it runs on a private stack (its own SAMPAN_STATE_DIR and ports, Kafka
only) that the fixture starts and stops; never on the shared one."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from router_harness import (
    HKEX_MAKER,
    TENCENT,
    Proc,
    account,
    command,
    publish,
    read_all,
    start_matcher,
)

from sampan import stack, topics_cli
from sampan.config import Settings, settings
from sampan.errors import StackError
from sampan.hkex_sim.market import LiquidityConfig, Market
from sampan.hkex_sim.ocg_gateway import FirmConfig, Gateway, GatewayConfig
from sampan.market.rules import LOTS_PER_ORDER_MAX
from sampan.matching import ExecType, Side
from sampan.schemas import registry

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.timeout(600),
    # `stack.start_kafka` leaves the broker running when its Popen handle goes away, as the
    # broker of `sampan stack up` must; the fixture stops it by its pid file.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

PRICE_E3 = 512_000
OUTAGE_S = 5.0
STREAM_BEFORE_S = 8.0
STREAM_AFTER_S = 8.0
SETTLE_TIMEOUT_S = 150.0
READY_TIMEOUT_S = 90.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def private_stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A Kafka broker of this test alone, with the catalog's topics; stopped afterwards."""
    state = Path(f"/tmp/sampan-broker-restart-{uuid.uuid4().hex[:8]}")
    monkeypatch.delenv("SAMPAN_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.setenv("SAMPAN_STATE_DIR", str(state))
    monkeypatch.setenv("SAMPAN_KAFKA_PORT", str(_free_port()))
    monkeypatch.setenv("SAMPAN_KAFKA_CONTROLLER_PORT", str(_free_port()))
    monkeypatch.setenv("SAMPAN_PG_PORT", str(_free_port()))  # no database here: nothing uses it
    monkeypatch.setenv("SAMPAN_TOPIC_PREFIX", f"t{uuid.uuid4().hex[:10]}.")
    current = settings()
    paths = stack.Paths(current.state_dir)
    paths.state.mkdir(parents=True, exist_ok=True)
    try:
        stack.start_kafka(current, paths)
        result = topics_cli.apply(current)
        assert not result.drift, result.drift
        yield current
        shutil.rmtree(state, ignore_errors=True)  # kept after a failure, for its logs
    finally:
        stack.stop_pid(paths.kafka_pid, "kafka")


def _kill_broker(current: Settings) -> None:
    paths = stack.Paths(current.state_dir)
    pid = int(paths.kafka_pid.read_text().split()[0])
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                break
        except FileNotFoundError:
            break
        time.sleep(0.1)


def _restart_broker(current: Settings) -> None:
    """`stack.start_kafka`, waiting longer than it does: reloading every partition after a
    SIGKILL takes minutes on a loaded machine."""
    paths = stack.Paths(current.state_dir)
    try:
        stack.start_kafka(current, paths)
    except StackError:
        pid = int(paths.kafka_pid.read_text().split()[0])
        stack.wait_kafka_ready(current, paths, pid)


class Exchange:
    """The simulated HKEX order entry and drop copy (no drop-copy client of its own: the
    sampan drop-copy process is the client) on a loop in a thread."""

    def __init__(self, state_dir: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.market = Market([TENCENT], LiquidityConfig(actions_per_s=0))
        firm = FirmConfig("SAMPAN", "SAMPANDC", throttle_per_s=0)
        self.gateway = Gateway(GatewayConfig((firm,), state_dir=state_dir), self.market)
        self._run(self.gateway.start())

    def _run(self, coro: object) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)  # type: ignore[arg-type]

    def rest_sell(self, qty: int) -> None:
        """Sells that every HKEX buy of the stream trades against, in orders of at most
        `LOTS_PER_ORDER_MAX` lots (HKEX refuses larger ones)."""

        async def place(part: int) -> None:
            (accepted, *_) = self.market.place(
                ts_ns=time.time_ns(),
                security=TENCENT.security,
                account=HKEX_MAKER,
                member="MM01",
                side=Side.SELL,
                qty=part,
                price_e3=PRICE_E3,
            )
            assert accepted.exec_type is ExecType.ACCEPTED, accepted

        part_max = LOTS_PER_ORDER_MAX * TENCENT.board_lot
        while qty > 0:
            self._run(place(min(qty, part_max)))
            qty -= part_max

    def close(self) -> None:
        self._run(self.gateway.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class Stream:
    """Order requests at a steady pace from a thread: a crossing internal pair, then an HKEX
    buy, again and again. Its producer waits out the broker's absence."""

    def __init__(self, current: Settings) -> None:
        self.current = current
        self.producer = Producer(
            current.kafka(
                **{
                    "enable.idempotence": True,
                    "acks": "all",
                    "linger.ms": 1,
                    "partitioner": "murmur2_random",
                    "message.timeout.ms": 300_000,
                }
            )
        )
        self.internal_pairs: list[tuple[str, str]] = []
        self.hkex: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _send(self, c: dict) -> None:
        value = registry().encode("OrderCommand", c)
        self.producer.produce(self.current.topic("orders.requests"), value, c["account"].encode())
        self.producer.poll(0)

    def _run(self) -> None:
        while not self._stop.is_set():
            sell = command("SELLER1", "M2", "SELL", 100, PRICE_E3, "INTERNAL")
            buy = command("BUYER1", "M1", "BUY", 100, PRICE_E3, "INTERNAL")
            self._send(sell)
            self._send(buy)
            self.internal_pairs.append((sell["cl_ord_id"], buy["cl_ord_id"]))
            hkex = command("HKBUYER", "M1", "BUY", 100, PRICE_E3, "HKEX")
            self._send(hkex)
            self.hkex.append(hkex["cl_ord_id"])
            self._stop.wait(0.25)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        assert self.producer.flush(120) == 0, "the stream's requests were not all delivered"


def _wait_ready(procs: list[Proc], markers: dict[str, tuple[str, ...]]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    for proc in procs:
        while not all(m in proc.text() for m in markers[proc.log.stem]):
            assert proc.proc is not None and proc.proc.poll() is None, proc.tail()
            assert time.monotonic() < deadline, f"{proc.log.stem} not ready:\n{proc.tail()}"
            time.sleep(0.3)


def test_broker_restart_loses_and_duplicates_nothing(
    private_stack: Settings, tmp_path: Path
) -> None:
    current = private_stack
    directory = tmp_path / "procs"
    directory.mkdir(parents=True)
    exchange = Exchange(directory / "sim")
    exchange.rest_sell(3_000_000)
    publish(
        current,
        "reference.accounts",
        "Account",
        [
            account("BUYER1", "M1", 10**13),
            account("HKBUYER", "M1", 10**13),
            account("SELLER1", "M2", 10**13, allow_short=True),
        ],
    )
    procs = [
        start_matcher(directory),
        Proc(
            "router",
            [
                "sampan.router.cli",
                "--ocg-port",
                str(exchange.gateway.order_port),
                "--heartbeat-s",
                "1",
                "--state-dir",
                str(directory / "router-fix"),
                "--no-fsync",
            ],
            directory,
        ),
        Proc(
            "dropcopy",
            [
                "sampan.dropcopy.cli",
                "dropcopy",
                "--port",
                str(exchange.gateway.drop_copy_port),
                "--comp-id",
                "SAMPANDC",
                "--heartbeat-s",
                "1",
                "--state-dir",
                str(directory / "dc"),
            ],
            directory,
        ),
    ]
    stream = Stream(current)
    try:
        _wait_ready(
            procs,
            {
                "matcher": ("matcher: partition",),
                "router": ("logged on", "open orders restored"),
                "dropcopy": ("logged on",),
            },
        )
        stream.start()
        time.sleep(STREAM_BEFORE_S)
        _kill_broker(current)
        time.sleep(OUTAGE_S)
        restarting = time.monotonic()
        _restart_broker(current)
        print(f"broker back after {OUTAGE_S + time.monotonic() - restarting:.1f} s")
        time.sleep(STREAM_AFTER_S)
        stream.stop()
        pairs, hkex = len(stream.internal_pairs), len(stream.hkex)
        assert pairs > 10 and hkex > 10

        def settled() -> bool:
            fills = read_all(current, "fills", "Fill")
            copies = read_all(current, "hkex.dropcopy", "DropCopyExecution")
            return len(fills) >= pairs + hkex and len(copies) >= 2 * hkex

        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while not settled():
            for proc in procs:
                assert proc.proc is not None and proc.proc.poll() is None, (
                    f"{proc.args[0]} exited ({proc.proc.returncode if proc.proc else None}) "
                    f"after the broker restart:\n{proc.tail()}"
                )
            if time.monotonic() > deadline:
                fills = read_all(current, "fills", "Fill")
                copies = read_all(current, "hkex.dropcopy", "DropCopyExecution")
                events = read_all(current, "orders.events", "ExecutionReport")
                raise AssertionError(
                    f"not settled within {SETTLE_TIMEOUT_S:.0f} s: {len(fills)} fills of "
                    f"{pairs + hkex} ({Counter(f['venue'] for f in fills)}), "
                    f"{len(copies)} drop copies of {2 * hkex} "
                    f"({Counter(c['exec_type'] for c in copies)}), reports "
                    f"{Counter((e['venue'], e['exec_type']) for e in events)}\n"
                    + "\n".join(f"--- {p.log.stem}\n{p.tail()}" for p in procs)
                )
            time.sleep(1.0)
        time.sleep(3.0)  # a duplicate committed late would show up now

        fills = read_all(current, "fills", "Fill")
        exec_ids = Counter(f["exec_id"] for f in fills)
        assert [e for e, n in exec_ids.items() if n > 1] == [], "duplicated fills"
        by_venue = Counter(f["venue"] for f in fills)
        assert by_venue["HKEX"] == hkex, by_venue
        assert sum(by_venue.values()) == pairs + hkex, by_venue

        events = read_all(current, "orders.events", "ExecutionReport")
        keys = Counter((e["order_id"], e["exec_id"]) for e in events)
        assert [k for k, n in keys.items() if n > 1] == [], "duplicated order events"
        traded = Counter(e["cl_ord_id"] for e in events if e["exec_type"] == "TRADE")
        sent = [c for pair in stream.internal_pairs for c in pair] + stream.hkex
        assert [c for c in sent if traded[c] < 1] == [], "orders that never traded"

        copies = read_all(current, "hkex.dropcopy", "DropCopyExecution")
        assert len(copies) == 2 * hkex, "a New and a Trade report per HKEX order"
        assert len({c["msg_seq_num"] for c in copies}) == len(copies), "duplicated drop copy"
        hkex_fills = {f["exec_id"] for f in fills if f["venue"] == "HKEX"}
        assert {c["exec_id"] for c in copies if c["exec_type"] == "F"} == hkex_fills

        for proc in procs:
            assert proc.proc is not None and proc.proc.poll() is None, proc.tail()
            assert "CRITICAL" not in proc.text(), proc.tail()
        for proc in procs:
            assert proc.stop(60) == 0, proc.tail()
    finally:
        for proc in procs:
            if proc.proc is not None and proc.proc.poll() is None:
                proc.proc.kill()
                proc.proc.wait(10)
        exchange.close()
