"""`sampan bench floor`: what the broker itself gives, to read sampan's latencies against.

Two figures, measured on the same broker in the same run as whatever they are compared with:

- Kafka's own end-to-end latency tool (`org.apache.kafka.tools.EndToEndLatency` from the
  assembled jars, a Java producer with acks=all and a consumer, one record at a time): p50,
  p99, p99.9 of produce → consume;
- a transactional produce-and-commit round trip from Python (confluent-kafka, the client every
  sampan agent uses): begin, produce one record, commit, one at a time: p50, p99, p99.9.

Both run on a topic of their own (one partition, created and deleted here). Limits: the tool's
JVM starts cold (its first records include JIT warm-up; the percentiles cover them); on a
shared machine both move with the load, so compare within one run.
"""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from typing import Any

from sampan import topics_cli
from sampan.config import Settings, settings
from sampan.errors import SampanError
from sampan.stack import ensure_kafka_jars
from sampan.streams import profiles
from sampan.tools.bench.cli import percentile

E2E_RECORDS = 2_000
TXN_ROUNDS = 500
RECORD_BYTES = 100
TOOL_TIMEOUT_S = 300
ADMIN_TIMEOUT_S = 30.0
_PERCENTILES = re.compile(
    r"50th\s*=\s*([\d.]+),\s*99th\s*=\s*([\d.]+),\s*99\.9th\s*=\s*([\d.]+)", re.IGNORECASE
)


def parse_tool_output(text: str) -> dict[str, float]:
    """The percentiles line EndToEndLatency prints ("Percentiles: 50th = 1, 99th = 3, ...")."""
    found = _PERCENTILES.search(text)
    if found is None:
        raise SampanError(f"EndToEndLatency printed no percentiles:\n{text[-2000:]}")
    p50, p99, p999 = (float(v) for v in found.groups())
    return {
        "floor_kafka_e2e_ms_p50": p50,
        "floor_kafka_e2e_ms_p99": p99,
        "floor_kafka_e2e_ms_p999": p999,
    }


def _topic(current: Settings, name: str) -> None:
    topics_cli.create_scratch_topic(current, name)


def _delete(current: Settings, name: str) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(
        profiles.admin(current)
    )  # held until the answer: a dropped client aborts it
    for future in admin.delete_topics([name], operation_timeout=ADMIN_TIMEOUT_S).values():
        future.result(timeout=ADMIN_TIMEOUT_S)


def kafka_tool(current: Settings, topic: str, records: int) -> dict[str, float]:
    libs = ensure_kafka_jars(progress=False)
    command = [
        "java",
        "-Xmx256m",
        "-cp",
        f"{libs}/*",
        "org.apache.kafka.tools.EndToEndLatency",
        current.kafka_bootstrap,
        topic,
        str(records),
        "all",
        str(RECORD_BYTES),
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise SampanError(f"EndToEndLatency did not finish within {TOOL_TIMEOUT_S} s") from None
    if result.returncode != 0:
        raise SampanError(
            f"EndToEndLatency failed:\n{result.stdout[-1500:]}{result.stderr[-1500:]}"
        )
    return parse_tool_output(result.stdout)


def python_transactions(current: Settings, topic: str, rounds: int) -> dict[str, float]:
    from confluent_kafka import Producer

    # The agents' own transactional profile (linger 1 ms, acks=all, idempotent).
    producer = Producer(
        profiles.transactional_producer(
            current,
            f"bench-floor-{uuid.uuid4().hex[:8]}",
            transaction_timeout_ms=10_000,
            **{"socket.nagle.disable": True},
        )
    )
    producer.init_transactions(ADMIN_TIMEOUT_S)
    value = b"x" * RECORD_BYTES
    samples: list[float] = []
    for _ in range(rounds):
        started = time.perf_counter()
        producer.begin_transaction()
        producer.produce(topic, value)
        producer.commit_transaction(ADMIN_TIMEOUT_S)
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {
        "floor_python_txn_ms_p50": round(percentile(samples, 0.5), 2),
        "floor_python_txn_ms_p99": round(percentile(samples, 0.99), 2),
        "floor_python_txn_ms_p999": round(percentile(samples, 0.999), 2),
    }


def run_floor(current: Settings, records: int, rounds: int) -> dict[str, Any]:
    topic = current.topic(f"bench-floor-{uuid.uuid4().hex[:8]}")
    _topic(current, topic)
    try:
        figures = kafka_tool(current, topic, records)
        figures.update(python_transactions(current, topic, rounds))
        return figures
    finally:
        _delete(current, topic)


def run(args: Any) -> dict[str, Any]:
    """Entry for `sampan bench floor`."""
    records = getattr(args, "records", 0) or E2E_RECORDS
    return run_floor(settings(), records, TXN_ROUNDS)
