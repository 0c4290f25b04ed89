"""`sampan matcher verify`: replay `orders.internal` into fresh books and compare, record by
record, with what the matcher committed to `orders.events` and `fills`.

Records are compared per (topic, key, security): records with one key land on one output
partition and those of one security come from one input partition, so their order is fixed by
the input log; across groups Kafka promises no order, so none is compared. Only the matcher's
own records are compared (venue INTERNAL, exec ids starting with `X`). Run it when the matcher
has caught up: input it has not processed yet shows as missing output.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from sampan.config import Settings
from sampan.matcher.agent import INPUT, default_instruments
from sampan.matcher.mapping import PartitionBook
from sampan.schemas import SchemaError, registry

READ_BATCH_MAX = 2000
IDLE_END_S = 2.0
READ_TIMEOUT_S = 600.0
PROGRESS_EVERY = 100_000

Group = tuple[str, str, int]


@dataclass(frozen=True, slots=True)
class VerifyResult:
    commands: int
    reports: int
    fills: int
    difference: str | None

    def summary(self) -> str:
        counts = f"{self.commands} commands, {self.reports} execution reports, {self.fills} fills"
        if self.difference is None:
            return f"identical: {counts}"
        return f"DIFFERENT after {counts}:\n{self.difference}"


def read_topic(
    settings: Settings, topic: str, progress: bool
) -> list[tuple[int, int, bytes | None, bytes]]:
    """Every committed record of `topic` up to its current end: (partition, offset, key, value)."""
    name = settings.topic(topic)
    reader = Consumer(
        settings.kafka(
            **{
                "group.id": f"sampan-verify-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
            }
        )
    )
    out: list[tuple[int, int, bytes | None, bytes]] = []
    try:
        metadata = reader.list_topics(name, timeout=30)
        tps = [TopicPartition(name, p, 0) for p in sorted(metadata.topics[name].partitions)]
        ends = {tp.partition: reader.get_watermark_offsets(tp, timeout=30)[1] for tp in tps}
        reader.assign(tps)
        done = {p: ends[p] == 0 for p in ends}
        deadline = time.monotonic() + READ_TIMEOUT_S
        idle_since = time.monotonic()
        while not all(done.values()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {name} took over {READ_TIMEOUT_S} s")
            messages = reader.consume(READ_BATCH_MAX, 0.5)
            if not messages and time.monotonic() - idle_since > IDLE_END_S:
                break  # the rest up to the watermarks are transaction markers
            for message in messages:
                idle_since = time.monotonic()
                if message.error() is not None:
                    continue
                out.append((message.partition(), message.offset(), message.key(), message.value()))
                if message.offset() + 1 >= ends[message.partition()]:
                    done[message.partition()] = True
                if progress and len(out) % PROGRESS_EVERY == 0:
                    print(f"  read {len(out):,} records of {name}", flush=True)
    finally:
        reader.close()
    return out


def expected_outputs(
    settings: Settings, progress: bool
) -> tuple[int, dict[Group, list[dict[str, Any]]]]:
    books: dict[int, PartitionBook] = {}
    groups: dict[Group, list[dict[str, Any]]] = defaultdict(list)
    commands = 0
    for partition, offset, _key, value in read_topic(settings, INPUT, progress):
        try:
            command = registry().decode("OrderCommand", value)
        except SchemaError:
            continue  # the matcher dead-lettered it
        book = books.get(partition)
        if book is None:
            book = books[partition] = PartitionBook(partition, default_instruments())
        commands += 1
        for record in book.apply(offset, command):
            if record.topic in ("orders.events", "fills"):
                groups[(record.topic, record.key, record.value["security"])].append(record.value)
    return commands, groups


def actual_outputs(settings: Settings, progress: bool) -> dict[Group, list[dict[str, Any]]]:
    groups: dict[Group, list[dict[str, Any]]] = defaultdict(list)
    for topic, schema in (("orders.events", "ExecutionReport"), ("fills", "Fill")):
        for _p, _o, key, value in read_topic(settings, topic, progress):
            record = registry().decode(schema, value)
            if record["venue"] == "INTERNAL" and record["exec_id"].startswith("X"):
                groups[(topic, (key or b"").decode(), record["security"])].append(record)
    return groups


def first_difference(
    expected: dict[Group, list[dict[str, Any]]], actual: dict[Group, list[dict[str, Any]]]
) -> str | None:
    for group in sorted(set(expected) | set(actual)):
        want, got = expected.get(group, []), actual.get(group, [])
        for index in range(max(len(want), len(got))):
            a = want[index] if index < len(want) else None
            b = got[index] if index < len(got) else None
            if a != b:
                topic, key, security = group
                return (
                    f"{topic} key {key} security {security}, record {index}:\n"
                    f"  replay:    {a}\n  committed: {b}"
                )
    return None


def verify(settings: Settings, progress: bool = True) -> VerifyResult:
    commands, expected = expected_outputs(settings, progress)
    actual = actual_outputs(settings, progress)
    reports = sum(len(v) for (topic, _, _), v in expected.items() if topic == "orders.events")
    fills = sum(len(v) for (topic, _, _), v in expected.items() if topic == "fills")
    return VerifyResult(commands, reports, fills, first_difference(expected, actual))
