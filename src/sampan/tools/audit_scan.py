"""Reading the topics for `sampan audit`: committed records only, to the end the broker reports.

Guarantees: every read is read_committed and ends at each partition's end as the broker
reports it (`streams.reader.read_to_end`), never at a silence, within `SCAN_TIMEOUT_S` per
topic; memory holds one fetch batch plus what the question keeps (`audit_trail`'s bounds). An
export's range is found by timestamp (`offsets_for_times`) per partition, so a scan reads only
the range asked for. A record that does not decode is exported with its error and its raw
bytes in hex, never skipped: an export is complete.

Limits: an order's story reads the order topics up to `audit_trail.PASSES_MAX` times; the
scan time grows with the topics' size (a progress line on stderr says how far it is).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from confluent_kafka import Consumer, TopicPartition

from sampan import topics
from sampan.config import Settings
from sampan.schemas.codec import SchemaError, registry
from sampan.streams import profiles
from sampan.streams.reader import read_to_end
from sampan.tools.audit_trail import (
    ACCOUNT_TOPICS,
    ORDER_TOPICS,
    PASSES_MAX,
    AccountDay,
    AuditError,
    OrderTrail,
)

SCAN_TIMEOUT_S = 600.0
METADATA_TIMEOUT_S = 30.0
PROGRESS_EVERY = 20_000


@dataclass(frozen=True, slots=True)
class Read:
    """One record as read: where, when (the broker's timestamp), key, decoded value or error."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: dict[str, Any] | None
    error: str | None
    raw: bytes | None


class Progress:
    """A progress line on stderr every `PROGRESS_EVERY` records (nothing when quiet)."""

    def __init__(self, out: TextIO | None) -> None:
        self.out = out
        self.seen = 0
        self.started = time.monotonic()

    def tick(self, what: str) -> None:
        self.seen += 1
        if self.out is not None and self.seen % PROGRESS_EVERY == 0:
            rate = self.seen / max(time.monotonic() - self.started, 1e-6)
            self.out.write(f"\raudit: {what}: {self.seen:,} records read ({rate:,.0f}/s)")
            self.out.flush()

    def done(self) -> None:
        if self.out is not None and self.seen >= PROGRESS_EVERY:
            self.out.write("\n")
            self.out.flush()


def _decode(topic: str, raw: bytes | None) -> tuple[dict[str, Any] | None, str | None]:
    if raw is None:
        return None, None  # a tombstone
    try:
        return registry().decode(topics.topic(topic).value, raw), None
    except SchemaError as error:
        return None, str(error)


def scan(
    settings: Settings,
    topic: str,
    progress: Progress,
    starts: dict[int, int] | None = None,
    stop_before: dict[int, int] | None = None,
) -> Iterator[Read]:
    """Every committed record of catalog topic `topic` (in the given range), decoded."""
    for message in read_to_end(settings, topic, SCAN_TIMEOUT_S, starts, stop_before):
        raw = message.value()
        value, error = _decode(topic, raw)
        progress.tick(topic)
        yield Read(
            topic,
            message.partition(),
            message.offset(),
            message.timestamp()[1],
            message.key(),
            value,
            error,
            raw if error is not None else None,
        )


def order_trail(
    settings: Settings, start: str, account: str | None, progress: Progress
) -> OrderTrail:
    """Read the order topics until a pass learns no new id (at most `PASSES_MAX`)."""
    trail = OrderTrail(start, account)
    for _ in range(PASSES_MAX):
        learnt = False
        for topic in ORDER_TOPICS:
            for read in scan(settings, topic, progress):
                if read.value is not None:
                    learnt |= trail.offer(topic, read.partition, read.offset, read.value)
        if not learnt:
            break
    progress.done()
    return trail


def account_day(
    settings: Settings, account: str, day_bounds: tuple[int, int] | None, progress: Progress
) -> AccountDay:
    result = AccountDay(account, day_bounds)
    for topic in ACCOUNT_TOPICS:
        for read in scan(settings, topic, progress):
            if read.value is not None:
                result.offer(topic, read.partition, read.offset, read.value)
    progress.done()
    return result


def offsets_at(
    settings: Settings, topic: str, ts_ms: int, consumer: Consumer
) -> dict[int, int] | None:
    """Per partition, the first offset whose timestamp is at or after `ts_ms` (the end of the
    partition when there is none); None when the topic does not exist."""
    name = settings.topic(topic)
    metadata = consumer.list_topics(name, timeout=METADATA_TIMEOUT_S)
    if name not in metadata.topics or metadata.topics[name].error is not None:
        return None
    partitions = sorted(metadata.topics[name].partitions)
    asked = [TopicPartition(name, p, ts_ms) for p in partitions]
    found = consumer.offsets_for_times(asked, timeout=METADATA_TIMEOUT_S)
    offsets: dict[int, int] = {}
    for tp in found:
        if tp.offset >= 0:
            offsets[tp.partition] = tp.offset
        else:
            _, high = consumer.get_watermark_offsets(
                TopicPartition(name, tp.partition), timeout=METADATA_TIMEOUT_S
            )
            offsets[tp.partition] = high
    return offsets


def export(
    settings: Settings,
    topic_names: Sequence[str],
    from_ms: int,
    to_ms: int,
    emit: Callable[[Read], None],
    progress_out: TextIO | None = sys.stderr,
) -> dict[str, int]:
    """Emit every record of the topics whose timestamp lies in [from_ms, to_ms); return the
    count per topic. A topic missing on the broker raises `AuditError` naming it."""
    consumer = Consumer(profiles.lookup(settings, "sampan-audit-offsets"))
    counts: dict[str, int] = {}
    try:
        for topic in topic_names:
            starts = offsets_at(settings, topic, from_ms, consumer)
            ends = offsets_at(settings, topic, to_ms, consumer)
            if starts is None or ends is None:
                raise AuditError(f"topic {settings.topic(topic)} does not exist on the broker")
            counts[topic] = 0
            progress = Progress(progress_out)
            live = {p: o for p, o in starts.items() if o < ends[p]}
            if not live:
                continue
            for read in scan(settings, topic, progress, live, ends):
                # Timestamps within a partition are not always monotonic (producer clocks).
                if from_ms <= read.timestamp_ms < to_ms:
                    emit(read)
                    counts[topic] += 1
            progress.done()
    finally:
        consumer.close()
    return counts
