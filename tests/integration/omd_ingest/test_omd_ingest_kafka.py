"""Simulator -> UDP lines A/B (+ retransmission, refresh) -> omd_ingest -> Kafka, on the real
stack: the ingested books equal the simulator's and md.trades holds every trade exactly once."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
from confluent_kafka import Consumer, TopicPartition
from omd_harness import Run, assert_books_equal, run_scenario

from sampan.config import Settings
from sampan.hkex_sim.omd_lines import LineFaults
from sampan.omd_ingest.kafka_out import KafkaSink, hk_day
from sampan.schemas import registry

pytestmark = pytest.mark.integration

READ_TIMEOUT_S = 30.0


def _read_trades(settings: Settings, expected: int) -> list[tuple[int, int]]:
    topic = settings.topic("md.trades")
    consumer = Consumer(
        settings.kafka(
            **{
                "group.id": f"{topic}-check-{time.time_ns()}",
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
    )
    try:
        meta = consumer.list_topics(topic, timeout=10)
        parts = [TopicPartition(topic, p, 0) for p in meta.topics[topic].partitions]
        consumer.assign(parts)
        out: list[tuple[int, int]] = []
        deadline = time.monotonic() + READ_TIMEOUT_S
        idle_since = time.monotonic()
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                if len(out) >= expected and time.monotonic() - idle_since > 0.5:
                    break
                continue
            assert msg.error() is None, msg.error()
            idle_since = time.monotonic()
            record = registry().decode("TradeTick", msg.value())
            assert record["venue"] == "HKEX"
            assert msg.key() == f"HKEX:{record['security']}".encode()
            day, identity = record["trade_id"].split(":")
            assert day == hk_day(record["ts_ns"])
            code, trade_id = identity.split("-")
            out.append((int(code), int(trade_id)))
        return out
    finally:
        consumer.close()


def _scenario(settings: Settings, **kwargs: object) -> tuple[Run, list[tuple[int, int]]]:
    sink = KafkaSink(settings)
    run = asyncio.run(run_scenario(sink, **kwargs))  # type: ignore[arg-type]
    assert sink.close(30.0) == 0
    assert sink.failed == 0 and sink.dropped == 0
    assert_books_equal(run)
    kafka = _read_trades(settings, sink.delivered_trades)
    duplicates = [k for k, n in Counter(kafka).items() if n > 1]
    assert not duplicates, f"duplicated trades in Kafka: {duplicates[:10]}"
    return run, kafka


def test_loss_on_one_line(env_settings: Settings) -> None:
    run, kafka = _scenario(
        env_settings,
        seed=21,
        faults_a=LineFaults(drop=0.3, duplicate=0.1, reorder=0.1, seed=5),
        faults_b=LineFaults(),
        active_s=3.0,
    )
    assert sorted(kafka) == sorted((t.security, t.trade_id) for t in run.trades)
    assert run.ingest.gaps_requested == 0  # line B covered every loss
    assert run.sim.lines[0].counters.dropped > 0


def test_loss_on_both_lines_recovered_by_retransmission(env_settings: Settings) -> None:
    run, kafka = _scenario(
        env_settings,
        seed=22,
        faults_a=LineFaults(drop=0.15, duplicate=0.05, reorder=0.1, seed=7),
        faults_b=LineFaults(drop=0.15, duplicate=0.05, reorder=0.1, seed=8),
        active_s=3.0,
    )
    assert sorted(kafka) == sorted((t.security, t.trade_id) for t in run.trades)
    assert run.ingest.gaps_requested > 0
    assert run.ingest.feed.counters.refreshes_completed == 0


def test_late_join_from_the_refresh_channel(env_settings: Settings) -> None:
    run, kafka = _scenario(
        env_settings,
        seed=23,
        faults_a=LineFaults(drop=0.05, seed=9),
        faults_b=LineFaults(drop=0.05, seed=10),
        active_s=3.0,
        late_join_after_s=1.0,
    )
    assert run.ingest.feed.counters.refreshes_completed >= 1
    sim_last = {t.security: t.trade_id for t in run.trades}
    by_security: dict[int, list[int]] = {}
    for code, trade_id in kafka:
        by_security.setdefault(code, []).append(trade_id)
    assert by_security
    for code, ids in by_security.items():
        ids.sort()
        # A suffix of the simulator's trades: nothing missing after the join, nothing twice.
        assert ids == list(range(ids[0], sim_last[code] + 1)), code
    assert sum(len(v) for v in by_security.values()) < len(run.trades)
