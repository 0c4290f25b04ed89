"""Vocabulary of the FIX session layer: session tags and message types, the session state
enum with its legal transitions, configuration, and what a session call returns.

Guarantees: everything here is immutable data; `check_transition` is the one place that
decides whether a state change is legal, and it raises `SessionStateError` when it is not.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

from sampan.fix.codec import FixMessage

TAG_BEGIN_SEQ_NO = 7
TAG_END_SEQ_NO = 16
TAG_NEW_SEQ_NO = 36
TAG_REF_SEQ_NUM = 45
TAG_ENCRYPT_METHOD = 98
TAG_PASSWORD = 554
TAG_SESSION_STATUS = 1409  # OCG-C: 0 session active, 5 invalid username or password
SESSION_STATUS_ACTIVE = "0"
SESSION_STATUS_INVALID_PASSWORD = "5"  # noqa: S105 - a status code
TAG_HEART_BT_INT = 108
TAG_TEST_REQ_ID = 112
TAG_GAP_FILL_FLAG = 123
TAG_REF_TAG_ID = 371
TAG_REF_MSG_TYPE = 372
TAG_SESSION_REJECT_REASON = 373
TAG_NEXT_EXPECTED_MSG_SEQ_NUM = 789
TAG_APPL_VER_ID = 1128
TAG_DEFAULT_APPL_VER_ID = 1137

MSG_HEARTBEAT = "0"
MSG_TEST_REQUEST = "1"
MSG_RESEND_REQUEST = "2"
MSG_REJECT = "3"
MSG_SEQUENCE_RESET = "4"
MSG_LOGOUT = "5"
MSG_LOGON = "A"
SESSION_MSG_TYPES = frozenset("012345A")

APPL_VER_ID_FIX50SP2 = "9"
# The Logout text refusing a Logon whose NextExpectedMsgSeqNum (789) is above what we will send
# next: the peer remembers a session we no longer have (we lost our sequence numbers).
LOGON_789_TOO_HIGH = "NextExpectedMsgSeqNum {} above next outgoing {}"
LOGON_789_TOO_HIGH_RE = re.compile(r"NextExpectedMsgSeqNum (\d+) above next outgoing (\d+)")


class SessionRejectReason(enum.IntEnum):
    """SessionRejectReason (373) values this session sends."""

    REQUIRED_TAG_MISSING = 1
    VALUE_INCORRECT = 5
    INCORRECT_DATA_FORMAT = 6
    COMPID_PROBLEM = 9
    INVALID_APPL_VER_ID = 18  # "Invalid/Unsupported Application Version"
    OTHER = 99


class SessionRole(enum.StrEnum):
    INITIATOR = "initiator"  # the router: sends Logon
    ACCEPTOR = "acceptor"  # the HKEX simulator: answers Logon


class SessionState(enum.StrEnum):
    DISCONNECTED = "disconnected"
    AWAITING_LOGON = "awaiting_logon"  # acceptor: TCP up, no Logon yet
    LOGON_SENT = "logon_sent"  # initiator: Logon sent, no answer yet
    ACTIVE = "active"
    RESENDING = "resending"  # logged on, waiting for a gap in inbound numbers to fill
    LOGOUT_SENT = "logout_sent"


_S = SessionState
_TRANSITIONS: dict[SessionState, frozenset[SessionState]] = {
    _S.DISCONNECTED: frozenset({_S.AWAITING_LOGON, _S.LOGON_SENT}),
    _S.AWAITING_LOGON: frozenset({_S.ACTIVE, _S.RESENDING, _S.DISCONNECTED}),
    _S.LOGON_SENT: frozenset({_S.ACTIVE, _S.RESENDING, _S.DISCONNECTED}),
    _S.ACTIVE: frozenset({_S.RESENDING, _S.LOGOUT_SENT, _S.DISCONNECTED}),
    _S.RESENDING: frozenset({_S.ACTIVE, _S.LOGOUT_SENT, _S.DISCONNECTED}),
    _S.LOGOUT_SENT: frozenset({_S.DISCONNECTED}),
}
LOGGED_ON_STATES = frozenset({_S.ACTIVE, _S.RESENDING})


class SessionStateError(RuntimeError):
    """The application drove the session in a way its current state does not allow."""


def check_transition(old: SessionState, new: SessionState) -> None:
    if new not in _TRANSITIONS[old]:
        raise SessionStateError(f"illegal transition {old} -> {new}")


@dataclass(frozen=True, slots=True)
class SessionConfig:
    role: SessionRole
    sender_comp_id: str
    target_comp_id: str
    heartbeat_interval_s: int = 20  # OCG-C's figure; an acceptor adopts the client's value
    heartbeat_interval_s_min: int = 1
    heartbeat_interval_s_max: int = 300
    test_request_after_intervals: int = 3
    disconnect_after_intervals: int = 3
    logon_timeout_s: int = 10
    logout_timeout_s: int = 5
    resend_range_max: int = 10_000
    queued_messages_max: int = 10_000
    # OCG-C's Password (554): an initiator sends it in its Logon; an acceptor with one refuses a
    # Logon that does not carry it (Logout with SessionStatus 5). Never printed.
    password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        assert self.heartbeat_interval_s_min <= self.heartbeat_interval_s
        assert self.heartbeat_interval_s <= self.heartbeat_interval_s_max
        assert self.resend_range_max > 0 and self.queued_messages_max > 0


@dataclass(frozen=True, slots=True)
class LogonCompleted:
    """Both Logons exchanged; on the acceptor, the moment a member's orders become live."""

    heartbeat_interval_s: int
    next_sender_seq_num: int
    next_target_seq_num: int


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """The session left the logged-on world (cancel-on-disconnect keys off this)."""

    reason: str
    was_logged_on: bool


@dataclass(frozen=True, slots=True)
class ProtocolIssue:
    """Something the peer did that we tolerated or rejected; for logs and metrics."""

    detail: str


SessionEvent = LogonCompleted | SessionEnded | ProtocolIssue


@dataclass(frozen=True, slots=True)
class SessionOutput:
    outbound: tuple[FixMessage, ...] = ()
    delivered: tuple[FixMessage, ...] = ()
    events: tuple[SessionEvent, ...] = ()
    disconnect: bool = False


@dataclass(slots=True)
class OutputBatch:
    outbound: list[FixMessage] = field(default_factory=list)
    delivered: list[FixMessage] = field(default_factory=list)
    events: list[SessionEvent] = field(default_factory=list)
    disconnect: bool = False

    def freeze(self) -> SessionOutput:
        return SessionOutput(
            tuple(self.outbound), tuple(self.delivered), tuple(self.events), self.disconnect
        )
