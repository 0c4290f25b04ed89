"""Two small pieces every Kafka writer of sampan shares: the dead-letter record, and a
produce that waits (boundedly) for room in the client's local queue.

A dead letter keeps the original key and bytes and says where they came from: a topic,
partition and offset, or a FIX session (`fix:<CompID>`, partition 0, the MsgSeqNum as offset).
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError, KafkaException

ERROR_CHARS_MAX = 4000
PRODUCE_RETRIES_MAX = 100
QUEUE_WAIT_S = 0.05


def dead_letter(
    source_topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    error: str,
    agent: str,
    ts_ns: int,
) -> dict[str, Any]:
    """A `DeadLetter` record (schemas/avsc/DeadLetter.avsc), the error cut to a bounded length."""
    return {
        "source_topic": source_topic,
        "source_partition": partition,
        "source_offset": offset,
        "key": key,
        "value": value,
        "error": error[:ERROR_CHARS_MAX],
        "agent": agent,
        "ts_ns": ts_ns,
    }


def produce_waiting(
    producer: Any,
    topic: str,
    value: bytes | None,
    key: bytes | None,
    partition: int | None = None,
) -> None:
    """`producer.produce`, serving delivery reports while the local queue is full, at most
    PRODUCE_RETRIES_MAX times; then a `KafkaException` (_QUEUE_FULL) naming the topic."""
    for _ in range(PRODUCE_RETRIES_MAX):
        try:
            if partition is None:
                producer.produce(topic, value, key)
            else:
                producer.produce(topic, value, key, partition=partition)
            return
        except BufferError:
            producer.poll(QUEUE_WAIT_S)
    raise KafkaException(KafkaError(KafkaError._QUEUE_FULL, f"producer queue full for {topic}"))
