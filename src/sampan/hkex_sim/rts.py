"""The OMD-C retransmission server (§3.5, §4.3): a pure rule book and its asyncio TCP shell.

Guarantees:
- ``RetransmissionService`` answers Logon (101) with LogonResponse (102): 0 active, 5 unknown
  username (when a user list is configured), 100 already connected. It answers each
  RetransmissionRequest (201) with a RetransmissionResponse (202) and, when accepted, the
  requested messages packed into packets with their original sequence numbers (framed
  afresh, as §4.3 allows). Checks in order: daily limit (101; the server then closes the
  connection), channel (1), range over ``range_max`` (100), messages not held (2). Every
  request counts towards the user's daily limit, accepted or not.
- Limits are the spec's by default: the last 50,000 messages, 10,000 per request, 1,000
  requests per day per user; ``new_day`` resets the counts.
- ``RetransmissionServer`` sends a heartbeat (a header with MsgCount 0) every
  ``heartbeat_interval_s`` and closes a connection whose echo does not come back within
  ``heartbeat_timeout_s``, or that does not log on within ``logon_timeout_s``. A client
  that sends bytes that do not frame as packets is disconnected, never crashes the server.

Limits: one session per username; requests on a session are served serially. Packets to the
client use header SeqNum 0 and SendTime 0 for 102/202, as §3.5 says they are not relevant.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sampan.hkex_sim.omd_publisher import MessageStore
from sampan.omd.packets import (
    PACKET_HEADER_BYTES,
    PacketStreamReader,
    decode_packet,
    encode_packet,
    pack_messages,
)
from sampan.omd.wire import (
    Logon,
    LogonResponse,
    MalformedPacket,
    RetransmissionRequest,
    RetransmissionResponse,
)

log = logging.getLogger(__name__)

RANGE_MAX = 10_000
REQUESTS_PER_DAY_MAX = 1_000
LOGON_TIMEOUT_S = 5.0
HEARTBEAT_INTERVAL_S = 30.0
HEARTBEAT_TIMEOUT_S = 5.0
READ_BYTES_MAX = 65_536
CLOSE_TIMEOUT_S = 5.0

SESSION_ACTIVE = 0
SESSION_INVALID_USER = 5
SESSION_ALREADY_CONNECTED = 100
RETRANS_OK = 0
RETRANS_BAD_CHANNEL = 1
RETRANS_UNAVAILABLE = 2
RETRANS_RANGE_TOO_BIG = 100
RETRANS_DAILY_LIMIT = 101


@dataclass(frozen=True, slots=True)
class RtsLimits:
    range_max: int = RANGE_MAX
    requests_per_day_max: int = REQUESTS_PER_DAY_MAX
    logon_timeout_s: float = LOGON_TIMEOUT_S
    heartbeat_interval_s: float = HEARTBEAT_INTERVAL_S
    heartbeat_timeout_s: float = HEARTBEAT_TIMEOUT_S


@dataclass(frozen=True, slots=True)
class RetransAnswer:
    """The response, the packets that follow it, and whether to close the connection."""

    response: RetransmissionResponse
    packets: tuple[bytes, ...] = ()
    close: bool = False


@dataclass(slots=True)
class RetransmissionService:
    """The rules of the retransmission server over one or more channels' stores."""

    stores: dict[int, MessageStore]
    limits: RtsLimits = RtsLimits()
    users: frozenset[str] = frozenset()  # empty: any username is accepted
    _connected: set[str] = field(default_factory=set)
    _requests: dict[str, int] = field(default_factory=dict)

    def logon(self, username: str) -> int:
        if self.users and username not in self.users:
            return SESSION_INVALID_USER
        if username in self._connected:
            return SESSION_ALREADY_CONNECTED
        self._connected.add(username)
        return SESSION_ACTIVE

    def logoff(self, username: str) -> None:
        self._connected.discard(username)

    def new_day(self) -> None:
        self._requests.clear()

    def requests_made(self, username: str) -> int:
        return self._requests.get(username, 0)

    def request(self, username: str, req: RetransmissionRequest) -> RetransAnswer:
        count = self._requests[username] = self._requests.get(username, 0) + 1
        begin, end = req.begin_seq_num, req.end_seq_num

        def answer(status: int) -> RetransmissionResponse:
            return RetransmissionResponse(req.channel_id, status, begin, end)

        if count > self.limits.requests_per_day_max:
            return RetransAnswer(answer(RETRANS_DAILY_LIMIT), close=True)
        store = self.stores.get(req.channel_id)
        if store is None:
            return RetransAnswer(answer(RETRANS_BAD_CHANNEL))
        if end < begin or end - begin + 1 > self.limits.range_max:
            return RetransAnswer(answer(RETRANS_RANGE_TOO_BIG))
        if not store.holds(begin, end):
            return RetransAnswer(answer(RETRANS_UNAVAILABLE))
        packets = pack_messages(begin, 0, store.get(begin, end))
        return RetransAnswer(answer(RETRANS_OK), tuple(packets))


def _control_packet(message: LogonResponse | RetransmissionResponse) -> bytes:
    return encode_packet(0, 0, [message])


