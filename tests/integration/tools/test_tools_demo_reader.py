"""The demo's reader goes on past an undecodable record and says where it was."""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import Producer

from sampan.config import Settings
from sampan.schemas import registry
from sampan.tools.records import read_topic

pytestmark = pytest.mark.integration


def test_read_topic_skips_an_undecodable_record_and_logs_its_origin(
    env_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    topic = env_settings.topic("md.stats")
    stats = {
        "venue": "HKEX",
        "security": 700,
        "last_e3": None,
        "open_e3": None,
        "high_e3": None,
        "low_e3": None,
        "prev_close_e3": 512_000,
        "nominal_e3": None,
        "volume": 0,
        "turnover_e3": 0,
        "ts_ns": 1,
    }
    producer = Producer(env_settings.kafka(**{"acks": "all"}))
    # One partition for all three, so the good records sit on both sides of the bad one.
    producer.produce(topic, registry().encode("SecurityStats", stats), b"700", partition=0)
    producer.produce(topic, b"\x00not avro at all", b"700", partition=0)
    producer.produce(
        topic, registry().encode("SecurityStats", {**stats, "volume": 100}), b"700", partition=0
    )
    assert producer.flush(30) == 0

    with caplog.at_level(logging.WARNING):
        records = read_topic(env_settings, "md.stats", "SecurityStats")

    assert [r["volume"] for r in records] == [0, 100]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"{topic}[0]@1" in w for w in warnings), warnings
