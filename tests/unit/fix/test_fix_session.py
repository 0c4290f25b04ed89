"""Session state machine: logon and 789 handling, recovery, timers, rejects, illegal use."""

from __future__ import annotations

import pytest
from fix_harness import T0, Pair, S, make_session, order, report

from sampan.fix.codec import DecodeError, DecodeErrorKind, FixMessage
from sampan.fix.session_types import (
    LogonCompleted,
    SessionEnded,
    SessionRole,
    SessionState,
    SessionStateError,
)
from sampan.fix.store import MemorySessionStore


def _types(msgs: list[FixMessage]) -> list[str]:
    return [m.msg_type for m in msgs]


def _logon(seq: int, next_expected: int, *, appl_ver: str = "9", hb: str = "20") -> FixMessage:
    return FixMessage.of(
        "A",
        (49, "SAMPAN"),
        (56, "HKEX"),
        (34, str(seq)),
        (52, "20260102-03:04:05.000"),
        (98, "0"),
        (108, hb),
        (789, str(next_expected)),
        (1137, appl_ver),
    )


def _from_client(msg_type: str, seq: int, *fields: tuple[int, str]) -> FixMessage:
    header = ((49, "SAMPAN"), (56, "HKEX"), (34, str(seq)), (52, "20260102-03:04:05.000"))
    return FixMessage.of(msg_type, *header, *fields)


def _acceptor(next_sender: int = 1, next_target: int = 1) -> tuple[MemorySessionStore, object]:
    store = MemorySessionStore()
    store.set_next_sender_seq_num(next_sender)
    store.set_next_target_seq_num(next_target)
    session = make_session(SessionRole.ACCEPTOR, store)
    session.connect(T0)
    return store, session


# ---- logon and NextExpectedMsgSeqNum (789) ----------------------------------------------


def test_logon_handshake_fresh_day() -> None:
    pair = Pair()
    pair.logon()
    logon, ack = pair.a.sent_raw[0], pair.b.sent_raw[0]
    assert logon.msg_type == ack.msg_type == "A"
    assert (logon.get(34), logon.get(789), logon.get(108), logon.get(1137)) == ("1", "1", "20", "9")
    assert (ack.get(34), ack.get(789), ack.get(1137)) == ("1", "2", "9")
    for side in (pair.a, pair.b):
        assert [type(e) for e in side.events] == [LogonCompleted]
        assert side.session.store.next_sender_seq_num == 2
        assert side.session.store.next_target_seq_num == 2


def test_acceptor_logs_out_when_789_above_next_outgoing() -> None:
    store = MemorySessionStore()
    store.set_next_sender_seq_num(5)
    acceptor = make_session(SessionRole.ACCEPTOR, store)
    acceptor.connect(T0)
    out = acceptor.receive(_logon(1, 9), T0)
    (logout,) = out.outbound
    assert logout.msg_type == "5" and "NextExpectedMsgSeqNum 9" in (logout.get(58) or "")
    assert out.disconnect and acceptor.state is SessionState.DISCONNECTED
    assert out.events[-1] == SessionEnded(logout.get(58) or "", was_logged_on=False)
    assert store.next_sender_seq_num == 6  # the Logout consumed a number; nothing else moved


def test_acceptor_continues_when_789_equals_next_outgoing() -> None:
    store = MemorySessionStore()
    store.set_next_sender_seq_num(5)
    store.set_next_target_seq_num(3)
    acceptor = make_session(SessionRole.ACCEPTOR, store)
    acceptor.connect(T0)
    out = acceptor.receive(_logon(3, 5), T0)
    assert _types(list(out.outbound)) == ["A"]
    assert out.outbound[0].get(34) == "5" and out.outbound[0].get(789) == "4"
    assert acceptor.state is SessionState.ACTIVE and not out.disconnect