class RetransmissionServer:
    """Serves ``RetransmissionService`` over TCP. ``start`` binds; ``close`` stops."""

    def __init__(
        self,
        service: RetransmissionService,
        host: str = "127.0.0.1",
        port: int = 0,
        clock_ns: Callable[[], int] | None = None,
    ) -> None:
        self.service = service
        self.host = host
        self.port = port
        self._clock_ns = clock_ns or (lambda: 0)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._closing = False

    async def start(self) -> int:
        """Listen; return the bound port (useful with port 0)."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        """Stop listening and end every session: their connections are aborted, so each
        session task ends as a disconnect (logged at INFO), never as a cancelled task."""
        if self._server is not None:
            self._server.close()
            self._closing = True
            for writer in list(self._writers):
                writer.transport.abort()
            tasks = list(self._tasks)
            if tasks:
                _, pending = await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT_S)
                for task in pending:
                    task.cancel()  # _serve turns a cancellation into a normal end
                await asyncio.gather(*pending, return_exceptions=True)
            await asyncio.wait_for(self._server.wait_closed(), timeout=CLOSE_TIMEOUT_S)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        peer = writer.get_extra_info("peername")
        username: str | None = None
        try:
            username = await self._session(reader, writer)
        except (MalformedPacket, ConnectionError, asyncio.IncompleteReadError) as exc:
            why = "server stopping" if self._closing else str(exc)
            log.info("rts: %s disconnected: %s", peer, why)
        except TimeoutError as exc:
            log.info("rts: %s timed out: %s", peer, exc)
        except asyncio.CancelledError:
            # Only close() cancels a session, after its bounded wait. asyncio's stream server
            # logs a cancelled connection task as an ERROR with a traceback (Python 3.11), so
            # the session ends normally instead.
            log.info("rts: %s disconnected: server stopping", peer)
        finally:
            self._writers.discard(writer)
            if username is not None:
                self.service.logoff(username)
            writer.close()
            with contextlib.suppress(ConnectionError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), timeout=2.0)
            self._tasks.discard(task)

    async def _session(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> str | None:
        """Run one connection; return the logged-on username (for logoff), if any."""
        limits = self.service.limits
        framer = PacketStreamReader()
        first = await _read_packets(reader, framer, limits.logon_timeout_s, "no Logon in time")
        logon = decode_packet(first[0]).messages
        if not logon or type(logon[0]) is not Logon:
            raise MalformedPacket("the first packet is not a Logon")
        username = logon[0].username
        status = self.service.logon(username)
        writer.write(_control_packet(LogonResponse(status)))
        await writer.drain()
        if status != SESSION_ACTIVE:
            return None
        pending = first[1:]
        heartbeat_sent: bytes | None = None
        heartbeat_deadline = 0.0
        loop = asyncio.get_running_loop()
        heartbeat_due = loop.time() + limits.heartbeat_interval_s
        while True:
            for raw in pending:
                if heartbeat_sent is not None and raw == heartbeat_sent:
                    heartbeat_sent = None  # the echo (§4.3): an exact copy
                    continue
                if await self._handle(raw, username, writer):
                    return username
            wait_s = heartbeat_due - loop.time()
            if heartbeat_sent is not None:
                wait_s = min(wait_s, heartbeat_deadline - loop.time())
            try:
                pending = await _read_packets(reader, framer, max(wait_s, 0.0), "")
            except TimeoutError:
                pending = []
            now = loop.time()
            if heartbeat_sent is not None and now >= heartbeat_deadline and not pending:
                raise TimeoutError("no heartbeat echo in time")
            if heartbeat_sent is None and now >= heartbeat_due:
                heartbeat_sent = encode_packet(0, self._clock_ns(), [])
                writer.write(heartbeat_sent)
                await writer.drain()
                heartbeat_deadline = now + limits.heartbeat_timeout_s
                heartbeat_due = now + limits.heartbeat_interval_s

    async def _handle(self, raw: bytes, username: str, writer: asyncio.StreamWriter) -> bool:
        """Serve one client packet; True when the connection must close."""
        if len(raw) == PACKET_HEADER_BYTES:
            return False  # a stray heartbeat copy: nothing to do
        messages = decode_packet(raw).messages
        for message in messages:
            if type(message) is not RetransmissionRequest:
                raise MalformedPacket(f"unexpected {type(message).__name__} from a client")
            answer = self.service.request(username, message)
            writer.write(_control_packet(answer.response))
            for packet in answer.packets:
                writer.write(packet)
            await writer.drain()
            if answer.close:
                return True
        return False


async def _read_packets(
    reader: asyncio.StreamReader, framer: PacketStreamReader, timeout_s: float, why: str
) -> list[bytes]:
    """At least one whole packet, within ``timeout_s`` (TimeoutError carries ``why``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        remaining_s = deadline - loop.time()
        if remaining_s <= 0:
            raise TimeoutError(why)
        try:
            data = await asyncio.wait_for(reader.read(READ_BYTES_MAX), remaining_s)
        except TimeoutError:
            raise TimeoutError(why) from None
        if not data:
            raise ConnectionError("closed by the client")
        packets = framer.feed(data)
        if packets:
            return packets
