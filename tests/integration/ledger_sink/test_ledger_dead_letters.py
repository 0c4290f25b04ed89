"""A replayed fill is a no-op; a different fill under an existing exec id and an undecodable
record land in fills.dlq with their origin."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest
from confluent_kafka import Consumer, Producer
from conftest import SinkProcess, wait_for

from sampan.config import Settings
from sampan.ledger_sink.records import fill_from_record
from sampan.schemas import registry
from sampan.tools.bench.ledger import end_offsets, synthetic_fills

pytestmark = pytest.mark.integration


def test_conflicting_and_undecodable_fills_are_dead_lettered(
    env_settings: Settings,
    schema: str,
    sink_process: Callable[..., SinkProcess],
) -> None:
    original = next(synthetic_fills(1, seed=3))
    changed = original | {"qty": original["qty"] + 100}
    producer = Producer(env_settings.kafka(**{"acks": "all", "enable.idempotence": True}))
    topic = env_settings.topic("fills")
    # One key, one partition: the order below is the order the sink sees.
    for value in (
        registry().encode("Fill", original),
        registry().encode("Fill", original),
        registry().encode("Fill", changed),
        b"not avro at all",
    ):
        producer.produce(topic, key=b"ACC", value=value)
    assert producer.flush(30) == 0
    ends = end_offsets(env_settings)

    sink = sink_process("--batch-max", "2")  # the conflict spans two batches
    with psycopg.connect(env_settings.database_url, options=f"-c search_path={schema}") as conn:

        def caught_up() -> bool:
            row = conn.execute(
                "SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets"
            ).fetchone()
            conn.commit()
            return row is not None and row[0] == sum(ends.values())

        wait_for(caught_up, "the sink to reach the end of fills")
        fills = conn.execute("SELECT fill_ref, qty FROM fills").fetchall()
    assert sink.terminate() == 0
    ref = fill_from_record(original).ref  # HKEX:<day>:<exec id>
    assert fills == [(ref, original["qty"])]

    consumer = Consumer(
        env_settings.kafka(
            **{
                "group.id": "test-dlq",
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
            }
        )
    )
    consumer.subscribe([env_settings.topic("fills.dlq")])
    letters = []
    for _ in range(60):
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            letters.append(registry().decode("DeadLetter", message.value()))
        if len(letters) == 2:
            break
    consumer.close()
    assert [(d["source_topic"], d["source_offset"]) for d in letters] == [(topic, 2), (topic, 3)]
    assert "differs from the fill with the same identity" in letters[0]["error"]
    assert letters[0]["value"] == registry().encode("Fill", changed)
    assert letters[1]["value"] == b"not avro at all" and letters[1]["agent"] == "ledger_sink"
