"""Test helper (not a test module): a two-session harness: an initiator and an acceptor joined by a link the test controls.

Every message crosses the link as bytes (encode, then the incremental decoder), so the
session tests also exercise the codec. The link keeps one FIFO per direction; a test can
deliver from either side in any order, drop messages, and cut the connection.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from sampan.fix.codec import FixDecoder, FixMessage, encode
from sampan.fix.session import Session
from sampan.fix.session_types import (
    SessionConfig,
    SessionEvent,
    SessionOutput,
    SessionRole,
    SessionState,
)
from sampan.fix.store import MemorySessionStore, SessionStore

T0 = 1_767_323_045_000_000_000  # 2026-01-02T03:04:05Z
S = 1_000_000_000


def make_session(role: SessionRole, store: SessionStore | None = None, **kw: int) -> Session:
    sender, target = ("SAMPAN", "HKEX") if role is SessionRole.INITIATOR else ("HKEX", "SAMPAN")
    config = SessionConfig(role, sender, target, **kw)  # type: ignore[arg-type]
    return Session(config, store if store is not None else MemorySessionStore())


@dataclass
class Side:
    session: Session
    delivered: list[FixMessage] = field(default_factory=list)
    events: list[SessionEvent] = field(default_factory=list)
    sent_raw: list[FixMessage] = field(default_factory=list)  # everything put on the wire


class Pair:
    """Initiator `a` and acceptor `b` over a lossy, reorder-free link."""

    def __init__(self, a: Session | None = None, b: Session | None = None) -> None:
        self.a = Side(a or make_session(SessionRole.INITIATOR))
        self.b = Side(b or make_session(SessionRole.ACCEPTOR))
        self.now = T0
        # Messages in flight to a / to b; None is the end of the stream (the sender closed).
        self.queues: dict[str, deque[FixMessage | None]] = {"a": deque(), "b": deque()}
        self.drop: Callable[[FixMessage], bool] = lambda _m: False

    def side(self, name: str) -> Side:
        return self.a if name == "a" else self.b

    def _apply(self, name: str, out: SessionOutput) -> None:
        me, peer = self.side(name), ("b" if name == "a" else "a")
        me.delivered += out.delivered
        me.events += out.events
        for msg in out.outbound:
            me.sent_raw.append(msg)
            if not self.drop(msg):
                self.queues[peer].append(msg)
        if out.disconnect:
            # Bytes already written still reach the peer, then it sees the stream end.
            self.queues[name].clear()
            self.queues[peer].append(None)

    def cut(self, reason: str) -> None:
        """TCP drops: in-flight bytes are lost and both ends learn of it."""
        self.queues["a"].clear()
        self.queues["b"].clear()
        for name in ("a", "b"):
            s = self.side(name)
            if s.session.state is not SessionState.DISCONNECTED:
                self._apply(name, s.session.disconnected(self.now, reason))

    def connect(self) -> None:
        """A new TCP connection: nothing from the old one is still in flight."""
        self.queues["a"].clear()
        self.queues["b"].clear()
        self._apply("b", self.b.session.connect(self.now))
        self._apply("a", self.a.session.connect(self.now))

    def deliver_one(self, to: str) -> bool:
        q = self.queues[to]
        if not q:
            return False
        msg = q.popleft()
        s = self.side(to)
        if s.session.state is SessionState.DISCONNECTED:
            return True
        if msg is None:
            self._apply(to, s.session.disconnected(self.now, "peer closed"))
            return True
        decoder = FixDecoder()
        for item in decoder.feed(encode(msg)):
            self._apply(to, s.session.receive(item, self.now))
        return True

    def pump(self, steps_max: int = 10_000) -> None:
        for _ in range(steps_max):
            if not (self.deliver_one("b") or self.deliver_one("a")):
                return
        raise AssertionError("link did not go quiet")

    def send(self, name: str, msg: FixMessage) -> None:
        self._apply(name, self.side(name).session.send(msg, self.now))

    def tick(self, dt_ns: int) -> None:
        self.now += dt_ns
        for name in ("a", "b"):
            self._apply(name, self.side(name).session.tick(self.now))

    def logon(self) -> None:
        self.connect()
        self.pump()
        assert self.a.session.state is SessionState.ACTIVE
        assert self.b.session.state is SessionState.ACTIVE


def order(n: int) -> FixMessage:
    return FixMessage.of("D", (11, str(n)), (48, "700"), (54, "1"), (38, "100"))


def report(n: int) -> FixMessage:
    return FixMessage.of("8", (37, f"O{n}"), (17, f"E{n}"), (150, "0"), (39, "0"))
