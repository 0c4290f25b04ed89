"""`sampan matcher verify`: replay `orders.internal` into fresh books and compare, record by
record, with what the matcher committed to `orders.events` and `fills`.

Records are compared per (topic, key, security): records with one key land on one output
partition and those of one security come from one input partition, so their order is fixed by
the input log; across groups Kafka promises no order, so none is compared. Only the matcher's
own records are compared (venue INTERNAL, exec ids starting with `X`). Run it when the matcher
has caught up: input it has not processed yet shows as missing output.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sampan.config import Settings
from sampan.matcher.agent import INPUT, default_instruments
from sampan.matcher.mapping import PartitionBook
from sampan.schemas import SchemaError, registry
from sampan.streams.reader import read_to_end

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
    """Every committed record of `topic` up to its end (as the broker reports it, never a
    silence; TimeoutError after READ_TIMEOUT_S): (partition, offset, key, value)."""
    out: list[tuple[int, int, bytes | None, bytes]] = []
    for message in read_to_end(settings, topic, READ_TIMEOUT_S):
        out.append((message.partition(), message.offset(), message.key(), message.value()))
        if progress and len(out) % PROGRESS_EVERY == 0:
            print(f"  read {len(out):,} records of {settings.topic(topic)}", flush=True)
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
