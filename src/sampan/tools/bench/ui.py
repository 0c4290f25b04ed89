"""`sampan bench ui`: the screen's fan-out and order confirmation under load, on the real stack.

What runs: a fresh topic prefix and users schema; the simulated HKEX, the matcher, the router
and `sampan ui` as processes (the venue supervisor's specs); in this process, `clients`
WebSocket clients (one event loop) subscribed to security 700's depth, a producer that writes
a new HKEX depth snapshot of 700 to `md.depth` `depth_rate` times a second, and two traders of
different firms who send crossing orders through the REST API at `order_rate` a second while
everyone listens.

What is measured:
- `fanout_latency_ms_p50/p99`: from the depth record's `ts_ns` (stamped just before it is
  produced) to a client receiving it: Kafka produce and read_committed fetch, the server's
  fan-out, the WebSocket, and this process's event loop.
- `coalesced`, `disconnected`: the server's counters (`/api/health`) after the run: depth
  snapshots replaced in a slow client's outbox before being sent, and clients closed as too
  slow.
- `order_confirm_ms_p50/p99`: from just before the REST request to the first execution report
  of that order on the trader's WebSocket (REST, Kafka to the router, risk, the matcher, Kafka
  back, fan-out).

Limits: every process and every client share this machine's cores, so the clients' own event
loop is part of every figure; a figure is the venue's and the bench's together.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sampan import topics_cli
from sampan.config import Settings, settings
from sampan.errors import SampanError
from sampan.schemas import registry
from sampan.streams import profiles
from sampan.tools.bench.cli import percentile

CLIENTS_DEFAULT = 1_000
DEPTH_RATE = 100  # depth snapshots a second
ORDER_RATE = 200  # orders a second, both traders together
RUN_S = 10.0
READY_TIMEOUT_S = 120.0
IN_FLIGHT_MAX = 100  # REST requests one trader has open at once
CONNECT_TIMEOUT_S = 120.0
DRAIN_S = 3.0
PRICE_E3 = 512_000
# The bench's own users live in a schema it drops afterwards.
PASSWORD = "bench password for the screen"  # noqa: S105


def _instrument() -> dict[str, Any]:
    return {
        "security": 700,
        "name": "TENCENT",
        "currency": "HKD",
        "board_lot": 100,
        "spread_table": "01",
        "prev_close_e3": PRICE_E3,
        "enabled": True,
        "ts_ns": time.time_ns(),
    }


def _account(name: str, member: str) -> dict[str, Any]:
    return {
        "account": name,
        "member": member,
        "credit_line_cents": 10**13,
        "cut_loss_cents": -(10**15),
        "max_order_notional_cents": 10**13,
        "allow_short": True,
        "stp": "CANCEL_RESTING",
        "enabled": True,
        "ts_ns": time.time_ns(),
    }


def _publish_reference(current: Settings) -> None:
    from confluent_kafka import Producer

    producer = Producer(profiles.producer(current))
    producer.produce(
        current.topic("reference.instruments"),
        registry().encode("Instrument", _instrument()),
        b"700",
    )
    for name, member in (("BENCH1", "M1"), ("BENCH2", "M2")):
        producer.produce(
            current.topic("reference.accounts"),
            registry().encode("Account", _account(name, member)),
            name.encode(),
        )
    if producer.flush(30):
        raise SampanError("reference records not delivered within 30 s")


class DepthSource(threading.Thread):
    """Writes a changing HKEX depth snapshot of 700 at `rate` a second until stopped."""

    def __init__(self, current: Settings, rate: int) -> None:
        super().__init__(daemon=True)
        from confluent_kafka import Producer

        self.current = current
        self.rate = rate
        self.sent = 0
        self.stop = threading.Event()
        self.producer = Producer(profiles.producer(current, linger_ms=0))

    def run(self) -> None:
        topic = self.current.topic("md.depth")
        start = time.monotonic()
        while not self.stop.is_set():
            due = start + self.sent / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.sent += 1
            qty = 100 * (1 + self.sent % 50)
            record = {
                "venue": "HKEX",
                "security": 700,
                "bids": [
                    {"price_e3": PRICE_E3 - 500 * i, "qty": qty, "orders": 1} for i in range(1, 6)
                ],
                "asks": [
                    {"price_e3": PRICE_E3 + 500 * i, "qty": qty, "orders": 1} for i in range(1, 6)
                ],
                "seq": self.sent,
                "ts_ns": time.time_ns(),
            }
            self.producer.produce(topic, registry().encode("DepthSnapshot", record), b"HKEX:700")
            self.producer.poll(0)
        self.producer.flush(10)


def _login(url: str, username: str) -> str:
    import httpx

    response = httpx.post(
        url + "/api/login", json={"username": username, "password": PASSWORD}, timeout=30
    )
    if response.status_code != 200:
        raise SampanError(f"bench login failed: {response.status_code} {response.text}")
    token: str = response.json()["token"]
    return token


def _health(url: str) -> dict[str, Any]:
    import httpx

    result: dict[str, Any] = httpx.get(url + "/api/health", timeout=10).json()
    return result


@dataclass
class Run:
    """What the clients share during one run."""

    stop: asyncio.Event = field(default_factory=asyncio.Event)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    measuring: asyncio.Event = field(default_factory=asyncio.Event)
    latencies_ms: list[float] = field(default_factory=list)
    confirms_ms: list[float] = field(default_factory=list)
    closed: int = 0
    orders_sent: int = 0
    orders: Run | None = None


async def _clients(ws_url: str, count: int, run: Run) -> None:
    import websockets

    async def one() -> None:
        try:
            async with websockets.connect(
                ws_url, open_timeout=CONNECT_TIMEOUT_S, max_size=None
            ) as ws:
                await ws.send('{"op":"subscribe","channel":"depth","security":700}')
                ready.append(1)
                while not run.stop.is_set():
                    try:
                        raw = await asyncio.wait_for(ws.recv(), 0.5)
                    except TimeoutError:
                        continue
                    received_ns = time.time_ns()
                    message = json.loads(raw)
                    if message.get("type") == "depth" and run.measuring.is_set():
                        run.latencies_ms.append((received_ns - message["ts_ns"]) / 1e6)
        except websockets.ConnectionClosed:
            run.closed += 1

    ready: list[int] = []
    tasks = [asyncio.create_task(one()) for _ in range(count)]
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    while len(ready) < count and time.monotonic() < deadline and not run.stop.is_set():
        await asyncio.sleep(0.1)
    if len(ready) < count:
        raise SampanError(f"only {len(ready)} of {count} WebSocket clients connected")
    run.connected.set()
    await asyncio.gather(*tasks)


async def _trader(url: str, token: str, account: str, side: str, rate: float, run: Run) -> None:
    import httpx
    import websockets

    sent: dict[str, float] = {}
    async with websockets.connect(
        f"{url.replace('http', 'ws')}/ws?token={token}", max_size=None
    ) as ws:
        await ws.send(json.dumps({"op": "subscribe", "channel": "account", "account": account}))

        async def listen() -> None:
            while True:
                message = json.loads(await ws.recv())
                if message.get("type") == "exec":
                    began = sent.pop(message["cl_ord_id"], None)
                    if began is not None:
                        run.confirms_ms.append((time.perf_counter() - began) * 1e3)

        listener = asyncio.create_task(listen())
        slots = asyncio.Semaphore(IN_FLIGHT_MAX)
        posts: set[asyncio.Task[None]] = set()

        async def post(body: dict[str, Any]) -> None:
            try:
                response = await client.post("/api/orders", json=body)
            finally:
                slots.release()
            if response.status_code != 202:
                raise SampanError(f"order refused: {response.status_code} {response.text}")

        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as client:
            n = 0
            start = time.monotonic()
            while not run.stop.is_set():
                due = start + n / rate
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                n += 1
                cl_ord_id = f"{account}-{uuid.uuid4().hex[:12]}"
                body = {
                    "account": account,
                    "security": 700,
                    "side": side,
                    "qty": 100,
                    "price_e3": PRICE_E3,
                    "cl_ord_id": cl_ord_id,
                }
                sent[cl_ord_id] = time.perf_counter()
                run.orders_sent += 1
                # Orders go out at the offered rate whatever the answers' latency: each request
                # is its own task, at most IN_FLIGHT_MAX at once.
                await slots.acquire()
                posts.add(asyncio.create_task(post(body)))
            await asyncio.wait_for(asyncio.gather(*posts), 60)
        await asyncio.sleep(DRAIN_S)
        listener.cancel()


async def _load(
    url: str, tokens: dict[str, str], clients: int, run_s: float, on_connected: Callable[[], None]
) -> Run:
    run = Run()
    ws_url = f"{url.replace('http', 'ws')}/ws?token={tokens['alice']}"
    listening = asyncio.create_task(_clients(ws_url, clients, run))
    while not run.connected.is_set():
        if listening.done():
            listening.result()
        await asyncio.sleep(0.1)
    on_connected()
    run.measuring.set()
    orders = Run(measuring=run.measuring, confirms_ms=run.confirms_ms)
    run.orders = orders
    rate = ORDER_RATE / 2
    traders = [
        asyncio.create_task(_trader(url, tokens["alice"], "BENCH1", "BUY", rate, orders)),
        asyncio.create_task(_trader(url, tokens["bob"], "BENCH2", "SELL", rate, orders)),
    ]
    await asyncio.sleep(run_s)
    orders.stop.set()
    await asyncio.wait_for(asyncio.gather(*traders), 60)
    run.stop.set()
    await asyncio.wait_for(listening, 30)
    return run


def run_ui_bench(current: Settings, clients: int, run_s: float = RUN_S) -> dict[str, Any]:
    from sampan.tools.venue import (
        ProcessSpec,
        Supervisor,
        VenueOptions,
        VenuePorts,
        free_tcp_ports,
        sampan_command,
        venue_specs,
    )
    from sampan.ui_bridge.auth import Role
    from sampan.ui_bridge.store import Store, drop_schema, migrate

    prefix = f"benchui{uuid.uuid4().hex[:6]}."
    bench = replace(current, topic_prefix=prefix)
    schema = f"ui_bench{uuid.uuid4().hex[:8]}"
    topics_cli.apply(bench)
    migrate(bench, schema)
    store = Store(bench, schema)
    store.add_user("alice", PASSWORD, Role.TRADER, "M1")
    store.add_user("bob", PASSWORD, Role.TRADER, "M2")
    _publish_reference(bench)
    state = Path(tempfile.mkdtemp(prefix="sampan-bench-ui-"))
    env = {"SAMPAN_TOPIC_PREFIX": prefix, "SAMPAN_UI_SCHEMA": schema}
    [port] = free_tcp_ports(1)
    url = f"http://127.0.0.1:{port}"
    # A loaded machine starts processes slowly; the bench waits for them rather than fail.
    specs = [
        replace(s, ready_timeout_s=max(s.ready_timeout_s, READY_TIMEOUT_S))
        for s in venue_specs(
            VenuePorts.free(), VenueOptions(state, group_suffix=prefix[:-1], with_omd=False)
        )
        if s.name in ("hkex-sim", "matcher", "router")
    ]
    specs.append(
        ProcessSpec(
            "ui", sampan_command("ui", "--port", str(port)), ready_port=port, ready_timeout_s=120.0
        )
    )
    source = DepthSource(bench, DEPTH_RATE)

    try:
        with Supervisor(state / "logs", env={**os.environ, **env}) as supervisor:
            supervisor.start(specs)
            tokens = {name: _login(url, name) for name in ("alice", "bob")}
            result = asyncio.run(_load(url, tokens, clients, run_s, source.start))
            source.stop.set()
            source.join(15)
            health = _health(url)
    finally:
        source.stop.set()
        drop_schema(bench, schema)
        shutil.rmtree(state, ignore_errors=True)
    latencies = sorted(result.latencies_ms)
    confirms = sorted(result.confirms_ms)
    if not latencies or not confirms:
        raise SampanError("the bench measured nothing: no depth or no execution report arrived")
    return {
        "clients": clients,
        "depth_per_s": DEPTH_RATE,
        "orders_per_s": ORDER_RATE,
        "run_s": run_s,
        "depth_sent": source.sent,
        "depth_received": len(latencies),
        "fanout_latency_ms_p50": round(percentile(latencies, 0.50), 3),
        "fanout_latency_ms_p99": round(percentile(latencies, 0.99), 3),
        "coalesced": health["coalesced"],
        "disconnected": health["disconnected"],
        "clients_closed_seen": result.closed,
        "orders_sent": result.orders.orders_sent if result.orders else 0,
        "orders_confirmed": len(confirms),
        "order_confirm_ms_p50": round(percentile(confirms, 0.50), 3),
        "order_confirm_ms_p99": round(percentile(confirms, 0.99), 3),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    clients = getattr(args, "clients", 0) or args.records or CLIENTS_DEFAULT
    return run_ui_bench(settings(), clients)
