"""The sink killed mid-batch and restarted posts every fill once; verify and rebuild agree."""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from conftest import SinkProcess, assert_verified_but_unfunded, run_cli, wait_for

from sampan import topics
from sampan.config import Settings
from sampan.ledger_sink.records import fill_from_record
from sampan.ledger_sink.rules import default_schedule, post_fill
from sampan.schemas import registry
from sampan.tools.bench.ledger import end_offsets, produce_fills, synthetic_fills

pytestmark = pytest.mark.integration
FILLS = 8_000


def _count(settings: Settings, schema: str, sql: str) -> int:
    with psycopg.connect(settings.database_url, options=f"-c search_path={schema}") as conn:
        row = conn.execute(sql).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def test_sigkill_mid_batch_then_restart(
    env_settings: Settings,
    schema: str,
    sink_process: Callable[..., SinkProcess],
) -> None:
    records = list(synthetic_fills(FILLS, seed=7))
    produce_fills(env_settings, iter(records))
    ends = end_offsets(env_settings)
    expected_transfers = sum(
        len(post_fill(fill_from_record(r), default_schedule())) for r in records
    )

    first = sink_process("--batch-max", "300")
    wait_for(
        lambda: _count(env_settings, schema, "SELECT count(*) FROM fills") >= 1_500,
        "the first sink to post some fills",
    )
    first.kill()
    posted_at_kill = _count(env_settings, schema, "SELECT count(*) FROM fills")
    assert posted_at_kill < FILLS, "the kill came too late to interrupt anything"

    second = sink_process("--batch-max", "300")
    wait_for(
        lambda: (
            _count(env_settings, schema, "SELECT sum(next_offset) FROM consumer_offsets")
            == sum(ends.values())
        ),
        "the restarted sink to reach the end of fills",
    )
    assert second.terminate() == 0
    assert "stopped: posted" in second.output()

    assert _count(env_settings, schema, "SELECT count(*) FROM fills") == FILLS
    assert _count(env_settings, schema, "SELECT count(*) FROM transfers") == expected_transfers

    _check_last_snapshots(env_settings, schema)

    assert_verified_but_unfunded(run_cli("ledger", "verify"))
    rebuilt = run_cli("ledger", "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert "identical" in rebuilt.stdout


def _check_last_snapshots(settings: Settings, schema: str) -> None:
    """The last snapshot of every member account on ledger.balances shows its final cash."""
    with psycopg.connect(settings.database_url, options=f"-c search_path={schema}") as conn:
        cash = dict(
            conn.execute(
                "SELECT b.account, b.balance FROM balances b JOIN accounts a USING (account) "
                "WHERE a.kind = 'member' AND b.asset = 'HKD'"
            ).fetchall()
        )
    consumer = Consumer(
        settings.kafka(
            **{
                "group.id": "test-balances",
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
            }
        )
    )
    topic = settings.topic("ledger.balances")
    ends = {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        for p in range(topics.topic("ledger.balances").partitions)
    }
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
    last: dict[str, dict[str, object]] = {}
    seen = 0
    deadline = time.monotonic() + 30
    while seen < sum(ends.values()) and time.monotonic() < deadline:
        for message in consumer.consume(1000, 0.5):
            if message.error() is None:
                seen += 1
                snap = registry().decode("AccountSnapshot", message.value())
                last[snap["account"]] = snap
    consumer.close()
    assert set(last) == set(cash)
    assert all(last[a]["cash_cents"] == cash[a] for a in cash)
