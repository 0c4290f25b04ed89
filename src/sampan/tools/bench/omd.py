"""``run_omd_bench``: what the feed handler costs and how long market data takes to reach Kafka.

Measures:
- ``decode_apply_msgs_per_s``: the pure core on one core (``omd_core``): decode packets and
  apply every book update, no I/O.
- ``packet_to_kafka_ms_p50_at_<rate>`` / ``_p99_at_<rate>``: a separate sender process paces a
  seeded, book-valid stream of messages 53 and 50 at ``<rate>`` messages per second onto
  lines A and B over loopback UDP, stamping each packet's SendTime as it sends it; the real
  ``OmdIngest`` with the real ``KafkaSink`` (idempotent, acks=all) runs in this process, and
  each record's latency is SendTime to the broker's delivery acknowledgement.
  ``ingest_msgs_per_s_at_<rate>`` is what the ingest applied over the run.

Limits: sender, ingest and broker share the machine. The ingest is one Python thread: at
high rates the limit is its CPU (decode, apply, Avro encode and librdkafka's produce call per
record), which shows as a growing queue and latency rather than as loss. Topics are created
under a fresh prefix and deleted afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import multiprocessing
import struct
import time
import uuid
from typing import Any

from sampan.config import Settings
from sampan.omd.packets import pack_messages
from sampan.omd_ingest.kafka_out import KafkaSink
from sampan.omd_ingest.service import IngestConfig, OmdIngest
from sampan.streams import profiles
from sampan.tools.bench.omd_core import _stream, run_decode_apply_bench

RATES_DEFAULT = (10_000, 50_000)
DURATION_S_DEFAULT = 5.0
DECODE_MESSAGES = 200_000
DRAIN_TIMEOUT_S = 60.0
ADMIN_TIMEOUT_S = 30.0
_SEND_TIME = struct.Struct("<Q")


def _send_paced(packets: list[tuple[bytes, int]], ports: tuple[int, int], rate: int) -> None:
    """Child process: send each (packet, messages) on both lines at ``rate`` messages/s."""
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 * 1024 * 1024)
    start = time.perf_counter()
    sent = 0
    for raw, count in packets:
        due = start + sent / rate
        while (now := time.perf_counter()) < due:
            if due - now > 0.002:
                time.sleep(due - now - 0.001)
        packet = bytearray(raw)
        _SEND_TIME.pack_into(packet, 8, time.time_ns())
        for port in ports:
            sock.sendto(packet, ("127.0.0.1", port))
        sent += count
    sock.close()


def _free_ports(n: int) -> list[int]:
    import socket

    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _percentile_ms(values_ns: list[int], fraction: float) -> float:
    ordered = sorted(values_ns)
    index = min(len(ordered) - 1, max(0, int(fraction * len(ordered) + 0.999999) - 1))
    return ordered[index] / 1e6


async def _measure(settings: Settings, rate: int, duration_s: float, seed: int) -> dict[str, Any]:
    messages = _stream(seed, int(rate * duration_s))
    packets = pack_messages(1, 0, messages)
    counted = []
    seq = 1
    for raw in packets:
        count = raw[2]  # MsgCount
        counted.append((raw, count))
        seq += count
    port_a, port_b, port_r = _free_ports(3)
    sink = KafkaSink(settings, linger_ms=2)
    config = IngestConfig(
        port_a=port_a, port_b=port_b, refresh_port=port_r, late_join=False, rts_port=1
    )
    ingest = OmdIngest(config, sink)
    await ingest.start()
    stop = asyncio.Event()
    task = asyncio.create_task(ingest.run(stop))
    sender = multiprocessing.get_context("spawn").Process(
        target=_send_paced, args=(counted, (port_a, port_b), rate), daemon=True
    )
    started = time.monotonic()
    sender.start()
    try:
        deadline = started + duration_s + DRAIN_TIMEOUT_S
        while ingest.feed.arbiter.next_seq_num < seq and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        applied_s = time.monotonic() - started
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await ingest.close()
        sender.join(10)
    undelivered = sink.close(DRAIN_TIMEOUT_S)
    lat = sink.latencies_ns
    result: dict[str, Any] = {
        f"packet_to_kafka_ms_p50_at_{rate}": round(_percentile_ms(lat, 0.50), 2) if lat else None,
        f"packet_to_kafka_ms_p99_at_{rate}": round(_percentile_ms(lat, 0.99), 2) if lat else None,
        f"ingest_msgs_per_s_at_{rate}": round(len(messages) / max(applied_s, 1e-9)),
        f"records_at_{rate}": sink.delivered,
        f"complete_at_{rate}": ingest.feed.arbiter.next_seq_num == seq and undelivered == 0,
        f"queue_dropped_at_{rate}": ingest.queue_dropped,
    }
    return result


def run_omd_bench(
    settings: Settings,
    rates: tuple[int, ...] = RATES_DEFAULT,
    duration_s: float = DURATION_S_DEFAULT,
    seed: int = 7,
) -> dict[str, Any]:
    """Run every measurement; returns the figures (see the module docstring)."""
    from confluent_kafka.admin import AdminClient

    from sampan import topics, topics_cli

    results: dict[str, Any] = {}
    core = run_decode_apply_bench(seed, DECODE_MESSAGES)
    results["decode_apply_msgs_per_s"] = round(core["decode_apply_msgs_per_s"])
    bench = dataclasses.replace(settings, topic_prefix=f"bench{uuid.uuid4().hex[:8]}.")
    topics_cli.apply(bench)
    try:
        for rate in rates:
            results.update(asyncio.run(_measure(bench, rate, duration_s, seed)))
    finally:
        admin = AdminClient(profiles.admin(bench))
        names = [bench.topic(t.name) for t in topics.ALL]
        for future in admin.delete_topics(names, operation_timeout=ADMIN_TIMEOUT_S).values():
            # Cleanup is best effort: the prefix is unique, a leftover topic harms nothing.
            with contextlib.suppress(Exception):
                future.result(timeout=ADMIN_TIMEOUT_S)
    return results


if __name__ == "__main__":
    from sampan.config import settings as _settings

    print(run_omd_bench(_settings()))


def run(args: Any) -> dict[str, Any]:
    """Entry for `sampan bench omd`."""
    from sampan.config import settings

    return run_omd_bench(settings(), rates=(10_000, 50_000), duration_s=5.0, seed=7)
