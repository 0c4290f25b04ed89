"""The router's OCG-C order-entry session: one FIX initiator, reconnected until stopped.

The session's outbound side (our MsgSeqNum and the messages sent, for resends) persists in a
`FileSessionStore` per trading day; its inbound side does not: the next inbound MsgSeqNum lives
in Kafka (`state_topic`), committed with the records the reports became, and the link is told
it at start. So after a crash the Logon asks (789) for everything whose records were not
committed, and the gateway replays it; messages received but not yet committed are simply
received again.

Guarantees: inbound business messages are queued in MsgSeqNum order with their numbers, at
most `INBOUND_MAX` (past that the link raises: a restart recovers by resend, nothing is lost);
messages sent while disconnected are numbered, stored and delivered by the replay after the
next logon; reconnects back off exponentially up to `BACKOFF_MAX_S`; every connect has a
timeout.

A session-level Reject (35=3) from the gateway names the refused message only by its MsgSeqNum
(RefSeqNum, 45); the link looks that message up in its outbound store and queues the Reject
with the refused message's ClOrdID (11) and MsgType (372) added, so the core can find the order
without knowing sequence numbers. A Reject whose message is no longer stored is queued as is.

HKEX losing its session (an exchange restart that lost its sequence numbers, and with them its
books): the gateway refuses our Logon because our NextExpectedMsgSeqNum is above anything it
will send. The link then logs an ALERT, starts a new session from 1 both ways (what is stored
for the old one is never replayed to the new exchange), and queues `EXCHANGE_RESET` (sequence
number 0) for the core, which ends every order it held at HKEX: the exchange no longer knows
them.

`LinkThread` runs the link on its own event loop in a thread, for the router's processing loop
(the streams runtime) on the main thread.

Limits: losing the state directory makes the gateway refuse our Logon (MsgSeqNum too low)
until its trading day ends; no day rollover while running.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TypeVar

from sampan import credentials
from sampan.fix.codec import TAG_TEXT, FieldError, FixMessage
from sampan.fix.messages import TAG_CL_ORD_ID
from sampan.fix.session import Session
from sampan.fix.session_types import (
    LOGON_789_TOO_HIGH_RE,
    MSG_REJECT,
    TAG_REF_MSG_TYPE,
    TAG_REF_SEQ_NUM,
    SessionConfig,
    SessionRole,
)
from sampan.fix.store import FileSessionStore
from sampan.fix.transport import SessionConnection, open_initiator
from sampan.router.hkex import EXCHANGE_RESET

log = logging.getLogger(__name__)

# The OCG-C Logon password on a real gateway: this variable, or a file named in its _FILE twin.
OCG_PASSWORD_ENV = "SAMPAN_OCG_PASSWORD"  # noqa: S105 - a variable name
INBOUND_MAX = 100_000
CONNECT_TIMEOUT_S = 5.0
BACKOFF_INITIAL_S = 0.1
BACKOFF_MAX_S = 5.0
LOGOUT_TIMEOUT_S = 5.0
CALL_TIMEOUT_S = 10.0

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LinkConfig:
    host: str
    port: int
    comp_id: str = "SAMPAN"
    gateway_comp_id: str = "HKEX"
    heartbeat_interval_s: int = 20
    state_dir: Path = Path(".state/router")
    fsync: bool = True
    # One fsync per group of messages ready together; False: one per message (benchmarks
    # compare the two).
    group_commit: bool = True


class KafkaTargetStore:
    """A `SessionStore`: outbound numbers and messages on disk, the inbound number in memory
    (its durable copy is the one committed to Kafka)."""

    def __init__(self, outbound: FileSessionStore, next_target_seq_num: int) -> None:
        self.outbound = outbound
        self._next_target = next_target_seq_num

    @property
    def next_sender_seq_num(self) -> int:
        return self.outbound.next_sender_seq_num

    @property
    def next_target_seq_num(self) -> int:
        return self._next_target

    def set_next_sender_seq_num(self, seq_num: int) -> None:
        self.outbound.set_next_sender_seq_num(seq_num)

    def set_next_target_seq_num(self, seq_num: int) -> None:
        assert seq_num >= 1
        self._next_target = seq_num

    def save_sent(self, seq_num: int, raw: bytes) -> None:
        self.outbound.save_sent(seq_num, raw)

    def load_sent(self, begin: int, end: int) -> dict[int, bytes]:
        return self.outbound.load_sent(begin, end)

    @property
    def needs_sync(self) -> bool:
        return self.outbound.needs_sync

    def sync(self) -> None:
        self.outbound.sync()


class FixLink:
    """Drive with `run(stop)` as a task; `send` and `drain` from the same event loop."""

    def __init__(self, config: LinkConfig, day: date, next_inbound_seq: int) -> None:
        self.config = config
        # Group commit: one fsync covers every message the session sends in one step of the
        # loop (a committed batch's orders), and the transport writes none before it.
        outbound = FileSessionStore(
            config.state_dir,
            config.comp_id,
            day,
            durable=config.fsync,
            group_commit=config.fsync and config.group_commit,
        )
        self.store = KafkaTargetStore(outbound, next_inbound_seq)
        self.session = Session(
            SessionConfig(
                SessionRole.INITIATOR,
                config.comp_id,
                config.gateway_comp_id,
                heartbeat_interval_s=config.heartbeat_interval_s,
                heartbeat_interval_s_min=1,
                password=credentials.session_password(config.comp_id, OCG_PASSWORD_ENV),
            ),
            self.store,
        )
        self.wake = asyncio.Event()
        self.logons = 0
        self._conn: SessionConnection | None = None
        self._inbound: list[tuple[int, FixMessage]] = []

    # ---- Application callbacks (synchronous, on the event loop) -------------------------

    def on_logon(self, conn: SessionConnection) -> None:
        self._conn = conn
        self.logons += 1
        log.info("router: OCG-C session %s logged on", self.config.comp_id)

    def on_message(self, conn: SessionConnection, msg: FixMessage) -> None:
        seq = msg.msg_seq_num
        assert seq is not None, "the session delivers sequenced messages only"
        if len(self._inbound) >= INBOUND_MAX:
            raise RuntimeError(f"more than {INBOUND_MAX} HKEX messages wait for a commit")
        if msg.msg_type == MSG_REJECT:
            msg = self._annotated_reject(msg)
        self._inbound.append((seq, msg))
        self.wake.set()

    def on_session_ended(self, conn: SessionConnection, reason: str, was_logged_on: bool) -> None:
        self._conn = None
        log.info("router: OCG-C session ended: %s", reason)
        reset = LOGON_789_TOO_HIGH_RE.search(reason)
        if reset is not None and not was_logged_on:
            self.exchange_reset(int(reset.group(1)), int(reset.group(2)))

    def exchange_reset(self, we_expected: int, exchange_next: int) -> None:
        """The exchange has lost the session (see the module docstring): begin a new one."""
        log.error(
            "router: ALERT: HKEX lost our session (it will send %d next; we expected %d): "
            "the exchange restarted without its state. Starting a new session from 1 and "
            "ending every order held at HKEX",
            exchange_next,
            we_expected,
        )
        self.store.set_next_target_seq_num(exchange_next)
        self.store.set_next_sender_seq_num(1)
        if len(self._inbound) >= INBOUND_MAX:
            raise RuntimeError(f"more than {INBOUND_MAX} HKEX messages wait for a commit")
        self._inbound.append((0, FixMessage.of(EXCHANGE_RESET)))
        self.wake.set()

    def _annotated_reject(self, reject: FixMessage) -> FixMessage:
        try:
            ref_seq = reject.get_int(TAG_REF_SEQ_NUM)
        except FieldError:
            ref_seq = None
        refused = self.session.sent_message(ref_seq) if ref_seq is not None else None
        log.warning(
            "router: HKEX rejected our message %s at the session level: %s",
            ref_seq,
            reject.get(TAG_TEXT),
        )
        if refused is None or refused.get(TAG_CL_ORD_ID) is None:
            return reject
        kept = tuple((t, v) for t, v in reject.fields if t not in (TAG_CL_ORD_ID, TAG_REF_MSG_TYPE))
        return FixMessage(
            (
                *kept,
                (TAG_REF_MSG_TYPE, refused.msg_type),
                (TAG_CL_ORD_ID, refused.get(TAG_CL_ORD_ID) or ""),
            )
        )

    # ---- the router's side ----------------------------------------------------------------

    @property
    def logged_on(self) -> bool:
        return self._conn is not None and self.session.is_logged_on

    def send(self, msg: FixMessage) -> None:
        """Send now, or number and store it for the replay after the next logon."""
        if self._conn is not None:
            self._conn.send(msg)
        else:
            self.session.send(msg, time.time_ns())

    def drain(self) -> list[tuple[int, FixMessage]]:
        items, self._inbound = self._inbound, []
        self.wake.clear()
        return items

    def close(self) -> None:
        self.store.outbound.close()

    async def run(self, stop: asyncio.Event) -> None:
        backoff_s = BACKOFF_INITIAL_S
        while not stop.is_set():
            try:
                conn = await asyncio.wait_for(
                    open_initiator(self.config.host, self.config.port, self.session, self),
                    CONNECT_TIMEOUT_S,
                )
            except (OSError, TimeoutError) as error:
                log.info("router: OCG-C connect failed (%s); retry in %.1f s", error, backoff_s)
                await _sleep(stop, backoff_s)
                backoff_s = min(backoff_s * 2, BACKOFF_MAX_S)
                continue
            logons = self.logons
            running = asyncio.create_task(conn.run())
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not running.done():
                if self.session.is_logged_on:
                    conn.logout("router stopping")
                await asyncio.wait({running}, timeout=LOGOUT_TIMEOUT_S)
                running.cancel()
            stopping.cancel()
            if running.done() and not running.cancelled() and running.exception() is not None:
                raise running.exception()  # type: ignore[misc]
            if self.logons > logons:
                backoff_s = BACKOFF_INITIAL_S  # it worked for a while: reconnect promptly
            await _sleep(stop, backoff_s)
            backoff_s = min(backoff_s * 2, BACKOFF_MAX_S)


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


class LinkThread:
    """A `FixLink` on its own event loop in a daemon thread, for a caller on another thread
    (the router's processing loop). Every call into the link runs on the link's loop, so it
    sees the session between two messages, never in the middle of one; every wait is bounded.

    `drain()` returns the queued inbound messages together with the session's next inbound
    MsgSeqNum taken at the same instant, so a number committed with them never skips one.
    `failure` holds what ended the session loop, if anything did (the caller stops)."""

    def __init__(self, config: LinkConfig, day: date, next_inbound_seq: int) -> None:
        self.config = config
        self.loop = asyncio.new_event_loop()
        self.link = FixLink(config, day, next_inbound_seq)
        self.failure: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="ocg-link", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(CALL_TIMEOUT_S):
            raise TimeoutError(f"the OCG-C link's loop did not start within {CALL_TIMEOUT_S} s")

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve())
        except BaseException as error:  # handed to the caller's thread through `failure`
            self.failure = error
            log.error("router: the OCG-C link stopped: %r", error)
        finally:
            self.loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        self._ready.set()
        await self.link.run(self._stop)

    @property
    def has_inbound(self) -> bool:
        return bool(self.link._inbound)  # a hint read across threads; `drain` is exact

    def call(self, fn: Callable[[], T], what: str) -> T:
        """Run `fn` on the link's loop; its result, within `CALL_TIMEOUT_S`."""

        async def run() -> T:
            return fn()

        future = asyncio.run_coroutine_threadsafe(run(), self.loop)
        try:
            return future.result(CALL_TIMEOUT_S)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"the OCG-C link did not {what} within {CALL_TIMEOUT_S} s") from None

    def drain(self) -> tuple[list[tuple[int, FixMessage]], int]:
        return self.call(
            lambda: (self.link.drain(), self.link.store.next_target_seq_num), "hand over messages"
        )

    def send(self, messages: list[FixMessage]) -> None:
        """Send (or number and store for the replay after the next logon) each message, in
        order; returns once all of them are in the session's store."""

        def send_all() -> None:
            for msg in messages:
                self.link.send(msg)

        if messages:
            self.call(send_all, "take messages to send")

    def close(self) -> None:
        """Log out and stop the loop; bounded by the link's own logout timeout."""
        if self._thread.is_alive() and self._stop is not None:
            stop = self._stop
            self.loop.call_soon_threadsafe(stop.set)
            self._thread.join(LOGOUT_TIMEOUT_S + CALL_TIMEOUT_S)
        self.link.close()
