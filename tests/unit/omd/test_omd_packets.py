"""Packets: size limits, heartbeats, TCP framing."""

from __future__ import annotations

import pytest

from sampan.omd import wire
from sampan.omd.packets import (
    PACKET_BYTES_MAX,
    MalformedPacket,
    PacketStreamReader,
    decode_header,
    decode_packet,
    encode_heartbeat,
    encode_packet,
    pack_messages,
)


def test_packing_respects_1500_bytes_with_ip_udp_headers() -> None:
    big = wire.AggregateOrderBookUpdate(1, (wire.BookEntry(1, 1, 1, 0, 1, 0),) * 10)  # 252 B
    packets = pack_messages(1, 0, [big] * 20)
    assert all(len(p) + 28 <= PACKET_BYTES_MAX for p in packets)
    assert [decode_packet(p).seq_num for p in packets] == [1 + 5 * i for i in range(4)]
    assert len(packets[0]) == 16 + 5 * 252  # a sixth would need 1532 bytes with headers


def test_packing_caps_msg_count_at_255() -> None:
    packets = pack_messages(10, 0, [wire.SequenceReset(1)] * 300, payload_bytes_max=1456)
    counts = [len(decode_packet(p).messages) for p in packets]
    assert sum(counts) == 300 and max(counts) <= 255


def test_a_message_too_big_for_a_packet_is_refused() -> None:
    huge = wire.AggregateOrderBookUpdate(1, (wire.BookEntry(1, 1, 1, 0, 1, 0),) * 61)
    with pytest.raises(ValueError):
        pack_messages(1, 0, [huge])


def test_heartbeat_is_a_bare_header_with_the_previous_seq_num() -> None:
    raw = encode_heartbeat(41, 123)
    assert raw == bytes.fromhex("1000 00 00 29000000 7b00000000000000")
    packet = decode_packet(raw)
    assert packet.is_heartbeat and packet.seq_num == 41
    assert decode_header(raw).msg_count == 0


def test_stream_reader_frames_packets_split_anywhere() -> None:
    packets = pack_messages(1, 0, [wire.NominalPrice(i, i) for i in range(1, 400)])
    stream = b"".join(packets)
    reader = PacketStreamReader()
    out: list[bytes] = []
    for i in range(0, len(stream), 7):
        out.extend(reader.feed(stream[i : i + 7]))
    assert out == packets and reader.buffered_bytes == 0


def test_stream_reader_rejects_lost_framing() -> None:
    with pytest.raises(MalformedPacket):
        PacketStreamReader().feed(b"\x05\x00" + bytes(20))
    with pytest.raises(MalformedPacket):
        decode_header(b"\x00" * 15)
    with pytest.raises(ValueError):
        encode_packet(1, 0, [wire.SequenceReset(1)] * 256)
