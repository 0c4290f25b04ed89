"""Exactly-once writes to `hkex.dropcopy`, and recovery of the last committed MsgSeqNum.

Guarantees:
- Records are produced in Kafka transactions under a transactional id per drop-copy CompID
  (and topic prefix). `init` fences any previous instance and aborts its open transaction,
  so after it a reader with read_committed sees only whole batches, each exactly once.
- The inbound MsgSeqNum travels inside every record, in the same transaction:
  `last_committed_seq` reads it back from the topic itself (the highest `msg_seq_num` of
  today's records addressed to this CompID), so the client resumes with
  NextExpectedMsgSeqNum = last + 1 and neither loses nor repeats an execution.
- A report the client could not map (`Unmappable`) becomes a DeadLetter on
  `hkex.dropcopy.dlq` in the same transaction as the batch around it (source `fix:<CompID>`,
  its MsgSeqNum as the offset, the message as the value), so it is never lost.
- Every Kafka call has a timeout. A call that fails with a retriable error is retried on its
  own (the library's contract: repeat the call that failed, not the ones before it), at most
  `COMMIT_RETRIES_MAX` times; an error that requires an abort aborts the transaction and the
  whole batch is produced again, at most `COMMIT_ATTEMPTS_MAX` times; anything else raises (the
  process exits and its restart recovers from the topic).

Limits: `last_committed_seq` reads the tail of each partition, widening the window until it
finds today's records or reaches the start; a day with millions of records from other CompIDs
after ours makes that slow but still correct. It reads `hkex.dropcopy` only: a crash right
after a batch that ended in dead letters makes the gateway resend those reports, which are
dead-lettered again (dead letters are at least once; the executions stay exactly once).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from sampan import topics
from sampan.config import Settings
from sampan.dropcopy.records import addressed_to
from sampan.market.calendar import trading_day_iso
from sampan.schemas import SchemaError, registry
from sampan.streams import profiles
from sampan.streams.letters import dead_letter, produce_waiting

log = logging.getLogger(__name__)

TOPIC = "hkex.dropcopy"
COMMIT_ATTEMPTS_MAX = 5  # whole batches, after an abort
COMMIT_RETRIES_MAX = 5  # one call, after a retriable error
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


Outbound = dict[str, Any] | Unmappable  # a DropCopyExecution record, or a dead letter


def seq_num_of(item: Outbound) -> int:
    return item.msg_seq_num if isinstance(item, Unmappable) else int(item["msg_seq_num"])


class DropCopyWriter:
    """A transactional producer of `hkex.dropcopy` for one drop-copy CompID."""

    def __init__(
        self,
        settings: Settings,
        comp_id: str,
        *,
        transaction_timeout_ms: int = 10_000,  # a dead writer's open transaction blocks readers this long
        commit_timeout_s: float = 30.0,
    ) -> None:
        self.settings = settings
        self.comp_id = comp_id
        self.topic = settings.topic(TOPIC)
        self.dlq_topic = settings.topic(topics.dead_letter_of(TOPIC))
        self._commit_timeout_s = commit_timeout_s
        self._producer = Producer(
            profiles.transactional_producer(
                settings,
                # One writer per drop-copy session; the prefix keeps test namespaces apart.
                settings.topic(f"dropcopy-{comp_id}"),
                transaction_timeout_ms=transaction_timeout_ms,
            )
        )

    def init(self, timeout_s: float = 60.0) -> None:
        """Fence a previous instance and abort its open transaction."""
        self._producer.init_transactions(timeout_s)

    def write(self, items: Sequence[Outbound]) -> None:
        """Produce `items` (records and dead letters) in one committed transaction."""
        encoded = [self._encode(item) for item in items]
        timeout_s = self._commit_timeout_s
        for attempt in range(1, COMMIT_ATTEMPTS_MAX + 1):
            self._producer.begin_transaction()
            try:
                for topic, key, value in encoded:
                    self._produce(topic, key, value)
                self._retrying("commit", lambda: self._producer.commit_transaction(timeout_s))
                return
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if attempt == COMMIT_ATTEMPTS_MAX or not error.txn_requires_abort():
                    raise
                log.warning("drop copy batch attempt %d failed, aborting: %s", attempt, error)
                self._producer.abort_transaction(timeout_s)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _retrying(self, what: str, call: Callable[[], object]) -> None:
        for attempt in range(1, COMMIT_RETRIES_MAX + 1):
            try:
                call()
                return
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if not error.retriable() or attempt == COMMIT_RETRIES_MAX:
                    raise
                log.warning("drop copy %s: retriable error (attempt %d): %s", what, attempt, error)

    def _encode(self, item: Outbound) -> tuple[str, bytes | None, bytes]:
        if not isinstance(item, Unmappable):
            value = registry().encode("DropCopyExecution", item)
            return self.topic, item["exec_id"].encode(), value
        # A FIX session has one sequence and no partitions: partition 0, MsgSeqNum as offset.
        letter = dead_letter(
            f"fix:{self.comp_id}",
            0,
            item.msg_seq_num,
            None,
            item.message,
            item.error,
            AGENT,
            item.ts_ns,
        )
        return self.dlq_topic, None, registry().encode("DeadLetter", letter)

    def _produce(self, topic: str, key: bytes | None, value: bytes) -> None:
        produce_waiting(self._producer, topic, value, key)


def last_committed_seq(settings: Settings, comp_id: str, day: str, timeout_s: float = 30.0) -> int:
    """The highest committed `msg_seq_num` of `comp_id`'s drop copy on `day`; 0 if none."""
    topic = settings.topic(TOPIC)
    consumer = Consumer(
        settings.kafka(
            **{
                "group.id": settings.topic(f"dropcopy-{comp_id}-recovery"),
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
            }
        )
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
                record = registry().decode("DropCopyExecution", message.value() or b"")
            except SchemaError:
                continue  # not ours to judge here; recon dead-letters it
            if addressed_to(record, comp_id) and trading_day_iso(record["sending_time_ns"]) == day:
                seq = int(record["msg_seq_num"])
                best = seq if best is None else max(best, seq)
