"""The simulated OCG-C gateway: order-entry and drop-copy FIX sessions over asyncio TCP.

Each member firm has two sessions with the gateway (CompID `gateway_comp_id`, "HKEX" by
default): order entry on `order_port` under the firm's CompID, and a receive-only drop copy on
`drop_copy_port` under its own CompID. Business logic lives in `ocg_orders`; the session layer
(logon, 789, heartbeats, resend with gap-fill and PossDup) is `sampan.fix`. This module binds
them to sockets, stores and the fault knobs.

Guarantees:
- Sequence numbers and sent messages persist per session per trading day under
  `state_dir/sessions` (in memory without a state directory). Reports generated while a firm
  is disconnected are numbered, stored and delivered by the replay after its next logon.
- Every ExecutionReport sent on a firm's order session is also sent, with the same ExecID, on
  its drop-copy session. Business messages arriving on a drop copy get a
  BusinessMessageReject; the drop copy acts on nothing. A session-level Reject (35=3) a member
  sends on either session is logged at WARNING with what it names (RefSeqNum, RefTagID,
  reason, text).
- Faults (`lose_reports`, `reject_next`, `cut`) never corrupt state: a refused message gets a
  session-level Reject and is not acted on (its ClOrdID is not consumed); a lost report is numbered and stored
  exactly like a delivered one, only not written to the socket, so the client's gap detection
  and ResendRequest heal it; a cut aborts the TCP connection and both ends see it end.
- Cancel-on-disconnect (per firm) cancels the firm's open orders when its logged-on order
  session ends for any reason; the Canceled reports reach it on the next logon.

Limits: the trading day is fixed at start (no rollover while running); one connection per
session at a time; callbacks run on the event loop, so everything here is synchronous.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from sampan import credentials
from sampan.fix.codec import TAG_TEXT, DecodeError, FixDecoder, FixMessage
from sampan.fix.messages import BusinessMessageReject, BusinessRejectReason, ExecutionReport
from sampan.fix.session import Session
from sampan.fix.session_types import (
    MSG_REJECT,
    TAG_REF_MSG_TYPE,
    TAG_REF_SEQ_NUM,
    TAG_REF_TAG_ID,
    TAG_SESSION_REJECT_REASON,
    SessionConfig,
    SessionRejectReason,
    SessionRole,
    SessionState,
)
from sampan.fix.store import (
    FileSessionStore,
    MemorySessionStore,
    SessionStore,
    session_directory,
)
from sampan.fix.transport import (
    READ_BYTES_MAX,
    Application,
    Clock,
    SessionConnection,
    comp_ids,
)
from sampan.hkex_sim.ocg_ids import (
    ClOrdIdMemory,
    IdAllocator,
    next_boot,
)
from sampan.hkex_sim.ocg_orders import FirmOrderEntry, MarketPort, Outbound
from sampan.market.calendar import trading_day

log = logging.getLogger(__name__)

GATEWAY_COMP_ID = "HKEX"
FIRST_MESSAGE_TIMEOUT_S = 10.0
# A Logon is a few hundred bytes; a peer sending this much without one is not speaking FIX.
FIRST_MESSAGE_BYTES_MAX = 32 * 1024
LOSE_REPORTS_MAX = 10_000


@dataclass(frozen=True, slots=True)
class FirmConfig:
    comp_id: str  # the firm's order-entry CompID; also its account on the simulated market
    drop_copy_comp_id: str
    throttle_per_s: int = 50  # HKEX does not publish its default; 0 turns the throttle off
    cancel_on_disconnect: bool = False


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    firms: tuple[FirmConfig, ...]
    host: str = "127.0.0.1"
    order_port: int = 0  # 0: any free port (read `Gateway.order_port` after start)
    drop_copy_port: int = 0
    gateway_comp_id: str = GATEWAY_COMP_ID
    state_dir: Path | None = None

    def __post_init__(self) -> None:
        names = [f.comp_id for f in self.firms] + [f.drop_copy_comp_id for f in self.firms]
        assert len(set(names)) == len(names), "every CompID is used by one session only"


@dataclass(slots=True)
class _Link:
    """One acceptor session and its current connection, if any."""

    session: Session
    conn: SessionConnection | None = None
    writer: asyncio.StreamWriter | None = None
    lose_reports: int = 0  # order sessions only: the next N reports are not written
    reject_next: int = 0  # order sessions only: the next N business messages get a Reject

    def send(self, msg: FixMessage, now_ns: int, *, lose: bool = False) -> None:
        if lose or self.conn is None:
            # Numbered and stored, so a resend (or the next logon's replay) delivers it.
            self.session.send(msg, now_ns)
        else:
            self.conn.send(msg)


@dataclass(slots=True)
class _Firm:
    config: FirmConfig
    orders: _Link
    drop_copy: _Link
    entry: FirmOrderEntry | None = None
    stores: list[SessionStore] = field(default_factory=list)


def _log_reject(comp_id: str, msg: FixMessage) -> None:
    """A member refused one of our messages at the session level: an operator must see it."""
    log.warning(
        "session %s sent Reject: RefSeqNum %s RefMsgType %s RefTagID %s reason %s: %s",
        comp_id,
        msg.get(TAG_REF_SEQ_NUM),
        msg.get(TAG_REF_MSG_TYPE),
        msg.get(TAG_REF_TAG_ID),
        msg.get(TAG_SESSION_REJECT_REASON),
        msg.get(TAG_TEXT),
    )


class _OrderApp:
    def __init__(self, gateway: Gateway, firm: _Firm) -> None:
        self._gateway, self._firm = gateway, firm

    def on_logon(self, conn: SessionConnection) -> None:
        self._firm.orders.conn = conn
        log.info("order session %s logged on", self._firm.config.comp_id)

    def on_message(self, conn: SessionConnection, msg: FixMessage) -> None:
        if msg.msg_type == MSG_REJECT:
            _log_reject(self._firm.config.comp_id, msg)
            return
        if self._firm.orders.reject_next > 0:
            self._firm.orders.reject_next -= 1
            log.info("fault: %s seq %s refused", self._firm.config.comp_id, msg.msg_seq_num)
            conn.reject(msg, SessionRejectReason.OTHER, "refused by fault injection")
            return
        assert self._firm.entry is not None
        self._firm.entry.on_message(msg, self._gateway.clock())

    def on_session_ended(self, conn: SessionConnection, reason: str, was_logged_on: bool) -> None:
        self._firm.orders.conn = None
        log.info("order session %s ended: %s", self._firm.config.comp_id, reason)
        if was_logged_on and self._firm.config.cancel_on_disconnect:
            assert self._firm.entry is not None
            self._firm.entry.cancel_all(self._gateway.clock())


class _DropCopyApp:
    def __init__(self, gateway: Gateway, firm: _Firm) -> None:
        self._gateway, self._firm = gateway, firm

    def on_logon(self, conn: SessionConnection) -> None:
        self._firm.drop_copy.conn = conn
        log.info("drop copy %s logged on", self._firm.config.drop_copy_comp_id)

    def on_message(self, conn: SessionConnection, msg: FixMessage) -> None:
        if msg.msg_type == MSG_REJECT:
            _log_reject(self._firm.config.drop_copy_comp_id, msg)
            return
        reject = BusinessMessageReject.answering(
            msg, BusinessRejectReason.UNSUPPORTED_MESSAGE_TYPE, "drop copy is receive-only"
        )
        self._firm.drop_copy.send(reject.to_fix(), self._gateway.clock())

    def on_session_ended(self, conn: SessionConnection, reason: str, was_logged_on: bool) -> None:
        self._firm.drop_copy.conn = None


class Gateway:
    """Order entry and drop copy for `config.firms` on `market`. `start`, then `close`."""

    def __init__(self, config: GatewayConfig, market: MarketPort, clock: Clock = time.time_ns):
        self.config = config
        self.clock = clock
        self.day = trading_day(clock())
        self.ids = IdAllocator(next_boot(config.state_dir, self.day))
        self._firms: dict[str, _Firm] = {}
        self._by_comp_ids: dict[tuple[str | None, str | None], tuple[_Link, Application]] = {}
        for fc in config.firms:
            order_store = self._store(fc.comp_id)
            dc_store = self._store(fc.drop_copy_comp_id)
            firm = _Firm(
                fc,
                _Link(Session(self._session_config(fc.comp_id), order_store)),
                _Link(Session(self._session_config(fc.drop_copy_comp_id), dc_store)),
                stores=[order_store, dc_store],
            )
            firm.entry = FirmOrderEntry(
                fc.comp_id,
                market,
                self.ids,
                functools.partial(self._emit, firm),
                throttle_per_s=fc.throttle_per_s,
                cl_ord_ids=ClOrdIdMemory(self._day_dir(fc.comp_id)),
            )
            self._firms[fc.comp_id] = firm
            self._by_comp_ids[(fc.comp_id, config.gateway_comp_id)] = (
                firm.orders,
                _OrderApp(self, firm),
            )
            self._by_comp_ids[(fc.drop_copy_comp_id, config.gateway_comp_id)] = (
                firm.drop_copy,
                _DropCopyApp(self, firm),
            )
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.order_port = config.order_port
        self.drop_copy_port = config.drop_copy_port

    def _session_config(self, client_comp_id: str) -> SessionConfig:
        # Tests run with 1 s heartbeats; the acceptor adopts whatever the client asks for.
        return SessionConfig(
            SessionRole.ACCEPTOR,
            self.config.gateway_comp_id,
            client_comp_id,
            heartbeat_interval_s_min=1,
            # A secured local stack's firm password (the router's and drop copy's own file);
            # none on a PLAINTEXT stack.
            password=credentials.session_password(client_comp_id),
        )

    def _day_dir(self, comp_id: str) -> Path | None:
        if self.config.state_dir is None:
            return None
        return session_directory(self.config.state_dir / "orders", comp_id, self.day)

    def _store(self, comp_id: str) -> SessionStore:
        if self.config.state_dir is None:
            return MemorySessionStore()
        return FileSessionStore(self.config.state_dir / "sessions", comp_id, self.day)

    # ---- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.config
        orders = await asyncio.start_server(self._handle, cfg.host, cfg.order_port)
        drop = await asyncio.start_server(self._handle, cfg.host, cfg.drop_copy_port)
        self._servers = [orders, drop]
        self.order_port = orders.sockets[0].getsockname()[1]
        self.drop_copy_port = drop.sockets[0].getsockname()[1]
        log.info(
            "OCG-C gateway %s: order entry on %s:%d, drop copy on %s:%d",
            cfg.gateway_comp_id,
            cfg.host,
            self.order_port,
            cfg.host,
            self.drop_copy_port,
        )

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for firm in self._firms.values():
            for link in (firm.orders, firm.drop_copy):
                if link.writer is not None:
                    link.writer.transport.abort()
        for server in self._servers:
            await server.wait_closed()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5.0)
        for firm in self._firms.values():
            for store in firm.stores:
                if isinstance(store, FileSessionStore):
                    store.close()

    # ---- faults and status -------------------------------------------------------------

    def lose_reports(self, comp_id: str, count: int) -> None:
        """Do not write the next `count` ExecutionReports of `comp_id`'s order session."""
        firm = self._firm(comp_id)
        if not 0 <= count <= LOSE_REPORTS_MAX:
            raise ValueError(f"count must be within 0..{LOSE_REPORTS_MAX}")
        firm.orders.lose_reports = count

    def reject_next(self, comp_id: str, count: int) -> None:
        """Refuse the next `count` business messages of `comp_id`'s order session with a
        session-level Reject (35=3) instead of acting on them."""
        firm = self._firm(comp_id)
        if not 0 <= count <= LOSE_REPORTS_MAX:
            raise ValueError(f"count must be within 0..{LOSE_REPORTS_MAX}")
        firm.orders.reject_next = count

    def cut(self, comp_id: str) -> bool:
        """Abort the TCP connection of `comp_id`'s order (or drop-copy) session; False if none."""
        for firm in self._firms.values():
            for name, link in (
                (firm.config.comp_id, firm.orders),
                (firm.config.drop_copy_comp_id, firm.drop_copy),
            ):
                if name == comp_id and link.writer is not None:
                    link.writer.transport.abort()
                    return True
        self._firm_or_drop_copy_exists(comp_id)
        return False

    def status(self) -> list[str]:
        lines = []
        for firm in self._firms.values():
            o, d = firm.orders.session, firm.drop_copy.session
            assert firm.entry is not None
            lines.append(
                f"{firm.config.comp_id} order={o.state} out={o.store.next_sender_seq_num}"
                f" in={o.store.next_target_seq_num} open_orders={firm.entry.open_order_count()}"
                f" lose_pending={firm.orders.lose_reports}"
                f" | {firm.config.drop_copy_comp_id} dropcopy={d.state}"
                f" out={d.store.next_sender_seq_num}"
            )
        return lines

    def _firm(self, comp_id: str) -> _Firm:
        firm = self._firms.get(comp_id)
        if firm is None:
            raise KeyError(f"unknown CompID {comp_id!r}")
        return firm

    def _firm_or_drop_copy_exists(self, comp_id: str) -> None:
        known = {f.config.drop_copy_comp_id for f in self._firms.values()} | set(self._firms)
        if comp_id not in known:
            raise KeyError(f"unknown CompID {comp_id!r}")

    # ---- plumbing ----------------------------------------------------------------------

    def _emit(self, firm: _Firm, out: Outbound) -> None:
        msg = out.to_fix()
        now_ns = self.clock()
        if isinstance(out, ExecutionReport):
            lose = firm.orders.lose_reports > 0
            if lose:
                firm.orders.lose_reports -= 1
                log.info("fault: report %s to %s not written", out.exec_id, firm.config.comp_id)
            firm.orders.send(msg, now_ns, lose=lose)
            firm.drop_copy.send(msg, now_ns)
        else:
            firm.orders.send(msg, now_ns)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        finally:
            self._tasks.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = FixDecoder()
        try:
            first = await asyncio.wait_for(_first_items(reader, decoder), FIRST_MESSAGE_TIMEOUT_S)
        except (TimeoutError, ConnectionError):
            first = []
        logon = next((i for i in first if isinstance(i, FixMessage)), None)
        bound = self._by_comp_ids.get(comp_ids(logon)) if logon is not None else None
        if bound is None or bound[0].session.state is not SessionState.DISCONNECTED:
            # A stranger, or a second connection for a connected session (one per CompID).
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            return
        link, app = bound
        link.writer = writer
        conn = SessionConnection(
            link.session,
            reader,
            writer,
            app,
            clock=self.clock,
            decoder=decoder,
        )
        try:
            await conn.run(already_read=first)
        finally:
            if link.writer is writer:
                link.writer = None
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def _first_items(
    reader: asyncio.StreamReader, decoder: FixDecoder
) -> list[FixMessage | DecodeError]:
    """Read until one whole message arrived or the peer closed; bounded by bytes."""
    items: list[FixMessage | DecodeError] = []
    bytes_read = 0
    while bytes_read < FIRST_MESSAGE_BYTES_MAX and not any(
        isinstance(i, FixMessage) for i in items
    ):
        data = await reader.read(READ_BYTES_MAX)
        if not data:
            break
        bytes_read += len(data)
        items += decoder.feed(data)
    return items
