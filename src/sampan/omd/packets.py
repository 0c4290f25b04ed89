"""OMD-C packets: the 16-byte header (§3.3), packing messages into packets, unpacking them.

Guarantees:
- ``encode_packet`` writes ``PktSize u16 | MsgCount u8 | Filler 1 | SeqNum u32 | SendTime u64``
  little-endian followed by the messages back to back (§3.2).
- ``pack_messages`` never builds a datagram over ``PACKET_BYTES_MAX`` (1500) including the
  28 bytes of IPv4 and UDP headers, never splits a message, never puts more than 255
  messages (MsgCount is a Uint8) in one packet, and numbers packets so each header's SeqNum
  is the sequence number of its first message (§4.1).
- ``decode_packet`` either returns every message of the packet or raises ``MalformedPacket``
  (PktSize that disagrees with the datagram, messages that overrun it or do not add up to
  MsgCount). It never raises ``IndexError`` or ``struct.error``.

Limits:
- A heartbeat is a header with MsgCount 0 and SeqNum of the previous message (§3.4.1).
- ``PacketStreamReader`` frames packets from the retransmission server's TCP byte stream;
  it holds at most ``PACKET_BYTES_MAX`` bytes of an incomplete packet.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sampan.omd.wire import Buffer, MalformedPacket, Message, decode_message

PACKET_HEADER = struct.Struct("<HBxIQ")
PACKET_HEADER_BYTES = 16
assert PACKET_HEADER.size == PACKET_HEADER_BYTES
PACKET_BYTES_MAX = 1500  # §3.2, including the multicast (IP and UDP) headers
IP_UDP_HEADER_BYTES = 28  # IPv4 20 + UDP 8
PAYLOAD_BYTES_MAX = PACKET_BYTES_MAX - IP_UDP_HEADER_BYTES - PACKET_HEADER_BYTES  # 1456
MSG_COUNT_MAX = 255  # MsgCount is a Uint8


@dataclass(frozen=True, slots=True)
class PacketHeader:
    """The header every OMD-C packet starts with."""

    pkt_size: int
    msg_count: int
    seq_num: int
    send_time_ns: int

    def encode(self) -> bytes:
        return PACKET_HEADER.pack(self.pkt_size, self.msg_count, self.seq_num, self.send_time_ns)


@dataclass(frozen=True, slots=True)
class Packet:
    """A decoded packet: message i has sequence number ``seq_num + i``."""

    seq_num: int
    send_time_ns: int
    messages: tuple[Message, ...]

    @property
    def is_heartbeat(self) -> bool:
        return not self.messages


def decode_header(buf: Buffer) -> PacketHeader:
    if len(buf) < PACKET_HEADER_BYTES:
        raise MalformedPacket(f"{len(buf)} bytes is shorter than the 16-byte packet header")
    return PacketHeader(*PACKET_HEADER.unpack_from(buf, 0))


def encode_packet(seq_num: int, send_time_ns: int, messages: Sequence[Message | bytes]) -> bytes:
    """One packet holding ``messages`` (objects or their encoded bytes), in order."""
    if len(messages) > MSG_COUNT_MAX:
        raise ValueError(f"{len(messages)} messages exceed MsgCount's maximum {MSG_COUNT_MAX}")
    body = b"".join(m if isinstance(m, bytes) else m.encode() for m in messages)
    size = PACKET_HEADER_BYTES + len(body)
    if size > 0xFFFF:
        raise ValueError(f"packet of {size} bytes does not fit PktSize")
    return PACKET_HEADER.pack(size, len(messages), seq_num, send_time_ns) + body


def encode_heartbeat(last_seq_num: int, send_time_ns: int) -> bytes:
    """A heartbeat: MsgCount 0 and SeqNum of the previous message sent on the channel."""
    return PACKET_HEADER.pack(PACKET_HEADER_BYTES, 0, last_seq_num, send_time_ns)


def pack_messages(
    first_seq_num: int,
    send_time_ns: int,
    messages: Iterable[Message | bytes],
    payload_bytes_max: int = PAYLOAD_BYTES_MAX,
) -> list[bytes]:
    """Pack ``messages`` greedily into as few packets as fit the datagram limit.

    Raises ``ValueError`` for a single message larger than ``payload_bytes_max``.
    """
    assert 4 <= payload_bytes_max <= PAYLOAD_BYTES_MAX, payload_bytes_max
    packets: list[bytes] = []
    batch: list[bytes] = []
    batch_bytes = 0
    seq = first_seq_num
    for message in messages:
        raw = message if isinstance(message, bytes) else message.encode()
        if len(raw) > payload_bytes_max:
            raise ValueError(f"a {len(raw)}-byte message cannot fit one packet")
        if batch and (batch_bytes + len(raw) > payload_bytes_max or len(batch) == MSG_COUNT_MAX):
            packets.append(encode_packet(seq, send_time_ns, batch))
            seq += len(batch)
            batch, batch_bytes = [], 0
        batch.append(raw)
        batch_bytes += len(raw)
    if batch:
        packets.append(encode_packet(seq, send_time_ns, batch))
    return packets


def decode_packet(buf: Buffer) -> Packet:
    """Decode one whole datagram (or one packet framed from the TCP stream)."""
    n = len(buf)
    if n < PACKET_HEADER_BYTES:
        raise MalformedPacket(f"{n} bytes is shorter than the 16-byte packet header")
    pkt_size, msg_count, seq_num, send_time_ns = PACKET_HEADER.unpack_from(buf, 0)
    if pkt_size != n:
        raise MalformedPacket(f"PktSize {pkt_size} but the packet has {n} bytes")
    messages: list[Message] = []
    offset = PACKET_HEADER_BYTES
    for _ in range(msg_count):
        message, offset = decode_message(buf, offset)
        messages.append(message)
    if offset != n:
        raise MalformedPacket(f"{msg_count} messages end at {offset}, PktSize is {n}")
    return Packet(seq_num, send_time_ns, tuple(messages))


class PacketStreamReader:
    """Frames whole packets out of a TCP byte stream (retransmission server, §3.5).

    Feed it received bytes; it returns the complete packets' bytes. A PktSize below the
    header size or above ``PACKET_BYTES_MAX`` raises ``MalformedPacket``: the stream has lost
    framing and the connection must be dropped.
    """

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out: list[bytes] = []
        buf = self._buf
        start = 0
        while len(buf) - start >= 2:
            (pkt_size,) = struct.unpack_from("<H", buf, start)
            if not PACKET_HEADER_BYTES <= pkt_size <= PACKET_BYTES_MAX:
                raise MalformedPacket(f"PktSize {pkt_size} in the TCP stream is out of range")
            if len(buf) - start < pkt_size:
                break
            out.append(bytes(buf[start : start + pkt_size]))
            start += pkt_size
        del buf[:start]
        return out

    @property
    def buffered_bytes(self) -> int:
        return len(self._buf)
