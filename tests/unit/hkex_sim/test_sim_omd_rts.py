"""The retransmission server: the spec's limits and status codes, and its TCP behaviour."""

from __future__ import annotations

import asyncio
import logging

import pytest

from sampan.hkex_sim.omd_publisher import MessageStore
from sampan.hkex_sim.rts import (
    RETRANS_BAD_CHANNEL,
    RETRANS_DAILY_LIMIT,
    RETRANS_OK,
    RETRANS_RANGE_TOO_BIG,
    RETRANS_UNAVAILABLE,
    SESSION_ACTIVE,
    SESSION_ALREADY_CONNECTED,
    SESSION_INVALID_USER,
    RetransmissionServer,
    RetransmissionService,
    RtsLimits,
)
from sampan.omd.packets import PacketStreamReader, decode_packet, encode_packet
from sampan.omd.wire import (
    Logon,
    LogonResponse,
    NominalPrice,
    RetransmissionRequest,
    RetransmissionResponse,
)


def _store(count: int, capacity: int = 50_000) -> MessageStore:
    store = MessageStore(capacity)
    for seq in range(1, count + 1):
        store.append(seq, NominalPrice(700, seq).encode())
    return store


def test_status_codes_and_limits() -> None:
    service = RetransmissionService({1: _store(60_000)}, RtsLimits(requests_per_day_max=5))
    assert service.logon("u1") == SESSION_ACTIVE
    assert service.logon("u1") == SESSION_ALREADY_CONNECTED

    def status(channel: int, begin: int, end: int) -> int:
        answer = service.request("u1", RetransmissionRequest(channel, begin, end))
        assert not answer.close
        return answer.response.retrans_status

    assert status(2, 59_000, 59_010) == RETRANS_BAD_CHANNEL
    assert status(1, 40_000, 50_000) == RETRANS_RANGE_TOO_BIG  # 10,001 messages
    assert status(1, 9_000, 9_010) == RETRANS_UNAVAILABLE  # older than the last 50,000
    assert status(1, 59_990, 60_001) == RETRANS_UNAVAILABLE  # not yet sent
    ok = service.request("u1", RetransmissionRequest(1, 50_001, 60_000))  # exactly 10,000
    assert ok.response.retrans_status == RETRANS_OK
    seqs = []
    for raw in ok.packets:
        packet = decode_packet(raw)
        seqs.extend(range(packet.seq_num, packet.seq_num + len(packet.messages)))
        assert all(
            isinstance(m, NominalPrice) and m.nominal_price_e3 == s
            for s, m in zip(range(packet.seq_num, 10**9), packet.messages, strict=False)
        )
    assert seqs == list(range(50_001, 60_001))
    over = service.request("u1", RetransmissionRequest(1, 59_000, 59_001))
    assert over.response.retrans_status == RETRANS_DAILY_LIMIT and over.close
    service.new_day()
    assert status(1, 59_000, 59_001) == RETRANS_OK


def test_unknown_user_is_refused() -> None:
    service = RetransmissionService({1: _store(10)}, users=frozenset({"alice"}))
    assert service.logon("mallory") == SESSION_INVALID_USER
    assert service.logon("alice") == SESSION_ACTIVE
    service.logoff("alice")
    assert service.logon("alice") == SESSION_ACTIVE


async def _read(reader: asyncio.StreamReader, framer: PacketStreamReader) -> list[bytes]:
    while True:
        data = await asyncio.wait_for(reader.read(65536), timeout=5)
        assert data, "server closed"
        packets = framer.feed(data)
        if packets:
            return packets


def test_tcp_session_logon_request_heartbeat() -> None:
    async def scenario() -> None:
        limits = RtsLimits(heartbeat_interval_s=0.2, heartbeat_timeout_s=0.3)
        server = RetransmissionServer(RetransmissionService({1: _store(100)}, limits))
        port = await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            framer = PacketStreamReader()
            writer.write(encode_packet(0, 0, [Logon("u1")]))
            (resp,) = await _read(reader, framer)
            assert decode_packet(resp).messages == (LogonResponse(SESSION_ACTIVE),)
            writer.write(encode_packet(0, 0, [RetransmissionRequest(1, 10, 20)]))
            got: list[object] = []
            while len(got) < 12:
                for raw in await _read(reader, framer):
                    got.extend(decode_packet(raw).messages)
            assert got[0] == RetransmissionResponse(1, RETRANS_OK, 10, 20)
            assert [m.nominal_price_e3 for m in got[1:]] == list(range(10, 21))  # type: ignore[attr-defined]
            # Echo two heartbeats: the session stays up.
            for _ in range(2):
                (hb,) = await _read(reader, framer)
                assert decode_packet(hb).is_heartbeat
                writer.write(hb)
            # Stop echoing: the server disconnects within interval + timeout.
            await asyncio.wait_for(_drain_until_closed(reader), timeout=3)
            writer.close()
        finally:
            await server.close()

    asyncio.run(scenario())


async def _drain_until_closed(reader: asyncio.StreamReader) -> None:
    while await reader.read(65536):
        pass


def test_tcp_garbage_and_silence_disconnect() -> None:
    async def scenario() -> None:
        limits = RtsLimits(logon_timeout_s=0.2)
        server = RetransmissionServer(RetransmissionService({1: _store(10)}, limits))
        port = await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"\xff\xff garbage that is no packet")
            await asyncio.wait_for(_drain_until_closed(reader), timeout=3)
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await asyncio.wait_for(_drain_until_closed(reader), timeout=3)  # no logon
            writer.close()
        finally:
            await server.close()

    asyncio.run(scenario())


def test_stopping_with_a_client_connected_logs_no_error(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        server = RetransmissionServer(RetransmissionService({1: _store(10)}))
        port = await server.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        framer = PacketStreamReader()
        writer.write(encode_packet(0, 0, [Logon("u1")]))
        (resp,) = await _read(reader, framer)
        assert decode_packet(resp).messages == (LogonResponse(SESSION_ACTIVE),)
        await asyncio.wait_for(server.close(), timeout=10)
        await asyncio.wait_for(_drain_until_closed(reader), timeout=3)  # the server hung up
        writer.close()
        await asyncio.sleep(0.05)  # let asyncio run the connection task's done callbacks

    with caplog.at_level(logging.INFO):
        asyncio.run(scenario())
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not errors, [r.getMessage() for r in errors]
    assert any("server stopping" in r.getMessage() for r in caplog.records)
