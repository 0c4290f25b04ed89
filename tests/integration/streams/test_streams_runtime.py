"""The exactly-once agent runtime against the real broker: SIGKILL, dead letters, topics."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid

import psycopg
import pytest
from confluent_kafka import Consumer, Producer

from sampan import topics_cli
from sampan.config import Settings
from sampan.schemas import registry
from sampan.tools.records import order_command, produce_commands

pytestmark = pytest.mark.integration

WAIT_S = 90.0


def start_agent(batch_size: int = 50) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "sampan.cli", "demo", "agent", "--batch-size", str(batch_size)],
        env=dict(os.environ),
    )


def read_all(
    settings: Settings, topic: str, schema: str, expected: int, timeout_s: float = WAIT_S
) -> list[dict]:
    """Every committed record of `topic` (read_committed), waiting until `expected` arrived
    and then 2 s more, so that a duplicate arriving late would be counted."""
    consumer = Consumer(
        settings.kafka(
            **{
                "group.id": f"test-reader-{uuid.uuid4().hex[:8]}",
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
    )
    consumer.subscribe([settings.topic(topic)])
    records: list[dict] = []
    deadline = time.monotonic() + timeout_s
    settle_until: float | None = None
    try:
        while time.monotonic() < deadline:
            for message in consumer.consume(500, 0.2):
                assert message.error() is None, message.error()
                records.append(registry().decode(schema, message.value()))
            if len(records) >= expected and settle_until is None:
                settle_until = time.monotonic() + 2.0
            if settle_until is not None and time.monotonic() > settle_until:
                break
    finally:
        consumer.close()
    return records


def count_committed(settings: Settings, topic: str) -> int:
    consumer = Consumer(
        settings.kafka(**{"group.id": "test-watermarks", "isolation.level": "read_committed"})
    )
    try:
        metadata = consumer.list_topics(settings.topic(topic), timeout=10)
        total = 0
        from confluent_kafka import TopicPartition

        for partition in metadata.topics[settings.topic(topic)].partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(settings.topic(topic), partition), timeout=10
            )
            total += high - low
        return total
    finally:
        consumer.close()


def test_agent_killed_with_sigkill_outputs_every_result_exactly_once(
    env_settings: Settings,
) -> None:
    total = 3000
    run_id = f"kill{uuid.uuid4().hex[:6]}"
    produce_commands(env_settings, run_id, total)
    kills = 0
    agent = start_agent()
    try:
        # Kill the agent three times while it is mid-stream, each time after more output landed.
        for threshold in (300, 1000, 1800):
            deadline = time.monotonic() + WAIT_S
            while count_committed(env_settings, "orders.events") < threshold:
                assert time.monotonic() < deadline, f"agent made no progress to {threshold}"
                assert agent.poll() is None, "agent exited on its own"
                time.sleep(0.05)
            agent.send_signal(signal.SIGKILL)
            agent.wait(timeout=10)
            kills += 1
            agent = start_agent()
        reports = read_all(env_settings, "orders.events", "ExecutionReport", total)
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=30)
    assert kills == 3
    exec_ids = [r["exec_id"] for r in reports]
    assert len(exec_ids) == total, f"{len(exec_ids)} reports for {total} commands"
    assert len(set(exec_ids)) == total, "a result was committed twice"
    assert {r["cl_ord_id"] for r in reports} == {f"{run_id}-{n}" for n in range(total)}


def test_malformed_record_goes_to_dead_letter_and_the_agent_keeps_going(
    env_settings: Settings,
) -> None:
    producer = Producer(env_settings.kafka(**{"enable.idempotence": True}))
    topic = env_settings.topic("orders.requests")
    producer.produce(topic, b"\xc3\x01not avro at all", b"ACC1")
    producer.produce(topic, b"plain garbage", b"ACC1")
    good = order_command("dlq", 1, "ACC1")
    producer.produce(topic, registry().encode("OrderCommand", good), b"ACC1")
    assert producer.flush(10) == 0
    agent = start_agent()
    try:
        letters = read_all(env_settings, "orders.requests.dlq", "DeadLetter", 2)
        reports = read_all(env_settings, "orders.events", "ExecutionReport", 1)
    finally:
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=30) == 0, "agent did not stop cleanly on SIGTERM"
    assert [r["cl_ord_id"] for r in reports] == ["dlq-1"]
    assert len(letters) == 2
    assert {letter["value"] for letter in letters} == {b"\xc3\x01not avro at all", b"plain garbage"}
    for letter in letters:
        assert letter["source_topic"] == topic
        assert letter["source_partition"] >= 0
        assert letter["source_offset"] >= 0
        assert letter["key"] == b"ACC1"
        assert "undecodable" in letter["error"]
        assert letter["agent"] == "sampan-ack"
    offsets = sorted(letter["source_offset"] for letter in letters)
    assert offsets[1] == offsets[0] + 1


def test_topics_apply_twice_changes_nothing(env_settings: Settings) -> None:
    again = topics_cli.apply(env_settings)
    assert again.created == []
    assert again.drift == []
    assert len(again.unchanged) == len(topics_cli.topics.ALL)


def test_topics_apply_reports_drift_without_changing_it(env_settings: Settings) -> None:
    from confluent_kafka.admin import (
        AdminClient,
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        ResourceType,
    )

    admin = AdminClient(env_settings.kafka())
    entry = ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(
        ResourceType.TOPIC, env_settings.topic("md.trades"), incremental_configs=[entry]
    )
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)
    # The broker applies a config change asynchronously; wait until it shows.
    deadline = time.monotonic() + 15
    described = ConfigResource(ResourceType.TOPIC, env_settings.topic("md.trades"))
    while (
        admin.describe_configs([described])[described].result(timeout=10)["retention.ms"].value
        != "1000"
    ):
        assert time.monotonic() < deadline, "the broker never showed the altered retention.ms"
        time.sleep(0.2)
    result = topics_cli.apply(env_settings)
    assert result.created == []
    assert any("md.trades: retention.ms=1000" in line for line in result.drift), result.drift
    assert any("md.trades" in line for line in topics_cli.apply(env_settings).drift), (
        "drift was silently fixed"
    )


def test_postgres_answers_on_the_configured_url(stack_settings: Settings) -> None:
    with psycopg.connect(stack_settings.database_url, connect_timeout=10) as conn:
        row = conn.execute("SELECT current_database(), 6 * 7").fetchone()
    assert row == ("sampan", 42)


def test_agent_serves_prometheus_metrics(env_settings: Settings) -> None:
    import socket
    import urllib.request

    text = ""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    produce_commands(env_settings, "metrics", 50)
    agent = subprocess.Popen(
        [sys.executable, "-m", "sampan.cli", "demo", "agent", "--metrics-port", str(port)],
        env=dict(os.environ),
    )
    try:
        read_all(env_settings, "orders.events", "ExecutionReport", 50)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/metrics", timeout=5
                ) as response:
                    text = response.read().decode()
                # Lag comes from librdkafka's statistics, every 5 s.
                lag_sampled = 'sampan_consumer_lag{agent="sampan-ack",partition=' in text
                if 'sampan_records_in_total{agent="sampan-ack"} 50.0' in text and lag_sampled:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, (
                f"metrics never showed 50 records in and a lag:\n{text}"
            )
            time.sleep(0.2)
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=30)
    assert 'sampan_records_out_total{agent="sampan-ack"} 50.0' in text
    assert "sampan_batch_seconds_bucket" in text
    assert re.search(
        r'sampan_consumer_lag\{agent="sampan-ack",partition="\d",topic="[^"]+"\} 0\.0', text
    )
