"""The drop-copy FIX client: log on to the gateway's drop copy, write every report to Kafka.

The process: `DropCopyWriter.init` fences any previous instance; the last MsgSeqNum committed
to `hkex.dropcopy` today for this CompID is read back from the topic; the session logs on with
NextExpectedMsgSeqNum = that + 1, so the gateway replays whatever was received but not
committed before a crash (or was sent while we were away). Each inbound ExecutionReport
becomes a `DropCopyExecution` in a bounded queue; a writer task commits the queue in
transactions. On every disconnect the client waits for the queue to commit, then reconnects
with bounded exponential backoff and again asks for last committed + 1.

Guarantees: exactly once in `hkex.dropcopy` per execution report, across SIGKILL and restarts
(see `writer`); the queue holds at most `QUEUE_MAX` records: past that the client logs out and
recovers the overflow by resend after the queue drains; every wait has a timeout.

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
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sampan.config import Settings
from sampan.dropcopy.records import to_record
from sampan.dropcopy.writer import (
    DropCopyWriter,
    Outbound,
    Unmappable,
    last_committed_seq,
    seq_num_of,
)
from sampan.fix.codec import FixMessage, encode
from sampan.fix.session import Session
from sampan.fix.session_types import SessionConfig, SessionRole
from sampan.fix.store import FileSessionStore
from sampan.fix.transport import SessionConnection, open_initiator
from sampan.market.calendar import trading_day_iso

log = logging.getLogger(__name__)

QUEUE_MAX = 50_000
BATCH_MAX = 1_000
FLUSH_INTERVAL_S = 0.02
BACKOFF_INITIAL_S = 0.2
BACKOFF_MAX_S = 5.0
CONNECT_TIMEOUT_S = 5.0
DRAIN_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class ClientConfig:
    host: str
    port: int
    comp_id: str  # our drop-copy CompID
    gateway_comp_id: str = "HKEX"
    heartbeat_interval_s: int = 20
    state_dir: Path = Path(".state/dropcopy")


class DropCopyClient:
    """One drop-copy session feeding `hkex.dropcopy`. `run()` until `stop()`."""

    def __init__(self, config: ClientConfig, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.day = trading_day_iso(time.time_ns())
        self.writer = DropCopyWriter(settings, config.comp_id)
        self.last_committed_seq = 0
        self.records_written = 0
        self._queue: list[Outbound] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._stop = asyncio.Event()
        self._overflow = False
        self._store: FileSessionStore | None = None

    def stop(self) -> None:
        self._stop.set()

    # ---- the Application callbacks (synchronous, on the event loop) ---------------------

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
        self._queue.append(record)
        self._idle.clear()
        self._wake.set()
        if len(self._queue) >= QUEUE_MAX:
            # Stop taking reports; after the queue commits, the next logon asks for the rest.
            self._overflow = True
            conn.logout("client queue full")

    def on_session_ended(self, conn: SessionConnection, reason: str, was_logged_on: bool) -> None:
        log.info("drop copy %s ended: %s", self.config.comp_id, reason)

    # ---- the process -------------------------------------------------------------------

    async def run(self) -> int:
        await asyncio.to_thread(self.writer.init)
        self.last_committed_seq = await asyncio.to_thread(
            last_committed_seq, self.settings, self.config.comp_id, self.day
        )
        log.info(
            "drop copy %s: last committed MsgSeqNum %d",
            self.config.comp_id,
            self.last_committed_seq,
        )
        self._store = FileSessionStore(
            self.config.state_dir, self.config.comp_id, date.fromisoformat(self.day)
        )
        session = Session(
            SessionConfig(
                SessionRole.INITIATOR,
                self.config.comp_id,
                self.config.gateway_comp_id,
                heartbeat_interval_s=self.config.heartbeat_interval_s,
                heartbeat_interval_s_min=1,
            ),
            self._store,
        )
        writer_task = asyncio.create_task(self._write_loop())
        try:
            await self._connect_loop(session)
        finally:
            self._stop.set()
            self._wake.set()
            await asyncio.wait_for(writer_task, DRAIN_TIMEOUT_S)
            self._store.close()
        return 0

    async def _connect_loop(self, session: Session) -> None:
        backoff_s = BACKOFF_INITIAL_S
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
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _drained(self) -> None:
        if self._queue:
            self._wake.set()
            await asyncio.wait_for(self._idle.wait(), DRAIN_TIMEOUT_S)

    async def _write_loop(self) -> None:
        try:
            await self._write_batches()
        except BaseException:
            # Without a writer nothing can be committed: stop, and let the restart recover.
            log.exception("drop copy writer failed")
            self._stop.set()
            raise

    async def _write_batches(self) -> None:
        while True:
            if not self._queue:
                self._idle.set()
                if self._stop.is_set():
                    return
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), FLUSH_INTERVAL_S * 50)
                # Woken by new records or by stop: look at the queue again either way.
                continue
            batch = self._queue[:BATCH_MAX]
            await asyncio.to_thread(self.writer.write, batch)
            del self._queue[: len(batch)]
            self.last_committed_seq = max(self.last_committed_seq, seq_num_of(batch[-1]))
            self.records_written += len(batch)
