"""Store: sequence numbers per session per day survive reopening; the message log is bounded."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from fix_harness import T0, Pair, make_session, report

from sampan.fix.session_types import SessionRole, SessionState
from sampan.fix.store import FileSessionStore, session_directory

DAY = date(2026, 1, 2)


def _open(root: Path, day: date = DAY, **kw: int) -> FileSessionStore:
    return FileSessionStore(root, "HKEX-SAMPAN", day, durable=False, **kw)


def test_seqnums_and_messages_survive_reopen(tmp_path: Path) -> None:
    with _open(tmp_path) as store:
        assert (store.next_sender_seq_num, store.next_target_seq_num) == (1, 1)
        store.save_sent(1, b"one")
        store.set_next_sender_seq_num(2)
        store.set_next_target_seq_num(7)
    with _open(tmp_path) as store:
        assert (store.next_sender_seq_num, store.next_target_seq_num) == (2, 7)
        assert store.load_sent(1, 5) == {1: b"one"}


def test_new_trading_day_starts_at_one(tmp_path: Path) -> None:
    with _open(tmp_path) as store:
        store.set_next_sender_seq_num(50)
    with _open(tmp_path, date(2026, 1, 5)) as store:
        assert store.next_sender_seq_num == 1


def test_durable_mode_writes_the_same_files(tmp_path: Path) -> None:
    with FileSessionStore(tmp_path, "X", DAY, durable=True) as store:
        store.save_sent(1, b"m")
        store.set_next_sender_seq_num(2)
    with FileSessionStore(tmp_path, "X", DAY, durable=True) as store:
        assert store.next_sender_seq_num == 2 and store.load_sent(1, 1) == {1: b"m"}


def test_torn_log_tail_is_discarded(tmp_path: Path) -> None:
    with _open(tmp_path) as store:
        store.save_sent(1, b"one")
        store.save_sent(2, b"two")
    log = session_directory(tmp_path, "HKEX-SAMPAN", DAY) / "messages.log"
    log.write_bytes(log.read_bytes() + b"3 100\npartial")
    with _open(tmp_path) as store:
        assert store.load_sent(1, 9) == {1: b"one", 2: b"two"}
        # The seqnum file was never written, but the log proves 1 and 2 went out.
        assert store.next_sender_seq_num == 3
        store.save_sent(3, b"three")
    with _open(tmp_path) as store:
        assert store.load_sent(3, 3) == {3: b"three"}


def test_message_store_is_bounded_and_compacts(tmp_path: Path) -> None:
    with _open(tmp_path, messages_max=3) as store:
        for n in range(1, 11):
            store.save_sent(n, b"m%d" % n)
        assert sorted(store.load_sent(1, 100)) == [8, 9, 10]
    log = session_directory(tmp_path, "HKEX-SAMPAN", DAY) / "messages.log"
    assert log.read_bytes().count(b"\n") <= 2 * 2 * 3  # header + body line per record
    with _open(tmp_path, messages_max=3) as store:
        assert sorted(store.load_sent(1, 100)) == [8, 9, 10]


def test_session_id_must_be_a_safe_directory_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        session_directory(tmp_path, "../etc", DAY)


def test_session_resumes_numbers_after_restart(tmp_path: Path) -> None:
    """A restarted acceptor keeps its numbers, and replays what the client missed."""
    store = _open(tmp_path)
    pair = Pair(b=make_session(SessionRole.ACCEPTOR, store))
    pair.logon()
    pair.send("b", report(1))
    pair.pump()
    pair.drop = lambda m: True
    pair.send("b", report(2))  # seq 3, lost when the process dies
    pair.cut("crash")
    store.close()

    reopened = _open(tmp_path)
    restarted = make_session(SessionRole.ACCEPTOR, reopened)
    assert restarted.store.next_sender_seq_num == 4
    pair.b.session = restarted
    pair.drop = lambda m: False
    pair.connect()
    pair.pump()
    assert pair.a.session.state is SessionState.ACTIVE
    assert [m.get(17) for m in pair.a.delivered] == ["E1", "E2"]
    assert pair.b.sent_raw[-2].get(34) == "4"  # the Logon ack continues the numbering
    assert pair.b.sent_raw[-1].get(43) == "Y" and pair.b.sent_raw[-1].get(34) == "3"
    assert pair.now == T0
    reopened.close()
