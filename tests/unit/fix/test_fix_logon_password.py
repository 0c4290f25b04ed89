"""OCG-C's Logon password: the acceptor checks Password (554) as OCG-C does."""

from __future__ import annotations

from fix_harness import Pair

from sampan.fix.session import Session
from sampan.fix.session_types import (
    LogonCompleted,
    SessionConfig,
    SessionEnded,
    SessionRole,
    SessionState,
)
from sampan.fix.store import MemorySessionStore


def _pair(client_password: str | None, gateway_password: str | None) -> Pair:
    client = SessionConfig(SessionRole.INITIATOR, "SAMPAN", "HKEX", password=client_password)
    gateway = SessionConfig(SessionRole.ACCEPTOR, "HKEX", "SAMPAN", password=gateway_password)
    return Pair(Session(client, MemorySessionStore()), Session(gateway, MemorySessionStore()))


def test_the_right_password_logs_on_and_the_answer_says_active() -> None:
    pair = _pair("s3cret", "s3cret")
    pair.logon()
    logon, ack = pair.a.sent_raw[0], pair.b.sent_raw[0]
    assert logon.get(554) == "s3cret"
    assert (ack.msg_type, ack.get(1409), ack.get(554)) == ("A", "0", None)
    assert pair.b.session.state is SessionState.ACTIVE
    assert [type(e) for e in pair.b.events] == [LogonCompleted]


def test_a_wrong_or_missing_password_is_refused_with_session_status_5() -> None:
    for given in ("guess", None):
        pair = _pair(given, "s3cret")
        pair.connect()
        pair.pump()
        answer = pair.b.sent_raw[0]
        assert (answer.msg_type, answer.get(1409)) == ("5", "5"), given
        assert answer.get(58) == "invalid username or password"
        assert pair.b.session.state is SessionState.DISCONNECTED
        ended = [e for e in pair.b.events if isinstance(e, SessionEnded)]
        assert ended and "invalid username or password" in ended[0].reason
        assert not [e for e in pair.b.events if isinstance(e, LogonCompleted)]
        assert pair.a.session.state is SessionState.DISCONNECTED


def test_the_password_is_never_printed() -> None:
    config = SessionConfig(SessionRole.INITIATOR, "SAMPAN", "HKEX", password="s3cret")
    assert "s3cret" not in repr(config)


def test_no_password_configured_checks_none() -> None:
    pair = _pair(None, None)
    pair.logon()
    assert pair.b.session.state is SessionState.ACTIVE
    assert pair.b.sent_raw[0].get(1409) is None
