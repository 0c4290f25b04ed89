"""A real initiator and acceptor over TCP on 127.0.0.1, through `transport`."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from fix_harness import make_session, order, report

from sampan.fix.codec import FixMessage
from sampan.fix.session import Session
from sampan.fix.session_types import SessionRole, SessionState
from sampan.fix.transport import (
    Application,
    SessionConnection,
    comp_ids,
    open_initiator,
    serve_acceptor,
)


@dataclass
class Recorder:
    logons: int = 0
    messages: list[FixMessage] = field(default_factory=list)
    ended: list[tuple[str, bool]] = field(default_factory=list)
    echo: bool = False
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def on_logon(self, conn: SessionConnection) -> None:
        self.logons += 1
        self.changed.set()

    def on_message(self, conn: SessionConnection, msg: FixMessage) -> None:
        self.messages.append(msg)
        if self.echo:  # the simulator acknowledges every order with a report
            conn.send(report(int(msg.get(11) or "0")))
        self.changed.set()

    def on_session_ended(self, conn: SessionConnection, reason: str, was_logged_on: bool) -> None:
        self.ended.append((reason, was_logged_on))
        self.changed.set()


async def _until(rec: Recorder, predicate: object, timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():  # type: ignore[operator]
            rec.changed.clear()
            await rec.changed.wait()


async def _scenario() -> None:
    acceptor = make_session(SessionRole.ACCEPTOR, heartbeat_interval_s_min=1)
    acceptor_app = Recorder(echo=True)

    def resolve(logon: FixMessage) -> tuple[Session, Application] | None:
        return (acceptor, acceptor_app) if comp_ids(logon) == ("SAMPAN", "HKEX") else None

    server = await serve_acceptor("127.0.0.1", 0, resolve)
    port = server.sockets[0].getsockname()[1]
    initiator = make_session(
        SessionRole.INITIATOR, heartbeat_interval_s=1, heartbeat_interval_s_min=1
    )
    app = Recorder()
    try:
        conn = await open_initiator("127.0.0.1", port, initiator, app)
        task = asyncio.create_task(conn.run())
        await _until(app, lambda: app.logons == 1)
        for n in range(1, 4):
            conn.send(order(n))
        await _until(app, lambda: len(app.messages) == 3)
        assert [m.get(17) for m in app.messages] == ["E1", "E2", "E3"]
        assert [m.get(11) for m in acceptor_app.messages] == ["1", "2", "3"]

        # A stranger is refused; a second connection for a connected session too.
        for _ in range(2):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"garbage\n")
            await writer.drain()
            writer.write_eof()
            assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()

        # Heartbeats at 1 s keep an idle session alive past the TestRequest threshold.
        await asyncio.sleep(3.5)
        assert initiator.state is SessionState.ACTIVE

        conn.logout("end of day")
        await asyncio.wait_for(task, 5)
        await _until(acceptor_app, lambda: bool(acceptor_app.ended))
        assert app.ended[-1][1] and acceptor_app.ended[-1] == ("logout: end of day", True)
        assert initiator.state is acceptor.state is SessionState.DISCONNECTED
    finally:
        server.close()
        await server.wait_closed()


def test_initiator_and_acceptor_over_loopback() -> None:
    started = time.monotonic()
    asyncio.run(_scenario())
    assert time.monotonic() - started < 10
