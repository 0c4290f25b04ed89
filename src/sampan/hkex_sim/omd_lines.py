"""The OMD-C lines A and B and the refresh channel: packing, seeded faults, UDP sending.

Guarantees:
- Both lines carry the same messages with the same sequence numbers; each line packs them
  with its own payload limit (``LineConfig.payload_bytes_max``), so packet boundaries differ
  between lines while every packet still fits 1,500 bytes with its IP and UDP headers.
- ``FaultShaper`` drops, duplicates and reorders packets as a pure function of its seed and
  the packets it is given: the same seed gives the same faults. A reordered packet is held
  back and sent after the next packet (or by ``release``), so at most one packet is late.
- ``UdpLine`` sends datagrams to a host and port (a multicast group in production: set the
  group as host and the TTL with ``multicast_ttl``). A send error is counted and logged,
  never raised: a publisher does not stop for one unreachable receiver.

Limits: probabilities are floats (they are not money). The refresh channel has no faults.
"""

from __future__ import annotations

import logging
import random
import socket
from dataclasses import dataclass, field

from sampan.omd.packets import PAYLOAD_BYTES_MAX, encode_heartbeat, pack_messages

log = logging.getLogger(__name__)

LINE_B_PAYLOAD_BYTES_DEFAULT = 1_000  # line B packs smaller packets than A on purpose
# The largest message the publisher sends: a 53 rewriting both sides, 12 + 24 x 40 bytes.
PAYLOAD_BYTES_MIN = 12 + 24 * 40


@dataclass(frozen=True, slots=True)
class LineFaults:
    """Per-packet probabilities of loss, duplication and late delivery on one line."""

    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for p in (self.drop, self.duplicate, self.reorder):
            assert 0.0 <= p <= 1.0, self


@dataclass(frozen=True, slots=True)
class LineConfig:
    name: str
    host: str
    port: int
    payload_bytes_max: int = PAYLOAD_BYTES_MAX
    faults: LineFaults = field(default_factory=LineFaults)

    def __post_init__(self) -> None:
        assert PAYLOAD_BYTES_MIN <= self.payload_bytes_max <= PAYLOAD_BYTES_MAX, self


@dataclass(slots=True)
class LineCounters:
    packets: int = 0
    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0
    send_errors: int = 0


class FaultShaper:
    """Applies ``LineFaults`` to a stream of packets. Pure."""

    __slots__ = ("_held", "_rng", "counters", "faults")

    def __init__(self, faults: LineFaults, counters: LineCounters) -> None:
        self.faults = faults
        self.counters = counters
        self._rng = random.Random(faults.seed)
        self._held: bytes | None = None

    def shape(self, packets: list[bytes]) -> list[bytes]:
        f, rng, out = self.faults, self._rng, []
        for packet in packets:
            if f.drop and rng.random() < f.drop:
                self.counters.dropped += 1
                continue
            copies = 2 if f.duplicate and rng.random() < f.duplicate else 1
            self.counters.duplicated += copies - 1
            if self._held is None and f.reorder and rng.random() < f.reorder:
                self._held = packet
                self.counters.reordered += 1
                continue
            out.extend([packet] * copies)
            if self._held is not None:
                out.append(self._held)
                self._held = None
        return out

    def release(self) -> list[bytes]:
        """The held-back packet, if any (called when the line goes idle)."""
        held, self._held = self._held, None
        return [held] if held is not None else []


class UdpLine:
    """One line: packs numbered messages, shapes them and sends them as datagrams."""

    def __init__(self, config: LineConfig, multicast_ttl: int = 1) -> None:
        self.config = config
        self.counters = LineCounters()
        self.shaper = FaultShaper(config.faults, self.counters)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, multicast_ttl)
        # A larger send buffer absorbs bursts (a snapshot, a catch-up step) without EAGAIN.
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
        self._addr = (config.host, config.port)

    def send_messages(self, first_seq_num: int, messages: tuple[bytes, ...], now_ns: int) -> None:
        packets = pack_messages(first_seq_num, now_ns, messages, self.config.payload_bytes_max)
        self.send_packets(self.shaper.shape(packets))

    def send_heartbeat(self, last_seq_num: int, now_ns: int) -> None:
        self.send_packets([*self.shaper.release(), encode_heartbeat(last_seq_num, now_ns)])

    def send_packets(self, packets: list[bytes]) -> None:
        for packet in packets:
            try:
                self._sock.sendto(packet, self._addr)
                self.counters.packets += 1
            except OSError as exc:  # EAGAIN under a burst, or no receiver (ECONNREFUSED)
                self.counters.send_errors += 1
                if self.counters.send_errors <= 10 or self.counters.send_errors % 1000 == 0:
                    log.warning(
                        "line %s: send failed (%d so far): %s",
                        self.config.name,
                        self.counters.send_errors,
                        exc,
                    )

    def close(self) -> None:
        self._sock.close()
