"""A line-based admin port for the simulated gateway's fault knobs, on 127.0.0.1 only.

Commands (one per line, ASCII, case-insensitive verbs), each answered by one line starting
`OK` or `ERR`, except STATUS, which answers `OK <n>` and then n lines:

    LOSE <CompID> <n>   the next n ExecutionReports on that order session are not written
                        (still numbered and stored: the client's ResendRequest heals them;
                        the drop copy still carries them)
    REJECT <CompID> <n> the next n business messages on that order session are refused
                        with a session-level Reject (35=3) and not acted on
    CUT <CompID>        abort the TCP connection of that order (or drop-copy) session
    STATUS              one line per firm: session states, sequence numbers, open orders
    QUIT                close this admin connection

Guarantees: a line longer than `LINE_BYTES_MAX` or a malformed command gets `ERR` and
changes nothing; at most `CONNECTIONS_MAX` admin connections at a time; an idle connection is
closed after `IDLE_TIMEOUT_S`. In-process callers use `Gateway.lose_reports` and `Gateway.cut`
directly; `admin_command` is the same dispatch for both.

Limits: no authentication: it binds to the loopback interface and is a test tool.
"""

from __future__ import annotations

import asyncio
import contextlib

from sampan.hkex_sim.ocg_gateway import Gateway

LINE_BYTES_MAX = 256
CONNECTIONS_MAX = 4
IDLE_TIMEOUT_S = 300.0


def admin_command(gateway: Gateway, line: str) -> list[str]:
    """Run one admin command; the reply lines."""
    words = line.split()
    if not words:
        return ["ERR empty command"]
    verb, rest = words[0].upper(), words[1:]
    try:
        if verb == "LOSE" and len(rest) == 2 and rest[1].isdigit():
            gateway.lose_reports(rest[0], int(rest[1]))
            return [f"OK lose {rest[0]} {rest[1]}"]
        if verb == "REJECT" and len(rest) == 2 and rest[1].isdigit():
            gateway.reject_next(rest[0], int(rest[1]))
            return [f"OK reject {rest[0]} {rest[1]}"]
        if verb == "CUT" and len(rest) == 1:
            if gateway.cut(rest[0]):
                return [f"OK cut {rest[0]}"]
            return [f"ERR {rest[0]} is not connected"]
        if verb == "STATUS" and not rest:
            lines = gateway.status()
            return [f"OK {len(lines)}", *lines]
    except (KeyError, ValueError) as exc:
        return [f"ERR {exc}"]
    return [f"ERR unknown or malformed command: {line[:64]!r}"]


async def serve_admin(gateway: Gateway, host: str, port: int) -> asyncio.Server:
    """Start the admin server; `port` 0 picks a free one (see `server.sockets`)."""
    assert host in ("127.0.0.1", "::1", "localhost"), "the admin port is loopback only"
    slots = asyncio.Semaphore(CONNECTIONS_MAX)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if slots.locked():
            writer.write(b"ERR too many admin connections\n")
            writer.close()
            return
        async with slots:
            try:
                await _session(gateway, reader, writer)
            except (TimeoutError, ConnectionError, asyncio.LimitOverrunError, ValueError):
                pass
            finally:
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()

    return await asyncio.start_server(handle, host, port, limit=LINE_BYTES_MAX)


async def _session(
    gateway: Gateway, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    while True:
        raw = await asyncio.wait_for(reader.readline(), IDLE_TIMEOUT_S)
        if not raw:
            return
        line = raw.decode("ascii", errors="replace").strip()
        if line.upper() == "QUIT":
            writer.write(b"OK bye\n")
            await writer.drain()
            return
        for reply in admin_command(gateway, line):
            writer.write(reply.encode("ascii", errors="replace") + b"\n")
        await writer.drain()


async def send_admin(host: str, port: int, line: str, timeout_s: float = 5.0) -> list[str]:
    """Client side, for tests and operators: send one command, return the reply lines."""
    async with asyncio.timeout(timeout_s):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(line.encode("ascii") + b"\n")
            await writer.drain()
            first = (await reader.readline()).decode("ascii").strip()
            replies = [first]
            if line.split(maxsplit=1)[0].upper() == "STATUS" and first.startswith("OK "):
                for _ in range(int(first.split()[1])):
                    replies.append((await reader.readline()).decode("ascii").strip())
            return replies
        finally:
            writer.close()
