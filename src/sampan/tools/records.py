"""Venue records for the tools and the integration tests: build order commands, publish
records to catalog topics, read a topic's committed records, and wait for a condition. Every
wait is bounded and says what it waited for.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from sampan.config import Settings
from sampan.errors import SampanError
from sampan.schemas import SchemaError, registry
from sampan.streams import profiles

log = logging.getLogger(__name__)


def read_topic(current: Settings, topic: str, schema: str, timeout_s: float = 10.0) -> list[Any]:
    """Every committed record of `topic` now, in partition order (read_committed, up to each
    partition's end: the consumer's end-of-partition event); bounded by `timeout_s`. A record
    that does not decode as `schema` is logged with its topic, partition and offset and
    skipped."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    consumer = Consumer(profiles.end_reader(current, f"sampan-demo-{uuid.uuid4().hex[:8]}"))
    name = current.topic(topic)
    out: list[Any] = []
    try:
        parts = consumer.list_topics(name, timeout=timeout_s).topics[name].partitions
        consumer.assign([TopicPartition(name, p, 0) for p in parts])
        done: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while len(done) < len(parts):
            if time.monotonic() > deadline:
                raise SampanError(f"{name} not read to its end within {timeout_s} s")
            for m in consumer.consume(500, 0.2):
                error = m.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        done.add(m.partition())
                    continue
                done.discard(m.partition())
                value = m.value()
                if value is None:
                    continue
                try:
                    out.append(registry().decode(schema, value))
                except SchemaError as error:
                    # One bad record must not hide the rest of the screen: say where it is.
                    log.warning(
                        "skipped an undecodable record at %s[%d]@%d: %s",
                        m.topic(),
                        m.partition(),
                        m.offset(),
                        error,
                    )
    finally:
        consumer.close()
    return out


def wait_until(what: str, predicate: Any, timeout_s: float, check: Any = None) -> Any:
    """Poll `predicate` until it returns something truthy; SampanError naming `what` after
    `timeout_s`. `check` (the supervisor's) raises if a venue process died meanwhile."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if result:
            return result
        if check is not None:
            check()
        if time.monotonic() > deadline:
            raise SampanError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.3)


def publish_records(
    current: Settings, topic: str, schema: str, rows: list[tuple[str, Any]]
) -> None:
    from confluent_kafka import Producer

    producer = Producer(profiles.producer(current, linger_ms=1))
    for key, value in rows:
        producer.produce(current.topic(topic), registry().encode(schema, value), key.encode())
    if producer.flush(30):
        raise SampanError(f"{topic}: records not delivered within 30 s")


def new_order(
    cl_ord_id: str, account: str, side: str, qty: int, price_e3: int, route: str
) -> dict[str, Any]:
    return {
        "command_id": cl_ord_id,
        "kind": "NEW",
        "account": account,
        "member": "M" + account[-1],
        "security": 700,
        "cl_ord_id": cl_ord_id,
        "orig_cl_ord_id": None,
        "side": side,
        "ord_type": "LIMIT",
        "time_in_force": "DAY",
        "price_e3": price_e3,
        "qty": qty,
        "route": route,
        "batch_id": None,
        "parent_id": None,
        "user": "demo",
        "ts_ns": time.time_ns(),
        "stp": None,
    }


def order_reports(current: Settings, cl_ord_id: str) -> list[dict[str, Any]]:
    """The reports a member sees for `cl_ord_id`: the SMART parent's (order id P...) when
    there is one, else the order's own."""
    mine = [
        e
        for e in read_topic(current, "orders.events", "ExecutionReport")
        if e["cl_ord_id"] == cl_ord_id
    ]
    parents = [e for e in mine if e["order_id"].startswith("P")]
    return parents or mine


def order_command(run_id: str, n: int, account: str) -> dict[str, Any]:
    return {
        "command_id": f"{run_id}-{n}",
        "kind": "NEW",
        "account": account,
        "member": "M" + account[-1],
        "security": 700,
        "cl_ord_id": f"{run_id}-{n}",
        "orig_cl_ord_id": None,
        "side": "BUY" if n % 2 == 0 else "SELL",
        "ord_type": "LIMIT",
        "time_in_force": "DAY",
        "price_e3": 380_000 + (n % 10) * 200,
        "qty": 100 * (1 + n % 5),
        "route": "INTERNAL",
        "batch_id": run_id,
        "parent_id": None,
        "user": "demo",
        "ts_ns": time.time_ns(),
    }


def produce_commands(current: Settings, run_id: str, count: int) -> None:
    from confluent_kafka import Producer

    producer = Producer(profiles.producer(current, linger_ms=5))
    topic = current.topic("orders.requests")
    for n in range(count):
        account = f"ACC{n % 4}"
        value = registry().encode("OrderCommand", order_command(run_id, n, account))
        producer.produce(topic, value, account.encode())
        producer.poll(0)
    remaining = producer.flush(30)
    if remaining:
        raise SampanError(f"{remaining} order commands not delivered within 30 s")
