"""`sampan matcher verify`: replay `orders.internal` into fresh books and compare, record by
record, with what the matcher committed to `orders.events` and `fills`.

Records are compared per (topic, key, security): records with one key land on one output
partition and those of one security come from one input partition, so their order is fixed by
the input log; across groups Kafka promises no order, so none is compared. Only the matcher's
own records are compared (venue INTERNAL, exec ids starting with `X`).

A matcher that is only behind is told apart from one that is wrong: the matcher group's
committed input offsets are read first, then the outputs. Everything the replay produces from
input below those offsets must have been committed; beyond them the committed records of each
group must be a prefix of the replay's. Then the result is BEHIND, with how many commands were
not yet processed (per partition) and how many output records are still to come; anything
else is DIFFERENT.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from sampan.config import Settings
from sampan.matcher.agent import INPUT, MatcherAgent, default_instruments
from sampan.matcher.mapping import PartitionBook
from sampan.schemas import SchemaError, registry
from sampan.streams import profiles
from sampan.streams.reader import read_to_end

READ_TIMEOUT_S = 600.0
METADATA_TIMEOUT_S = 30.0
PROGRESS_EVERY = 100_000

Group = tuple[str, str, int]


@dataclass(frozen=True, slots=True)
class Behind:
    """How far the matcher is behind its input when it was read."""

    commands: dict[int, int]  # input partition -> commands past the committed offset
    committed: dict[int, int]  # input partition -> the matcher's committed next offset
    records: int  # execution reports and fills the replay has and the matcher not yet


@dataclass(frozen=True, slots=True)
class VerifyResult:
    commands: int
    reports: int
    fills: int
    difference: str | None
    behind: Behind | None = None

    def summary(self) -> str:
        counts = f"{self.commands} commands, {self.reports} execution reports, {self.fills} fills"
        if self.difference is not None:
            return f"DIFFERENT after {counts}:\n{self.difference}"
        if self.behind is not None:
            b = self.behind
            partitions = ", ".join(
                f"partition {p}: {n} after committed offset {b.committed.get(p, 0)}"
                for p, n in sorted(b.commands.items())
                if n
            )
            return (
                f"BEHIND: {sum(b.commands.values())} commands of {INPUT} not processed yet"
                f"{f' ({partitions})' if partitions else ''}, {b.records} execution reports "
                f"and fills still to come; everything committed so far is identical to the "
                f"replay of {counts}"
            )
        return f"identical: {counts}"


def committed_offsets(settings: Settings) -> dict[int, int]:
    """The matcher group's committed next offset per partition of its input (0 if none)."""
    name = settings.topic(INPUT)
    consumer = Consumer(profiles.lookup(settings, settings.topic(MatcherAgent.name)))
    try:
        metadata = consumer.list_topics(name, timeout=METADATA_TIMEOUT_S)
        if name not in metadata.topics or metadata.topics[name].error is not None:
            raise TimeoutError(f"topic {name} does not exist or has no leader")
        partitions = [TopicPartition(name, p) for p in sorted(metadata.topics[name].partitions)]
        found = consumer.committed(partitions, timeout=METADATA_TIMEOUT_S)
    finally:
        consumer.close()
    return {tp.partition: max(tp.offset, 0) for tp in found}


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


@dataclass(slots=True)
class Expected:
    commands: int = 0
    groups: dict[Group, list[Mapping[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    # Per group, how many of its records come from input below the committed offsets.
    due: dict[Group, int] = field(default_factory=lambda: defaultdict(int))
    # Per input partition, commands at or past the committed offset.
    pending: dict[int, int] = field(default_factory=lambda: defaultdict(int))


def expected_outputs(
    settings: Settings, progress: bool, committed: dict[int, int] | None = None
) -> Expected:
    """The replay's records, and which of them the matcher must have committed: those of
    input below `committed` (default: all)."""
    books: dict[int, PartitionBook] = {}
    expected = Expected()
    for partition, offset, _key, value in read_topic(settings, INPUT, progress):
        try:
            command = registry().decode("OrderCommand", value)
        except SchemaError:
            continue  # the matcher dead-lettered it
        book = books.get(partition)
        if book is None:
            book = books[partition] = PartitionBook(partition, default_instruments())
        expected.commands += 1
        done = committed is None or offset < committed.get(partition, 0)
        if not done:
            expected.pending[partition] += 1
        for record in book.apply(offset, command):
            if record.topic in ("orders.events", "fills"):
                group = (record.topic, record.key, record.value["security"])
                expected.groups[group].append(record.value)
                if done:
                    expected.due[group] += 1
    return expected


def actual_outputs(settings: Settings, progress: bool) -> dict[Group, list[dict[str, Any]]]:
    groups: dict[Group, list[dict[str, Any]]] = defaultdict(list)
    for topic, schema in (("orders.events", "ExecutionReport"), ("fills", "Fill")):
        for _p, _o, key, value in read_topic(settings, topic, progress):
            record = registry().decode(schema, value)
            if record["venue"] == "INTERNAL" and record["exec_id"].startswith("X"):
                groups[(topic, (key or b"").decode(), record["security"])].append(record)
    return groups


def first_difference(
    expected: dict[Group, list[Mapping[str, Any]]],
    actual: dict[Group, list[dict[str, Any]]],
    due: dict[Group, int] | None = None,
) -> str | None:
    """The first record where the matcher's output is wrong. With `due`, a group's committed
    records may stop short of the replay's (the matcher is behind), but not before its due
    count; without it every record is due."""
    for group in sorted(set(expected) | set(actual)):
        want, got = expected.get(group, []), actual.get(group, [])
        required = len(want) if due is None else due.get(group, 0)
        for index in range(max(len(want), len(got))):
            a = want[index] if index < len(want) else None
            b = got[index] if index < len(got) else None
            if b is None and index >= required:
                break  # not yet committed, and not due yet
            if a != b:
                topic, key, security = group
                return (
                    f"{topic} key {key} security {security}, record {index}:\n"
                    f"  replay:    {a}\n  committed: {b}"
                )
    return None


def verify(settings: Settings, progress: bool = True) -> VerifyResult:
    # Offsets first: what the matcher had committed then, it had committed with its outputs,
    # which are read after.
    committed = committed_offsets(settings)
    expected = expected_outputs(settings, progress, committed)
    actual = actual_outputs(settings, progress)
    groups = expected.groups
    reports = sum(len(v) for (topic, _, _), v in groups.items() if topic == "orders.events")
    fills = sum(len(v) for (topic, _, _), v in groups.items() if topic == "fills")
    difference = first_difference(groups, actual, expected.due)
    missing = sum(max(0, len(v) - len(actual.get(g, []))) for g, v in groups.items())
    behind = None
    if difference is None and missing:
        behind = Behind(dict(expected.pending), committed, missing)
    return VerifyResult(expected.commands, reports, fills, difference, behind)
