"""Read committed records of a topic up to its end, and know when the end is reached.

"The end" is the last stable offset each partition has when the reader reaches it: the broker
says so with an end-of-partition event (`enable.partition.eof`), which also covers offsets
taken by transaction markers, which are never delivered. Silence is never taken for the end:
if a partition has not reported its end by the deadline, `read_to_end` raises `TimeoutError`
naming the topic and the partitions still open, so a process never goes live on a partial
state because the broker paused.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from sampan.config import Settings
from sampan.streams import profiles

READ_BATCH_MAX = 1000
POLL_TIMEOUT_S = 0.5


def read_to_end(
    settings: Settings,
    topic: str,
    timeout_s: float,
    starts: Mapping[int, int] | None = None,
    stop_before: Mapping[int, int] | None = None,
) -> Iterator[Any]:
    """Yield the committed records of catalog topic `topic`, partition by partition in offset
    order, from `starts` (default: the beginning of every partition) until each partition
    reports its end or reaches its `stop_before` offset (exclusive). Only the partitions named
    in `starts` are read when it is given."""
    name = settings.topic(topic)
    reader = Consumer(profiles.end_reader(settings, f"sampan-reader-{uuid.uuid4().hex[:8]}"))
    try:
        if starts is None:
            metadata = reader.list_topics(name, timeout=min(timeout_s, 30.0))
            if name not in metadata.topics or metadata.topics[name].error is not None:
                raise TimeoutError(f"topic {name} does not exist or has no leader")
            starts = {p: OFFSET_BEGINNING for p in metadata.topics[name].partitions}
        limits = dict(stop_before or {})
        open_partitions = {p for p in starts if limits.get(p, 1) > max(starts[p], 0)}
        if not open_partitions:
            return
        reader.assign([TopicPartition(name, p, starts[p]) for p in sorted(open_partitions)])
        deadline = time.monotonic() + timeout_s
        while open_partitions:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"reading {name} to its end took over {timeout_s:.0f} s; "
                    f"partitions {sorted(open_partitions)} did not report their end"
                )
            for message in reader.consume(READ_BATCH_MAX, POLL_TIMEOUT_S):
                partition = message.partition()
                if partition not in open_partitions:
                    continue
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        open_partitions.discard(partition)
                        continue
                    raise TimeoutError(f"reading {name}[{partition}]: {error}")
                limit = limits.get(partition)
                if limit is not None and message.offset() >= limit:
                    open_partitions.discard(partition)
                    continue
                yield message
                if limit is not None and message.offset() + 1 >= limit:
                    open_partitions.discard(partition)
    finally:
        reader.close()
