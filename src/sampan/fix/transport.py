"""asyncio TCP glue: run a `Session` over a StreamReader/StreamWriter with its timers.

This is the only module of `sampan.fix` that does I/O. `SessionConnection.run` feeds bytes to a
`FixDecoder`, every decoded item to the session, and calls `Session.tick` at
`next_deadline_ns`; it writes what the session returns and calls the `Application` back.
`serve_acceptor` starts a server that binds each connection to a session by the CompIDs of its
first message (the Logon); `open_initiator` connects out.

Guarantees: nothing is written to the peer before the session's store has made it durable:
while the store has writes not yet synced (a group-commit store, `FileSessionStore`), outbound
messages are held, and one `store.sync()` at the end of the event loop's current step covers
every message held by then, which are then written in order (group commit: one fsync for all
the messages ready at that moment). Reads are bounded (`read_bytes_max` per read, the decoder's frame bound), writes
apply backpressure (a peer that leaves more than `write_buffer_bytes_max` unread for
`drain_timeout_s` is disconnected), one TCP connection per session at a time, and the session
always hears about the end of its connection, even when an application callback raises.

Limits: callbacks are synchronous and run on the event loop, so they must be quick (hand work
to a queue); reconnecting after a drop is the caller's loop; the clock must be wall time in ns
because SendingTime is derived from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Protocol

from sampan.fix.codec import (
    MESSAGE_BYTES_MAX,
    TAG_SENDER_COMP_ID,
    TAG_TARGET_COMP_ID,
    DecodeError,
    FixDecoder,
    FixMessage,
    encode,
)
from sampan.fix.session import Session
from sampan.fix.session_types import (
    LogonCompleted,
    SessionEnded,
    SessionOutput,
    SessionRejectReason,
    SessionState,
)

READ_BYTES_MAX = 64 * 1024
WRITE_BUFFER_BYTES_MAX = 1024 * 1024
DRAIN_TIMEOUT_S = 5.0
# How long an accepted connection may take to send a complete first message.
FIRST_MESSAGE_TIMEOUT_S = 10.0
FIRST_MESSAGE_BYTES_MAX = 2 * MESSAGE_BYTES_MAX
_NS_PER_S = 1_000_000_000

Clock = Callable[[], int]


class Application(Protocol):
    """What the transport tells the business side. Callbacks must not block."""

    def on_logon(self, conn: SessionConnection) -> None: ...

    def on_message(self, conn: SessionConnection, msg: FixMessage) -> None: ...

    def on_session_ended(self, conn: SessionConnection, reason: str, was_logged_on: bool) -> None:
        """Cancel-on-disconnect hangs off this on the acceptor."""
        ...


class SessionConnection:
    """One session over one TCP connection, from connect to close."""

    def __init__(
        self,
        session: Session,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        app: Application,
        *,
        clock: Clock = time.time_ns,
        decoder: FixDecoder | None = None,
        read_bytes_max: int = READ_BYTES_MAX,
        write_buffer_bytes_max: int = WRITE_BUFFER_BYTES_MAX,
    ) -> None:
        self.session = session
        self._reader = reader
        self._writer = writer
        self._app = app
        self._clock = clock
        self._decoder = decoder or FixDecoder()
        self._read_bytes_max = read_bytes_max
        self._write_buffer_bytes_max = write_buffer_bytes_max
        self._closed = False
        self._held: list[bytes] = []  # encoded, waiting for the store's next sync
        self._flush_scheduled = False

    def send(self, msg: FixMessage) -> None:
        """Send a business message now (or keep it for replay if not logged on)."""
        self._apply(self.session.send(msg, self._clock()))

    def reject(self, msg: FixMessage, reason: SessionRejectReason, text: str) -> None:
        """Refuse a delivered message with a session-level Reject (35=3)."""
        self._apply(self.session.reject(msg, reason, text, self._clock()))

    def logout(self, text: str = "") -> None:
        self._apply(self.session.logout(self._clock(), text))

    async def drain(self) -> None:
        """Wait until the peer has read enough of what we wrote; disconnect a stalled peer."""
        if self._closed or self._writer.transport.get_write_buffer_size() <= (
            self._write_buffer_bytes_max
        ):
            return
        try:
            await asyncio.wait_for(self._writer.drain(), DRAIN_TIMEOUT_S)
        except (TimeoutError, ConnectionError):
            self._lost("peer not reading")

    async def run(self, already_read: list[FixMessage | DecodeError] | None = None) -> None:
        """Drive the session until the connection ends. `already_read` items come first."""
        try:
            self._apply(self.session.connect(self._clock()))
            for item in already_read or []:
                if self._closed:
                    break
                self._apply(self.session.receive(item, self._clock()))
            while not self._closed:
                await self._step()
        finally:
            self._lost("connection closed")

    async def _step(self) -> None:
        deadline = self.session.next_deadline_ns()
        timeout_s = None
        if deadline is not None:
            timeout_s = max(0.0, (deadline - self._clock()) / _NS_PER_S)
        try:
            data = await asyncio.wait_for(self._reader.read(self._read_bytes_max), timeout_s)
        except TimeoutError:
            self._apply(self.session.tick(self._clock()))
            return
        except ConnectionError as exc:
            self._lost(f"read failed: {exc}")
            return
        if not data:
            for err in self._decoder.close():
                self._apply(self.session.receive(err, self._clock()))
            self._lost("peer closed the connection")
            return
        for item in self._decoder.feed(data):
            if self._closed:
                return
            self._apply(self.session.receive(item, self._clock()))
        # A peer that never pauses must not starve our own heartbeats and timeouts.
        deadline = self.session.next_deadline_ns()
        if not self._closed and deadline is not None and self._clock() >= deadline:
            self._apply(self.session.tick(self._clock()))
        await self.drain()

    def _apply(self, out: SessionOutput) -> None:
        if not self._closed and out.outbound:
            if self._held or self.session.store.needs_sync:
                self._held.extend(encode(msg) for msg in out.outbound)
                self._schedule_flush()
            else:
                for msg in out.outbound:
                    self._writer.write(encode(msg))
        # Logon first so the application is ready for the replayed messages that follow it.
        for event in out.events:
            if isinstance(event, LogonCompleted):
                self._app.on_logon(self)
        for msg in out.delivered:
            self._app.on_message(self, msg)
        for event in out.events:
            if isinstance(event, SessionEnded):
                self._app.on_session_ended(self, event.reason, event.was_logged_on)
        if out.disconnect:
            self._close_socket()

    def _schedule_flush(self) -> None:
        """Flush once the loop's current step is done, so everything sent in it (a batch of
        orders, the reports of one read) shares one sync; at once when no loop runs."""
        if self._flush_scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._flush()
            return
        self._flush_scheduled = True
        loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._closed or not self._held:
            self._held.clear()  # never sent: the store keeps them for the peer's resend
            return
        self.session.store.sync()
        held, self._held = self._held, []
        self._writer.write(b"".join(held))

    def _lost(self, reason: str) -> None:
        self._close_socket()
        if self.session.state is not SessionState.DISCONNECTED:
            self._apply(self.session.disconnected(self._clock(), reason))

    def _close_socket(self) -> None:
        if not self._closed:
            self._flush()  # a Logout decided with the disconnect still goes out
            self._closed = True
            self._writer.close()


SessionResolver = Callable[[FixMessage], tuple[Session, Application] | None]


async def serve_acceptor(
    host: str,
    port: int,
    resolve: SessionResolver,
    *,
    clock: Clock = time.time_ns,
) -> asyncio.Server:
    """Listen for initiators; `resolve` maps a first message to its session, or None to refuse.

    A connection for a session that is already connected is refused: OCG-C allows one
    connection per CompID.
    """

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = FixDecoder()
        try:
            first = await asyncio.wait_for(_first_items(reader, decoder), FIRST_MESSAGE_TIMEOUT_S)
        except (TimeoutError, ConnectionError):
            first = []
        logon = next((i for i in first if isinstance(i, FixMessage)), None)
        bound = resolve(logon) if logon is not None else None
        if bound is None or bound[0].state is not SessionState.DISCONNECTED:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            return
        session, app = bound
        conn = SessionConnection(session, reader, writer, app, clock=clock, decoder=decoder)
        await conn.run(already_read=first)
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    return await asyncio.start_server(handle, host, port)


async def _first_items(
    reader: asyncio.StreamReader, decoder: FixDecoder
) -> list[FixMessage | DecodeError]:
    """Read until a whole message arrives or the peer closes; the decoder bounds the bytes."""
    items: list[FixMessage | DecodeError] = []
    bytes_read = 0
    # A Logon is small; a peer sending this much without one is not speaking FIX.
    while bytes_read < FIRST_MESSAGE_BYTES_MAX and not any(
        isinstance(i, FixMessage) for i in items
    ):
        data = await reader.read(READ_BYTES_MAX)
        if not data:
            break
        bytes_read += len(data)
        items += decoder.feed(data)
    return items


def comp_ids(msg: FixMessage) -> tuple[str | None, str | None]:
    """(SenderCompID, TargetCompID) of a message, for resolvers."""
    return msg.get(TAG_SENDER_COMP_ID), msg.get(TAG_TARGET_COMP_ID)


async def open_initiator(
    host: str,
    port: int,
    session: Session,
    app: Application,
    *,
    clock: Clock = time.time_ns,
) -> SessionConnection:
    """Connect out; the caller runs `conn.run()` (as a task) to send Logon and drive it."""
    reader, writer = await asyncio.open_connection(host, port)
    return SessionConnection(session, reader, writer, app, clock=clock)