def test_acceptor_replays_when_789_lower() -> None:
    """A client that missed the gateway's 3 (a heartbeat) and 4 (a report) gets both back."""
    pair = Pair()
    pair.logon()
    pair.send("b", report(1))  # acceptor seq 2
    pair.pump()
    pair.drop = lambda m: True  # the client hears nothing more
    pair.tick(20 * S)  # acceptor heartbeat, seq 3 (the initiator's heartbeat is lost too)
    pair.send("b", report(2))  # seq 4
    pair.cut("network")
    pair.drop = lambda m: False
    pair.connect()
    logon = pair.a.sent_raw[-1]
    assert logon.get(789) == "3"
    pair.pump()
    replay = pair.b.sent_raw[-3:]
    assert _types(replay) == ["A", "4", "8"]
    assert replay[1].get(34) == "3" and replay[1].get(123) == "Y" and replay[1].get(36) == "4"
    assert replay[1].get(43) == "Y"
    assert replay[2].get(34) == "4" and replay[2].get(43) == "Y" and replay[2].get(122)
    assert [m.get(17) for m in pair.a.delivered] == ["E1", "E2"]
    assert pair.a.session.state is SessionState.ACTIVE


def test_reports_generated_while_away_are_delivered_on_reconnect() -> None:
    pair = Pair()
    pair.logon()
    pair.cut("network")
    pair.send("b", report(1))  # numbered and stored, nothing on the wire
    assert pair.b.sent_raw[-1].msg_type == "A"
    pair.connect()
    pair.pump()
    assert [m.get(17) for m in pair.a.delivered] == ["E1"]


def test_logon_refused_for_wrong_appl_ver_id() -> None:
    _, acceptor = _acceptor()
    out = acceptor.receive(_logon(1, 1, appl_ver="7"), T0)  # type: ignore[attr-defined]
    assert _types(list(out.outbound)) == ["5"] and "1137" in (out.outbound[0].get(58) or "")
    assert out.disconnect


def test_first_message_not_logon_disconnects_without_reply() -> None:
    _, acceptor = _acceptor()
    out = acceptor.receive(_from_client("0", 1), T0)  # type: ignore[attr-defined]
    assert out.outbound == () and out.disconnect


def test_logon_seq_too_low_is_refused() -> None:
    _, acceptor = _acceptor(next_target=5)
    out = acceptor.receive(_logon(2, 1), T0)  # type: ignore[attr-defined]
    assert "too low" in (out.outbound[0].get(58) or "") and out.disconnect


def test_logon_timeout() -> None:
    initiator = make_session(SessionRole.INITIATOR)
    initiator.connect(T0)
    assert initiator.next_deadline_ns() == T0 + 10 * S
    assert initiator.tick(T0 + 9 * S).events == ()
    out = initiator.tick(T0 + 10 * S)
    assert out.disconnect and isinstance(out.events[0], SessionEnded)


def test_sequence_numbers_continue_across_logons() -> None:
    pair = Pair()
    pair.logon()
    pair.send("a", order(1))
    pair.pump()
    pair._apply("a", pair.a.session.logout(pair.now))
    pair.pump()
    pair.connect()
    pair.pump()
    # Initiator: Logon 1, order 2, Logout 3, Logon 4. Acceptor: Logon 1, Logout 2, Logon 3.
    assert [(m.msg_type, m.get(34)) for m in pair.a.sent_raw] == [
        ("A", "1"),
        ("D", "2"),
        ("5", "3"),
        ("A", "4"),
    ]
    assert pair.b.sent_raw[-1].get(34) == "3" and pair.b.sent_raw[-1].get(789) == "5"
    assert [m.get(11) for m in pair.b.delivered] == ["1"]


# ---- gaps, resends, duplicates ----------------------------------------------------------


def test_gap_triggers_resend_request_and_possdup_replay() -> None:
    pair = Pair()
    pair.logon()
    lost = {"E1"}
    pair.drop = lambda m: m.get(17) in lost
    pair.send("b", report(1))  # seq 2, lost
    pair.send("b", report(2))  # seq 3 → gap at the initiator
    pair.drop = lambda m: False
    pair.deliver_one("a")
    assert pair.a.session.state is SessionState.RESENDING
    rr = pair.a.sent_raw[-1]
    assert (rr.msg_type, rr.get(7), rr.get(16)) == ("2", "2", "0")
    pair.pump()
    replay = [m for m in pair.b.sent_raw if m.get(43) == "Y"]
    assert [(m.get(34), m.get(17)) for m in replay] == [("2", "E1"), ("3", "E2")]
    assert all(m.get(122) for m in replay)
    assert [m.get(17) for m in pair.a.delivered] == ["E1", "E2"]  # once each, in order
    assert pair.a.session.state is SessionState.ACTIVE


