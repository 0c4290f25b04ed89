"""Group commit of outbound FIX messages: one fsync for every message ready at that moment,
and no byte on the wire before the message in it is durable."""

from __future__ import annotations

import asyncio
import re
from datetime import date
from pathlib import Path
from typing import Any

from fix_harness import make_session, order
from test_fix_transport import Recorder, _until

from sampan.fix.codec import FixMessage
from sampan.fix.session import Session
from sampan.fix.session_types import SessionRole
from sampan.fix.store import FileSessionStore
from sampan.fix.transport import Application, comp_ids, open_initiator, serve_acceptor

DAY = date(2026, 1, 2)
ORDERS = 50
_SEQ = re.compile(rb"\x0134=(\d+)\x01")


def _group(root: Path) -> FileSessionStore:
    return FileSessionStore(root, "SAMPAN", DAY, durable=True, group_commit=True)


def _reopened(root: Path) -> tuple[int, dict[int, bytes]]:
    """What a process that starts now finds (the one that wrote may still hold the files)."""
    with _group(root) as store:
        return store.next_sender_seq_num, store.load_sent(1, 100)


def test_one_sync_covers_every_message_written_before_it(tmp_path: Path) -> None:
    store = _group(tmp_path)
    for seq in range(1, 6):
        store.save_sent(seq, b"m%d" % seq)
        store.set_next_sender_seq_num(seq + 1)
    assert store.needs_sync and store.syncs == 0
    store.sync()
    assert not store.needs_sync and store.syncs == 1
    store.sync()
    assert store.syncs == 1, "nothing new, no fsync"
    # The process dies here (no close): what was written is all there when it comes back.
    assert _reopened(tmp_path) == (6, {seq: b"m%d" % seq for seq in range(1, 6)})
    store.close()


def test_numbers_the_log_does_not_imply_are_written_at_sync(tmp_path: Path) -> None:
    store = _group(tmp_path)
    store.save_sent(1, b"order")
    store.set_next_sender_seq_num(2)
    store.set_next_sender_seq_num(9)  # heartbeats: numbers used by unstored messages
    store.sync()
    assert _reopened(tmp_path)[0] == 9
    # A reset to 1 (the exchange lost the session): the file's 9 must not win on reopening.
    store.set_next_sender_seq_num(1)
    store.save_sent(1, b"first of the new session")
    store.set_next_sender_seq_num(2)
    store.sync()
    assert _reopened(tmp_path)[0] == 2
    store.close()


class _WireCheck:
    """The initiator's writer: every write is checked against what the store has synced."""

    def __init__(self, writer: Any, store: FileSessionStore) -> None:
        self._writer = writer
        self._store = store
        self.writes: list[list[int]] = []

    def write(self, data: bytes) -> None:
        seqs = [int(n) for n in _SEQ.findall(data)]
        stored = [s for s in seqs if self._store.load_sent(s, s)]
        assert not stored or not self._store.needs_sync, (
            f"messages {stored} written to the peer before the store synced them"
        )
        self.writes.append(seqs)
        self._writer.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._writer, name)


async def _scenario(root: Path) -> None:
    acceptor = make_session(SessionRole.ACCEPTOR, heartbeat_interval_s_min=1)
    acceptor_app = Recorder()

    def resolve(logon: FixMessage) -> tuple[Session, Application] | None:
        return (acceptor, acceptor_app) if comp_ids(logon) == ("SAMPAN", "HKEX") else None

    server = await serve_acceptor("127.0.0.1", 0, resolve)
    port = server.sockets[0].getsockname()[1]
    store = _group(root)
    initiator = make_session(SessionRole.INITIATOR, store, heartbeat_interval_s_min=1)
    app = Recorder()
    try:
        conn = await open_initiator("127.0.0.1", port, initiator, app)
        wire = _WireCheck(conn._writer, store)
        conn._writer = wire  # type: ignore[assignment]
        task = asyncio.create_task(conn.run())
        await _until(app, lambda: app.logons == 1)
        syncs_before, writes_before = store.syncs, len(wire.writes)
        for n in range(1, ORDERS + 1):  # all ready in one step of the loop
            conn.send(order(n))
        assert len(wire.writes) == writes_before, "written before the step ended"
        await _until(acceptor_app, lambda: len(acceptor_app.messages) == ORDERS)
        assert store.syncs == syncs_before + 1, "one fsync for the whole group"
        assert len(wire.writes[writes_before]) == ORDERS, "the group goes out in one write"
        assert [m.get(11) for m in acceptor_app.messages] == [str(n) for n in range(1, 51)]
        conn.logout("done")
        await asyncio.wait_for(task, 5)
    finally:
        server.close()
        await server.wait_closed()
        store.close()


def test_no_message_reaches_the_peer_before_it_is_durable(tmp_path: Path) -> None:
    asyncio.run(_scenario(tmp_path))
