"""The gateway over loopback TCP: drop copy mirrors reports, lost reports heal by resend, a cut
triggers cancel-on-disconnect, the replay after reconnect delivers what was missed."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sampan.fix.codec import FixMessage
from sampan.fix.messages import NewOrderSingle, OrdType, Side, TimeInForce
from sampan.fix.session import Session
from sampan.fix.session_types import SessionConfig, SessionRejectReason, SessionRole
from sampan.fix.store import MemorySessionStore
from sampan.fix.transport import SessionConnection, open_initiator
from sampan.hkex_sim.market import ListedSecurity, Market
from sampan.hkex_sim.ocg_admin import send_admin, serve_admin
from sampan.hkex_sim.ocg_gateway import FirmConfig, Gateway, GatewayConfig

HSBC = ListedSecurity(5, "HSBC HOLDINGS", 400, 98_550)


@dataclass
class Client:
    logons: int = 0
    messages: list[FixMessage] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def on_logon(self, conn: SessionConnection) -> None:
        self.logons += 1
        self.changed.set()

    def on_message(self, conn: SessionConnection, msg: FixMessage) -> None:
        self.messages.append(msg)
        self.changed.set()

    def on_session_ended(self, conn: SessionConnection, reason: str, was_logged_on: bool) -> None:
        self.ended.append(reason)
        self.changed.set()

    async def until(self, predicate: object, what: str, timeout_s: float = 5.0) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                while not predicate():  # type: ignore[operator]
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}") from None

    def exec_ids(self) -> list[str | None]:
        return [m.get(17) for m in self.messages if m.msg_type == "8"]


def _session(comp_id: str) -> Session:
    config = SessionConfig(
        SessionRole.INITIATOR, comp_id, "HKEX", heartbeat_interval_s=1, heartbeat_interval_s_min=1
    )
    return Session(config, MemorySessionStore())


def _order(n: int, price_e3: int = 98_500) -> FixMessage:
    return NewOrderSingle(
        str(n), "5", Side.BUY, OrdType.LIMIT, 400, price_e3, TimeInForce.DAY, time.time_ns()
    ).to_fix()


async def _connect(
    gateway: Gateway, port: int, session: Session, app: Client
) -> tuple[SessionConnection, asyncio.Task[None]]:
    conn = await open_initiator("127.0.0.1", port, session, app)
    task = asyncio.create_task(conn.run())
    logons = app.logons
    await app.until(lambda: app.logons > logons, "logon")
    return conn, task


async def _scenario(state_dir: Path) -> None:
    firm = FirmConfig("SAMPAN", "SAMPANDC", throttle_per_s=0, cancel_on_disconnect=True)
    gateway = Gateway(GatewayConfig((firm,), state_dir=state_dir), Market([HSBC]))
    await gateway.start()
    admin = await serve_admin(gateway, "127.0.0.1", 0)
    admin_port = admin.sockets[0].getsockname()[1]
    orders, drop = Client(), Client()
    order_session, drop_session = _session("SAMPAN"), _session("SAMPANDC")
    try:
        conn, task = await _connect(gateway, gateway.order_port, order_session, orders)
        dconn, dtask = await _connect(gateway, gateway.drop_copy_port, drop_session, drop)

        conn.send(_order(1))
        await drop.until(lambda: len(drop.exec_ids()) == 1, "drop copy of the first report")
        await orders.until(lambda: len(orders.exec_ids()) == 1, "first report")
        assert orders.exec_ids() == drop.exec_ids()

        # Lose one report on the order session: drop copy has it at once, the order session
        # gets it back by resend when the next message reveals the gap.
        assert await send_admin("127.0.0.1", admin_port, "LOSE SAMPAN 1") == ["OK lose SAMPAN 1"]
        conn.send(_order(2))
        await drop.until(lambda: len(drop.exec_ids()) == 2, "drop copy of the lost report")
        conn.send(_order(3))
        await orders.until(lambda: len(orders.exec_ids()) == 3, "resent report")
        await drop.until(lambda: len(drop.exec_ids()) == 3, "third drop copy")
        assert orders.exec_ids() == drop.exec_ids()
        assert orders.messages[1].poss_dup and orders.messages[1].get(11) == "2"

        # A drop-copy session is receive-only.
        dconn.send(_order(99))
        await drop.until(lambda: drop.messages[-1].msg_type == "j", "business message reject")

        status = await send_admin("127.0.0.1", admin_port, "STATUS")
        assert status[0] == "OK 1" and "open_orders=3" in status[1]
        assert (await send_admin("127.0.0.1", admin_port, "LOSE NOBODY 1"))[0].startswith("ERR")

        # Cut the order session: cancel-on-disconnect cancels the three orders; the Canceled
        # reports reach the drop copy now and the order session after it logs on again.
        assert await send_admin("127.0.0.1", admin_port, "CUT SAMPAN") == ["OK cut SAMPAN"]
        await orders.until(lambda: bool(orders.ended), "the cut")
        await asyncio.wait_for(task, 5)
        await drop.until(lambda: len(drop.exec_ids()) == 6, "drop copies of the cancels")
        assert [m.get(150) for m in drop.messages if m.msg_type == "8"][3:] == ["4"] * 3
        conn, task = await _connect(gateway, gateway.order_port, order_session, orders)
        await orders.until(lambda: len(orders.exec_ids()) == 6, "cancels replayed on logon")
        assert orders.exec_ids() == drop.exec_ids()
        assert len(set(drop.exec_ids())) == 6

        conn.logout("done")
        dconn.logout("done")
        await asyncio.wait_for(asyncio.gather(task, dtask), 5)
    finally:
        admin.close()
        await admin.wait_closed()
        await gateway.close()

    # Sequence numbers persisted: a new gateway on the same state dir resumes them, and
    # hands out ids under a new boot number, so nothing repeats within the day.
    again = Gateway(GatewayConfig((firm,), state_dir=state_dir), Market([HSBC]))
    assert again.ids.exec_id() != drop.exec_ids()[0]
    assert again.ids.exec_id().startswith("2")
    line = again.status()[0]
    assert "out=1 " not in line
    await again.close()


def test_gateway_drop_copy_lost_reports_cut_and_cancel_on_disconnect(tmp_path: Path) -> None:
    started = time.monotonic()
    asyncio.run(_scenario(tmp_path))
    assert time.monotonic() - started < 20


async def _reject_scenario(state_dir: Path) -> None:
    firm = FirmConfig("SAMPAN", "SAMPANDC", throttle_per_s=0)
    gateway = Gateway(GatewayConfig((firm,), state_dir=state_dir), Market([HSBC]))
    await gateway.start()
    admin = await serve_admin(gateway, "127.0.0.1", 0)
    admin_port = admin.sockets[0].getsockname()[1]
    app = Client()
    session = _session("SAMPAN")
    conn, task = await _connect(gateway, gateway.order_port, session, app)
    try:
        assert await send_admin("127.0.0.1", admin_port, "REJECT SAMPAN 1") == [
            "OK reject SAMPAN 1"
        ]
        conn.send(_order(1))
        order_seq = session.store.next_sender_seq_num - 1
        await app.until(lambda: any(m.msg_type == "3" for m in app.messages), "a Reject")
        (reject,) = [m for m in app.messages if m.msg_type == "3"]
        assert (reject.get(45), reject.get(372)) == (str(order_seq), "D")
        # Not acted on, so its ClOrdID is still free: the same order is accepted now.
        conn.send(_order(1))
        await app.until(app.exec_ids, "the order's report")
        # The gateway logs a Reject it receives from the member.
        conn.reject(reject, SessionRejectReason.OTHER, "member refuses this")
        await asyncio.sleep(0.3)
    finally:
        conn.logout("done")
        await asyncio.wait({task}, timeout=3)
        admin.close()
        await gateway.close()


def test_gateway_refuses_a_message_with_a_session_reject_and_logs_one_received(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    asyncio.run(_reject_scenario(tmp_path))
    assert any("sent Reject" in r.message and "member refuses" in r.message for r in caplog.records)
