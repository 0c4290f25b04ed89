"""Client of the OMD-C retransmission server (§3.5, §4.3) on asyncio TCP.

Guarantees:
- ``connect`` logs on within ``timeout_s`` and raises ``RtsUnavailable`` for any failure
  (refused, timed out, SessionStatus other than 0): the caller falls back to a refresh.
- ``request`` sends one RetransmissionRequest (201) and returns the RetransStatus of its
  response within ``timeout_s``; the retransmitted packets that follow an accepted response
  are handed to ``on_packet`` as they arrive, before the next response is read, so by the
  time a later request's answer comes the earlier data has been delivered.
- A server heartbeat (a header with MsgCount 0) is echoed at once as an exact copy (the
  server disconnects after 5 s without the echo).
- Requests are serialised (the server serves them serially anyway); at most
  ``PENDING_REQUESTS_MAX`` wait for an answer.

Limits: a dropped connection fails the waiting requests with ``RtsUnavailable``; reconnecting
is the caller's decision (the next gap reconnects).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable

from sampan.omd.packets import (
    PACKET_HEADER_BYTES,
    PacketStreamReader,
    decode_packet,
    encode_packet,
)
from sampan.omd.wire import (
    Logon,
    LogonResponse,
    MalformedPacket,
    RetransmissionRequest,
    RetransmissionResponse,
)

log = logging.getLogger(__name__)

TIMEOUT_S_DEFAULT = 5.0
PENDING_REQUESTS_MAX = 64
READ_BYTES_MAX = 65_536


class RtsUnavailable(ConnectionError):
    """The retransmission server could not be reached or refused us."""


class RtsClient:
    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        on_packet: Callable[[bytes], None],
        timeout_s: float = TIMEOUT_S_DEFAULT,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self.on_packet = on_packet
        self.timeout_s = timeout_s
        self.heartbeats_echoed = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._framer = PacketStreamReader()
        self._waiting: deque[asyncio.Future[int]] = deque()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self._task is not None and not self._task.done()

    async def connect(self) -> None:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), self.timeout_s
            )
        except (OSError, TimeoutError) as exc:
            raise RtsUnavailable(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        self._framer = PacketStreamReader()
        writer.write(encode_packet(0, 0, [Logon(self.username)]))
        try:
            first = await asyncio.wait_for(self._read_packets(reader), self.timeout_s)
            response = decode_packet(first[0]).messages
        except (OSError, TimeoutError, MalformedPacket) as exc:
            writer.close()
            raise RtsUnavailable(f"no LogonResponse within {self.timeout_s} s: {exc}") from exc
        if not response or type(response[0]) is not LogonResponse:
            writer.close()
            raise RtsUnavailable(f"expected LogonResponse, got {response!r}")
        if response[0].session_status != 0:
            writer.close()
            raise RtsUnavailable(f"logon refused, SessionStatus {response[0].session_status}")
        self._reader, self._writer = reader, writer
        self._task = asyncio.create_task(self._read_loop(reader, writer, first[1:]))

    async def _read_packets(self, reader: asyncio.StreamReader) -> list[bytes]:
        while True:
            data = await reader.read(READ_BYTES_MAX)
            if not data:
                raise ConnectionError("closed by the retransmission server")
            packets = self._framer.feed(data)
            if packets:
                return packets

    async def _read_loop(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pending: list[bytes]
    ) -> None:
        try:
            while True:
                for raw in pending:
                    self._dispatch(raw, writer)
                pending = await self._read_packets(reader)
        except (OSError, MalformedPacket) as exc:
            log.warning("rts client: connection lost: %s", exc)
        finally:
            while self._waiting:
                fut = self._waiting.popleft()
                if not fut.done():
                    fut.set_exception(RtsUnavailable("connection lost"))
            writer.close()

    def _dispatch(self, raw: bytes, writer: asyncio.StreamWriter) -> None:
        if len(raw) == PACKET_HEADER_BYTES:
            writer.write(raw)  # heartbeat: echo an exact copy (§4.3)
            self.heartbeats_echoed += 1
            return
        packet = decode_packet(raw)
        if packet.messages and type(packet.messages[0]) is RetransmissionResponse:
            status = packet.messages[0].retrans_status
            if self._waiting:
                fut = self._waiting.popleft()
                if not fut.done():
                    fut.set_result(status)
            return
        self.on_packet(raw)

    async def request(self, channel_id: int, begin: int, end: int) -> int:
        """Ask for ``begin..end``; return RetransStatus (0 accepted, data follows)."""
        if not self.connected or self._writer is None:
            raise RtsUnavailable("not connected")
        if len(self._waiting) >= PENDING_REQUESTS_MAX:
            raise RtsUnavailable(f"{PENDING_REQUESTS_MAX} requests already waiting")
        async with self._lock:
            fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            self._waiting.append(fut)
            self._writer.write(encode_packet(0, 0, [RetransmissionRequest(channel_id, begin, end)]))
            try:
                return await asyncio.wait_for(fut, self.timeout_s)
            except TimeoutError as exc:
                with contextlib.suppress(ValueError):
                    self._waiting.remove(fut)  # a late answer must not meet the next request
                raise RtsUnavailable(f"no RetransmissionResponse in {self.timeout_s} s") from exc

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, self.timeout_s)
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(self._writer.wait_closed(), self.timeout_s)
