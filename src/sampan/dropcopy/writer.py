"""What the drop copy writes to `hkex.dropcopy`, and recovery of the last committed MsgSeqNum.

The writing itself is the streams runtime's (`DropCopyClient` is its agent): records go out in
Kafka transactions under a transactional id per drop-copy CompID (and topic prefix), whose
`init_transactions` fences any previous instance, with the runtime's deadlines, retries and
abort-and-redo.

Guarantees:
- The inbound MsgSeqNum travels inside every record, in the same transaction:
  `last_committed_seq` reads it back from the topic itself (the highest `msg_seq_num` of
  today's records addressed to this CompID), so the client resumes with
  NextExpectedMsgSeqNum = last + 1 and neither loses nor repeats an execution.
- A report the client could not map (`Unmappable`) becomes a DeadLetter on
  `hkex.dropcopy.dlq` in the same transaction as the batch around it (source `fix:<CompID>`,
  its MsgSeqNum as the offset, the message as the value), so it is never lost.

Limits: `last_committed_seq` reads the tail of each partition, widening the window until it
finds today's records or reaches the start; a day with millions of records from other CompIDs
after ours makes that slow but still correct. It reads `hkex.dropcopy` only: a crash right
after a batch that ended in dead letters makes the gateway resend those reports, which are
dead-lettered again (dead letters are at least once; the executions stay exactly once).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from sampan import topics
from sampan.config import Settings
from sampan.dropcopy.records import addressed_to
from sampan.market.calendar import trading_day_iso
from sampan.schemas import SchemaError, records, registry
from sampan.streams import profiles
from sampan.streams.letters import dead_letter
from sampan.streams.runtime import Output

log = logging.getLogger(__name__)

TOPIC = "hkex.dropcopy"
AGENT = "dropcopy"
SCAN_WINDOW_INITIAL = 1_000
SCAN_POLL_S = 0.5
SCAN_BATCH_MAX = 500


@dataclass(frozen=True, slots=True)
class Unmappable:
    """An inbound report that could not become a DropCopyExecution."""

    msg_seq_num: int
    message: bytes  # the FIX message as decoded, re-encoded (SOH-delimited)
    error: str
    ts_ns: int


Outbound = records.DropCopyExecution | Unmappable  # a record, or a dead letter


def seq_num_of(item: Outbound) -> int:
    return item.msg_seq_num if isinstance(item, Unmappable) else int(item["msg_seq_num"])


def encode_outbound(settings: Settings, comp_id: str, item: Outbound) -> Output:
    """The record `item` becomes in the writer's transaction: a `DropCopyExecution` on
    `hkex.dropcopy` keyed by exec id, or a `DeadLetter` on `hkex.dropcopy.dlq`."""
    if not isinstance(item, Unmappable):
        value = registry().encode("DropCopyExecution", item)
        return Output(TOPIC, item["exec_id"].encode(), value)
    # A FIX session has one sequence and no partitions: partition 0, MsgSeqNum as offset.
    letter = dead_letter(
        f"fix:{comp_id}",
        0,
        item.msg_seq_num,
        None,
        item.message,
        item.error,
        AGENT,
        item.ts_ns,
    )
    return Output(topics.dead_letter_of(TOPIC), None, registry().encode("DeadLetter", letter))


def last_committed_seq(settings: Settings, comp_id: str, day: str, timeout_s: float = 30.0) -> int:
    """The highest committed `msg_seq_num` of `comp_id`'s drop copy on `day`; 0 if none."""
    topic = settings.topic(TOPIC)
    consumer = Consumer(
        profiles.end_reader(settings, settings.topic(f"dropcopy-{comp_id}-recovery"))
    )
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s)
        partitions = sorted(metadata.topics[topic].partitions)
        best = 0
        for partition in partitions:
            found = _last_in_partition(
                consumer, TopicPartition(topic, partition), comp_id, day, timeout_s
            )
            best = max(best, found or 0)
        return best
    finally:
        consumer.close()


def _last_in_partition(
    consumer: Consumer, tp: TopicPartition, comp_id: str, day: str, timeout_s: float
) -> int | None:
    low, high = consumer.get_watermark_offsets(tp, timeout=timeout_s)
    window = SCAN_WINDOW_INITIAL
    while True:
        start = max(low, high - window)
        best = _scan(
            consumer, TopicPartition(tp.topic, tp.partition, start), comp_id, day, timeout_s
        )
        if best is not None or start == low:
            return best
        window *= 2


def _scan(
    consumer: Consumer, tp: TopicPartition, comp_id: str, day: str, timeout_s: float
) -> int | None:
    """Read from tp.offset to the end of the partition; the best matching seq num."""
    consumer.assign([tp])
    best: int | None = None
    deadline = time.monotonic() + timeout_s
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError(f"reading {tp.topic}[{tp.partition}] took over {timeout_s} s")
        for message in consumer.consume(SCAN_BATCH_MAX, SCAN_POLL_S):
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    return best
                raise KafkaException(error)
            try:
                record = records.read_drop_copy_execution(message.value() or b"")
            except SchemaError:
                continue  # not ours to judge here; recon dead-letters it
            if addressed_to(record, comp_id) and trading_day_iso(record["sending_time_ns"]) == day:
                seq = int(record["msg_seq_num"])
                best = seq if best is None else max(best, seq)
