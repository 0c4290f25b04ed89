"""The drop-copy FIX client: log on to the gateway's drop copy, write every report to Kafka.

The process runs on the streams runtime (`sampan.streams.runtime`) with the client as its agent:
the runtime's `init_transactions` fences any previous instance; the last MsgSeqNum committed
to `hkex.dropcopy` today for this CompID is read back from the topic (`started`); the FIX
session, on its own event loop in a thread, logs on with NextExpectedMsgSeqNum = that + 1, so
the gateway replays whatever was received but not committed before a crash (or was sent while
we were away). Each inbound ExecutionReport becomes a `DropCopyExecution` in a bounded queue;
each batch of the runtime takes up to `BATCH_MAX` of them (`end_batch`) into one transaction.
After an abort (a broker restart) the batch goes back to the head of the queue and is written
again (`reset`). On every disconnect the session waits for the queue to commit, then
reconnects with bounded exponential backoff and again asks for last committed + 1.

Guarantees: exactly once in `hkex.dropcopy` per execution report, across SIGKILL, broker
restarts and restarts (see `writer`); the queue holds at most `QUEUE_MAX` records: past that
the client logs out and recovers the overflow by resend after the queue drains; every wait has
a timeout; transaction calls have the runtime's deadlines, retries and stall watchdog.

Limits: our own outbound sequence numbers (Logon, Heartbeat) persist in a FileSessionStore
under the state directory; losing that directory makes the gateway refuse our Logon
(MsgSeqNum too low) until its day ends. One trading day per run of the loop: a new day needs a
restart. A report that cannot be mapped is dead-lettered on `hkex.dropcopy.dlq`, in order with
the records around it (see `writer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from sampan import credentials
from sampan.config import Settings
from sampan.dropcopy.records import to_record
from sampan.dropcopy.writer import (
    Outbound,
    Unmappable,
    encode_outbound,
    last_committed_seq,
    seq_num_of,
)
from sampan.fix.codec import FixMessage, encode
from sampan.fix.session import Session
from sampan.fix.session_types import SessionConfig, SessionRole
from sampan.fix.store import FileSessionStore
from sampan.fix.transport import SessionConnection, open_initiator
from sampan.market.calendar import trading_day_iso
from sampan.streams.runtime import AgentConfig, AgentRunner, InRecord, Output

log = logging.getLogger(__name__)

# The drop-copy Logon password on a real gateway: this variable, or a file named in ..._FILE.
PASSWORD_ENV = "SAMPAN_DROPCOPY_PASSWORD"  # noqa: S105 - a variable name
QUEUE_MAX = 50_000
BATCH_MAX = 1_000
DRAIN_POLL_S = 0.02
BACKOFF_INITIAL_S = 0.2
BACKOFF_MAX_S = 5.0
CONNECT_TIMEOUT_S = 5.0
DRAIN_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
POLL_TIMEOUT_S = 0.005


@dataclass(frozen=True, slots=True)
class ClientConfig:
    host: str
    port: int
    comp_id: str  # our drop-copy CompID
    gateway_comp_id: str = "HKEX"
    heartbeat_interval_s: int = 20
    state_dir: Path = Path(".state/dropcopy")


class DropCopyClient:
    """One drop-copy session feeding `hkex.dropcopy`: a streams agent with no Kafka input."""

    inputs: Mapping[str, str] = {}

    def __init__(self, config: ClientConfig, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.name = f"dropcopy-{config.comp_id}"
        self.day = trading_day_iso(time.time_ns())
        self.last_committed_seq = 0
        self.records_written = 0
        self._lock = threading.Lock()  # guards the queue and the batch in flight
        self._queue: list[Outbound] = []
        self._in_flight: list[Outbound] = []
        self._overflow = False
        self._store: FileSessionStore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self.failure: BaseException | None = None

    # ---- the Application callbacks (synchronous, on the session's event loop) -----------

    def on_logon(self, conn: SessionConnection) -> None:
        log.info("drop copy %s logged on", self.config.comp_id)

    def on_message(self, conn: SessionConnection, msg: FixMessage) -> None:
        if msg.msg_type != "8" or self._overflow:
            return
        record: Outbound
        try:
            record = to_record(msg)
        except (ValueError, KeyError) as exc:  # FieldError is a ValueError
            # The session delivers only sequenced messages: MsgSeqNum is there.
            assert msg.msg_seq_num is not None
            log.error("drop copy: unmappable report %s dead-lettered: %s", msg.msg_seq_num, exc)
            error = f"unmappable ExecutionReport: {type(exc).__name__}: {exc}"
            record = Unmappable(msg.msg_seq_num, encode(msg), error, time.time_ns())
        with self._lock:
            self._queue.append(record)
            full = len(self._queue) >= QUEUE_MAX
        if full:
            # Stop taking reports; after the queue commits, the next logon asks for the rest.
            self._overflow = True
            conn.logout("client queue full")

    def on_session_ended(self, conn: SessionConnection, reason: str, was_logged_on: bool) -> None:
        log.info("drop copy %s ended: %s", self.config.comp_id, reason)

    # ---- the streams agent (on the runtime's thread) ---------------------------------------

    def started(self, consumer: Any) -> None:
        """Transactions are initialised (any earlier instance fenced): find where Kafka stands,
        then open the session on its own loop."""
        self.last_committed_seq = last_committed_seq(self.settings, self.config.comp_id, self.day)
        log.info(
            "drop copy %s: last committed MsgSeqNum %d",
            self.config.comp_id,
            self.last_committed_seq,
        )
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._session_main, args=(ready,), name="dropcopy-session", daemon=True
        )
        self._thread.start()
        if not ready.wait(STOP_TIMEOUT_S):
            raise TimeoutError(f"the drop-copy session did not start within {STOP_TIMEOUT_S} s")

    def pending(self) -> bool:
        if self.failure is not None:
            raise RuntimeError("the drop-copy session stopped") from self.failure
        with self._lock:
            return bool(self._queue)

    def handle(self, record: InRecord) -> Iterable[Output]:
        raise AssertionError("the drop copy has no Kafka input")

    def end_batch(self) -> Iterable[Output]:
        with self._lock:
            batch = self._queue[:BATCH_MAX]
            del self._queue[:BATCH_MAX]
            self._in_flight.extend(batch)
        return [encode_outbound(self.settings, self.config.comp_id, item) for item in batch]

    def committed(self) -> None:
        # Under the lock: the session reconnects from last_committed_seq once nothing is in
        # flight, so both must change together.
        with self._lock:
            batch, self._in_flight = self._in_flight, []
            if batch:
                self.last_committed_seq = max(self.last_committed_seq, seq_num_of(batch[-1]))
                self.records_written += len(batch)

    def reset(self) -> None:
        """After an abort: the batch goes back to the head of the queue, to be written again."""
        with self._lock:
            self._queue[:0] = self._in_flight
            self._in_flight = []

    def stopping(self) -> Iterable[Output]:
        """On a clean stop: write what is queued."""
        return self.end_batch()

    def assigned(self, partitions: Sequence[tuple[str, int]], consumer: Any) -> None:
        return None

    def revoked(self, partitions: Sequence[tuple[str, int]]) -> None:
        return None

    def close(self) -> None:
        """Log out and stop the session's loop (bounded)."""
        if self._loop is not None and self._stop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(STOP_TIMEOUT_S)

    def _committed_all(self) -> bool:
        with self._lock:
            return not self._queue and not self._in_flight

    # ---- the session (on its own event loop) ------------------------------------------------

    def _session_main(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._session(ready))
        except BaseException as error:  # handed to the runtime's thread through `failure`
            self.failure = error
            log.error("drop copy: the session loop stopped: %r", error)
        finally:
            self._loop.close()

    async def _session(self, ready: threading.Event) -> None:
        self._stop = asyncio.Event()
        self._store = FileSessionStore(
            self.config.state_dir, self.config.comp_id, date.fromisoformat(self.day)
        )
        ready.set()
        session = Session(
            SessionConfig(
                SessionRole.INITIATOR,
                self.config.comp_id,
                self.config.gateway_comp_id,
                heartbeat_interval_s=self.config.heartbeat_interval_s,
                heartbeat_interval_s_min=1,
                password=credentials.session_password(self.config.comp_id, PASSWORD_ENV),
            ),
            self._store,
        )
        try:
            await self._connect_loop(session)
        finally:
            self._store.close()

    async def _connect_loop(self, session: Session) -> None:
        backoff_s = BACKOFF_INITIAL_S
        assert self._stop is not None
        while not self._stop.is_set():
            await self._drained()
            assert self._store is not None
            # Resume from what Kafka holds, never from what the session merely received.
            self._store.set_next_target_seq_num(self.last_committed_seq + 1)
            self._overflow = False
            try:
                conn = await asyncio.wait_for(
                    open_initiator(self.config.host, self.config.port, session, self),
                    CONNECT_TIMEOUT_S,
                )
            except (OSError, TimeoutError) as exc:
                log.info("drop copy: connect failed (%s); retry in %.1f s", exc, backoff_s)
                await self._sleep(backoff_s)
                backoff_s = min(backoff_s * 2, BACKOFF_MAX_S)
                continue
            run = asyncio.create_task(conn.run())
            stop = asyncio.create_task(self._stop.wait())
            await asyncio.wait({run, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not run.done():
                if self._stop.is_set() and session.is_logged_on:
                    conn.logout("client stopping")
                await asyncio.wait({run}, timeout=5.0)
                run.cancel()
            stop.cancel()
            if session.store.next_target_seq_num > self.last_committed_seq + 1:
                backoff_s = BACKOFF_INITIAL_S  # we got somewhere: reconnect promptly
            await self._sleep(backoff_s)
            backoff_s = min(backoff_s * 2, BACKOFF_MAX_S)

    async def _sleep(self, seconds: float) -> None:
        assert self._stop is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _drained(self) -> None:
        """Wait until everything received has been committed (the runtime writes it)."""
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while not self._committed_all():
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the drop copy's queue was not committed within {DRAIN_TIMEOUT_S} s"
                )
            await asyncio.sleep(DRAIN_POLL_S)


def run(config: ClientConfig, settings: Settings, agent: AgentConfig | None = None) -> int:
    """Run the drop copy until SIGTERM/SIGINT; the exit status."""
    agent_config = agent or AgentConfig(poll_timeout_s=POLL_TIMEOUT_S)
    return AgentRunner(DropCopyClient(config, settings), settings, agent_config).run()