def test_session_messages_in_resend_range_are_gap_filled() -> None:
    pair = Pair()
    pair.logon()
    pair.drop = lambda m: True
    pair.tick(20 * S)  # heartbeats both ways, lost
    pair.send("b", report(1))  # seq 3, lost
    pair.drop = lambda m: False
    pair.send("b", report(2))  # seq 4 arrives: gap 2..3
    pair.pump()
    fills = [m for m in pair.b.sent_raw if m.msg_type == "4"]
    assert [(m.get(34), m.get(36), m.get(123)) for m in fills] == [("2", "3", "Y")]
    assert [m.get(17) for m in pair.a.delivered] == ["E1", "E2"]


def test_possdup_already_seen_is_dropped() -> None:
    pair = Pair()
    pair.logon()
    pair.send("b", report(1))
    pair.pump()
    dup = pair.b.sent_raw[-1]
    again = FixMessage((*dup.fields, (43, "Y")))
    out = pair.a.session.receive(again, pair.now)
    assert out.delivered == () and out.outbound == () and not out.disconnect


def test_seq_too_low_without_possdup_logs_out() -> None:
    pair = Pair()
    pair.logon()
    pair.send("b", report(1))
    pair.pump()
    out = pair.a.session.receive(pair.b.sent_raw[-1], pair.now)
    assert out.outbound[0].msg_type == "5" and "too low" in (out.outbound[0].get(58) or "")
    assert out.disconnect


def test_resend_request_beyond_range_is_capped() -> None:
    store = MemorySessionStore()
    acceptor = make_session(SessionRole.ACCEPTOR, store, resend_range_max=3)
    acceptor.connect(T0)
    acceptor.receive(_logon(1, 1), T0)
    for n in range(10):
        acceptor.send(report(n), T0)
    out = acceptor.receive(_from_client("2", 2, (7, "1"), (16, "0")), T0)
    assert [m.get(34) for m in out.outbound] == ["1", "2", "3"]


def test_resend_request_is_retried_when_unanswered() -> None:
    pair = Pair()
    pair.logon()
    pair.drop = lambda m: m.get(17) == "E1"
    pair.send("b", report(1))
    pair.drop = lambda m: m.msg_type == "2"  # our ResendRequest is lost too
    pair.send("b", report(2))
    pair.pump()
    assert pair.a.session.state is SessionState.RESENDING
    pair.drop = lambda m: False
    pair.tick(20 * S)
    pair.pump()
    assert [m.get(17) for m in pair.a.delivered] == ["E1", "E2"]


# ---- timers ------------------------------------------------------------------------------


def test_heartbeat_and_test_request_timing() -> None:
    pair = Pair()
    pair.logon()
    a = pair.a.session
    assert a.next_deadline_ns() == T0 + 20 * S
    assert a.tick(T0 + 20 * S - 1).outbound == ()
    assert _types(list(a.tick(T0 + 20 * S).outbound)) == ["0"]
    assert _types(list(a.tick(T0 + 40 * S).outbound)) == ["0"]
    out = a.tick(T0 + 60 * S)  # three silent intervals
    assert _types(list(out.outbound)) == ["1"]  # the TestRequest is traffic: no Heartbeat
    test_req_id = out.outbound[0].get(112)
    assert a.tick(T0 + 119 * S).disconnect is False
    out = a.tick(T0 + 120 * S)  # about three more: give up
    assert _types(list(out.outbound)) == ["5"] and out.disconnect
    assert out.events[-1] == SessionEnded("heartbeat timeout", was_logged_on=True)
    assert test_req_id


def test_test_request_answered_with_its_id() -> None:
    pair = Pair()
    pair.logon()
    out = pair.b.session.receive(_from_client("1", 2, (112, "PING")), pair.now)
    assert [(m.msg_type, m.get(112)) for m in out.outbound] == [("0", "PING")]


