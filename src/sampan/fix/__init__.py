"""The FIX session layer shared by the router's OCG-C initiator and the HKEX simulator's acceptor.

Layers, pure to impure: `codec` frames FIXT.1.1 bytes; `messages` builds and parses the typed
business messages; `session` is a sans-I/O session state machine over a `store` of sequence
numbers and sent messages; `transport` runs a session over asyncio TCP. Only `transport` and the
file-backed store do I/O.
"""

from sampan.fix.codec import (
    DecodeError,
    DecodeErrorKind,
    FieldError,
    FixDecoder,
    FixMessage,
    encode,
)
from sampan.fix.session import Session
from sampan.fix.session_types import (
    LogonCompleted,
    ProtocolIssue,
    SessionConfig,
    SessionEnded,
    SessionEvent,
    SessionOutput,
    SessionRole,
    SessionState,
    SessionStateError,
)
from sampan.fix.store import FileSessionStore, MemorySessionStore, SessionStore

__all__ = [
    "DecodeError",
    "DecodeErrorKind",
    "FieldError",
    "FileSessionStore",
    "FixDecoder",
    "FixMessage",
    "LogonCompleted",
    "MemorySessionStore",
    "ProtocolIssue",
    "Session",
    "SessionConfig",
    "SessionEnded",
    "SessionEvent",
    "SessionOutput",
    "SessionRole",
    "SessionState",
    "SessionStateError",
    "SessionStore",
    "encode",
]
