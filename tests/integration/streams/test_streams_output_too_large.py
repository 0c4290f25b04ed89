"""An input whose output the broker's client refuses (larger than message.max.bytes) is
dead-lettered, with its origin, instead of stopping the agent; the inputs around it go on."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer

from sampan.config import Settings
from sampan.schemas import registry
from sampan.streams.runtime import AgentConfig, AgentRunner, InRecord, Output
from sampan.tools.records import order_command

pytestmark = pytest.mark.integration

HUGE = 2_000_000  # bytes: over librdkafka's default message.max.bytes (1,000,000)


class Echo:
    """One output per command: its cl_ord_id, or HUGE bytes for the command named `huge`."""

    name = f"test-echo-{uuid.uuid4().hex[:6]}"
    inputs: Mapping[str, str] = {"orders.requests": "OrderCommand"}

    def __init__(self) -> None:
        self.resets = 0

    def handle(self, record: InRecord) -> Iterable[Output]:
        cl_ord_id = record.value["cl_ord_id"]
        yield Output("orders.events", record.key, cl_ord_id.encode())
        if cl_ord_id.endswith("huge"):
            yield Output("orders.events", record.key, b"x" * HUGE)

    def end_batch(self) -> Iterable[Output]:
        return ()

    def stopping(self) -> Iterable[Output]:
        return ()

    def assigned(self, partitions: Sequence[tuple[str, int]], consumer: Any) -> None:
        return None

    def revoked(self, partitions: Sequence[tuple[str, int]]) -> None:
        return None

    def reset(self) -> None:
        self.resets += 1


def _raw(settings: Settings, topic: str) -> list[bytes]:
    consumer = Consumer(
        settings.kafka(
            **{
                "group.id": f"t-{uuid.uuid4().hex[:8]}",
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
    )
    consumer.subscribe([settings.topic(topic)])
    values: list[bytes] = []
    quiet_since = time.monotonic()
    try:
        while time.monotonic() - quiet_since < 3.0:
            for message in consumer.consume(500, 0.2):
                if message.error() is None:
                    values.append(message.value() or b"")
                    quiet_since = time.monotonic()
    finally:
        consumer.close()
    return values


def test_an_output_too_large_dead_letters_its_input_and_the_agent_goes_on(
    env_settings: Settings,
) -> None:
    producer = Producer(env_settings.kafka(**{"enable.idempotence": True}))
    names = ["before", "huge", "after"]
    for n, name in enumerate(names):
        command = order_command("big", n, "ACC1")
        command["cl_ord_id"] = name
        value = registry().encode("OrderCommand", command)
        producer.produce(env_settings.topic("orders.requests"), value, b"ACC1")
    assert producer.flush(30) == 0
    agent = Echo()
    config = AgentConfig(instance_id=uuid.uuid4().hex[:6], idle_exit_s=5.0, liveness_file=False)
    assert AgentRunner(agent, env_settings, config).run() == 0
    assert sorted(_raw(env_settings, "orders.events")) == [b"after", b"before"]
    letters = [
        registry().decode("DeadLetter", v) for v in _raw(env_settings, "orders.requests.dlq")
    ]
    assert len(letters) == 1, letters
    (letter,) = letters
    assert letter["source_offset"] == 1 and letter["source_topic"].endswith("orders.requests")
    assert "output not producible" in letter["error"] and agent.resets == 1
