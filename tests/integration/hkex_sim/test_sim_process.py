"""The `hkex-sim` process: order entry and market data composed on one market; FIX orders
trade against the synthetic liquidity, and the admin port answers."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sampan import credentials
from sampan.fix.codec import FixMessage
from sampan.fix.messages import NewOrderSingle, OrdType, Side, TimeInForce
from sampan.fix.session import Session
from sampan.fix.session_types import SessionConfig, SessionRole
from sampan.fix.store import MemorySessionStore
from sampan.fix.transport import SessionConnection, open_initiator
from sampan.hkex_sim.ocg_admin import send_admin

pytestmark = pytest.mark.integration


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class Client:
    logons: int = 0
    reports: list[FixMessage] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def on_logon(self, conn: SessionConnection) -> None:
        self.logons += 1
        self.changed.set()

    def on_message(self, conn: SessionConnection, msg: FixMessage) -> None:
        self.reports.append(msg)
        self.changed.set()

    def on_session_ended(self, conn: SessionConnection, reason: str, was_logged_on: bool) -> None:
        self.changed.set()


async def until(client: Client, predicate: object, what: str) -> None:
    try:
        async with asyncio.timeout(15):
            while not predicate():  # type: ignore[operator]
                client.changed.clear()
                await client.changed.wait()
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def connect(port: int, client: Client) -> SessionConnection:
    session = Session(
        SessionConfig(
            SessionRole.INITIATOR,
            "SAMPAN",
            "HKEX",
            heartbeat_interval_s=1,
            password=credentials.session_password("SAMPAN"),
        ),
        MemorySessionStore(),
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            conn = await open_initiator("127.0.0.1", port, session, client)
            break
        except OSError:
            assert time.monotonic() < deadline, "the simulator never listened"
            await asyncio.sleep(0.2)
    asyncio.get_running_loop().create_task(conn.run())
    await until(client, lambda: client.logons == 1, "logon")
    return conn


async def scenario(ports: list[int]) -> None:
    order_port, _dc, admin_port = ports[:3]
    client = Client()
    conn = await connect(order_port, client)
    # 00700 trades around HK$512 with the makers quoting; an IOC bid well inside the offers'
    # reach gets at least an answer, and a marketable one trades.
    order = NewOrderSingle(
        "1", "700", Side.BUY, OrdType.LIMIT, 100, 400_000, TimeInForce.DAY, time.time_ns()
    )
    conn.send(order.to_fix())
    await until(client, lambda: any(m.get(11) == "1" for m in client.reports), "an answer")
    assert client.reports[0].get(150) == "0", client.reports[0]
    status = await send_admin("127.0.0.1", admin_port, "STATUS")
    assert status[0] == "OK 1" and "open_orders=1" in status[1], status
    conn.logout("done")


def test_hkex_sim_process_serves_order_entry_next_to_market_data(tmp_path: Path) -> None:
    ports = free_ports(7)
    argv = [sys.executable, "-m", "sampan.hkex_sim.sim_cli", "hkex-sim"]
    argv += ["--ocg-port", str(ports[0]), "--ocg-dropcopy-port", str(ports[1])]
    argv += ["--ocg-admin-port", str(ports[2]), "--ocg-state-dir", str(tmp_path)]
    argv += ["--omd-port-a", str(ports[3]), "--omd-port-b", str(ports[4])]
    argv += ["--omd-refresh-port", str(ports[5]), "--omd-rts-port", str(ports[6])]
    proc = subprocess.Popen(argv, env=dict(os.environ))
    try:
        asyncio.run(scenario(ports))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(timeout=20) == 0
        finally:
            proc.kill()
