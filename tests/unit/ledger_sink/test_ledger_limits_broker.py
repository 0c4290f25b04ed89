"""The limits follower waits for an unreachable broker instead of stopping the sink."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from sampan.config import settings
from sampan.ledger_sink.limits import LimitsFollower


class Consumer:
    """list_topics fails as librdkafka does while no broker answers, then finds the topic."""

    def __init__(self, topic: str, failures: int) -> None:
        self.topic, self.failures = topic, failures

    def list_topics(self, topic: str, timeout: float) -> Any:
        if self.failures:
            self.failures -= 1
            raise KafkaException(KafkaError(KafkaError._TRANSPORT, "Failed to get metadata"))
        partition = SimpleNamespace(id=0)
        found = SimpleNamespace(error=None, partitions={0: partition, 1: partition})
        return SimpleNamespace(topics={self.topic: found})


def test_no_broker_is_waited_for_like_a_missing_topic() -> None:
    follower = LimitsFollower(settings(), "ledger", "ledger_sink")
    consumer = Consumer(follower.topic, failures=1)
    assert follower._partitions(consumer) is None  # raised KafkaException before
    assert follower._partitions(consumer) == [0, 1]