def test_inbound_traffic_defers_test_request() -> None:
    pair = Pair()
    pair.logon()
    for _ in range(10):
        pair.tick(20 * S)
        pair.pump()
    assert not any(m.msg_type == "1" for m in pair.a.sent_raw + pair.b.sent_raw)
    assert pair.a.session.state is SessionState.ACTIVE


# ---- rejects, logout, illegal use --------------------------------------------------------


def test_malformed_message_gets_reject_with_reason() -> None:
    pair = Pair()
    pair.logon()
    err = DecodeError(DecodeErrorKind.MALFORMED, "field b'oops' is not tag=value", 2)
    out = pair.b.session.receive(err, pair.now)
    (reject,) = out.outbound
    assert reject.msg_type == "3" and reject.get(45) == "2" and reject.get(373) == "99"
    assert "oops" in (reject.get(58) or "")
    assert pair.b.session.store.next_target_seq_num == 3  # the number is consumed


def test_missing_required_field_rejected_with_tag() -> None:
    pair = Pair()
    pair.logon()
    out = pair.b.session.receive(_from_client("1", 2), pair.now)
    (reject,) = out.outbound
    assert (reject.get(45), reject.get(371), reject.get(372), reject.get(373)) == (
        "2",
        "112",
        "1",
        "1",
    )


def test_garbled_frames_are_ignored() -> None:
    pair = Pair()
    pair.logon()
    out = pair.b.session.receive(DecodeError(DecodeErrorKind.BAD_CHECKSUM, "x"), pair.now)
    assert out.outbound == () and not out.disconnect and out.events


def test_logout_handshake() -> None:
    pair = Pair()
    pair.logon()
    pair._apply("a", pair.a.session.logout(pair.now, "end of day"))
    assert pair.a.session.state is SessionState.LOGOUT_SENT
    pair.pump()
    for side in (pair.a, pair.b):
        assert side.session.state is SessionState.DISCONNECTED
        assert isinstance(side.events[-1], SessionEnded) and side.events[-1].was_logged_on


def test_illegal_use_raises() -> None:
    session = make_session(SessionRole.INITIATOR)
    with pytest.raises(SessionStateError):
        session.receive(_logon(1, 1), T0)
    with pytest.raises(SessionStateError):
        session.logout(T0)
    session.connect(T0)
    with pytest.raises(SessionStateError):
        session.connect(T0)
    with pytest.raises(SessionStateError):
        session.send(FixMessage.of("0"), T0)


def test_a_peer_reject_is_delivered_and_names_the_message_we_sent() -> None:
    pair = Pair()
    pair.logon()
    # Our order reaches the acceptor garbled beyond use: it refuses it at the session level.
    pair.drop = lambda m: m.msg_type == "D"
    pair.send("a", order(7))
    sent_seq = int(pair.a.sent_raw[-1].get(34) or 0)
    pair.drop = lambda _m: False
    err = DecodeError(DecodeErrorKind.MALFORMED, "bad field", sent_seq)
    pair._apply("b", pair.b.session.receive(err, pair.now))
    pair.pump()
    (reject,) = [m for m in pair.a.delivered if m.msg_type == "3"]
    assert reject.get(45) == str(sent_seq)
    refused = pair.a.session.sent_message(sent_seq)
    assert refused is not None and refused.msg_type == "D" and refused.get(11) == "7"
    assert pair.a.session.sent_message(999) is None


def test_an_unsupported_appl_ver_id_is_refused_and_not_delivered() -> None:
    pair = Pair()
    pair.logon()
    out = pair.b.session.receive(_from_client("D", 2, (1128, "7"), (11, "1")), pair.now)
    (reject,) = out.outbound
    assert (reject.msg_type, reject.get(45), reject.get(371), reject.get(373)) == (
        "3",
        "2",
        "1128",
        "18",
    )
    assert not out.delivered and pair.b.session.store.next_target_seq_num == 3
    ok = pair.b.session.receive(_from_client("D", 3, (1128, "9"), (11, "2")), pair.now)
    assert [m.get(11) for m in ok.delivered] == ["2"]
