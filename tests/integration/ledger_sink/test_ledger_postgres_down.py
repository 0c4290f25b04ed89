"""PostgreSQL stopped under load and started again: the sink waits, reconnects, loses nothing."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psycopg
import pytest
from conftest import SinkProcess, assert_verified_but_unfunded, run_cli, wait_for

from sampan import stack
from sampan.config import Settings
from sampan.tools.bench.ledger import end_offsets, produce_fills, synthetic_fills

pytestmark = pytest.mark.integration
FILLS_PER_BURST = 500
BURSTS = 12
DOWN_S = 3.0


def _fills_posted(settings: Settings, schema: str) -> int:
    try:
        with psycopg.connect(
            settings.database_url, options=f"-c search_path={schema}", connect_timeout=2
        ) as conn:
            row = conn.execute("SELECT count(*) FROM fills").fetchone()
    except psycopg.OperationalError:
        return -1
    return int(row[0]) if row else 0


def test_postgres_restart_under_load(
    env_settings: Settings,
    schema: str,
    sink_process: Callable[..., SinkProcess],
) -> None:
    sink = sink_process("--batch-max", "200", "--db-wait-max-s", "120")

    def load() -> None:  # a steady stream of fills while PostgreSQL goes away and comes back
        for burst in range(BURSTS):
            produce_fills(
                env_settings,
                synthetic_fills(FILLS_PER_BURST, seed=11, start=burst * FILLS_PER_BURST),
            )
            time.sleep(0.5)

    producer = threading.Thread(target=load, name="fill-load")
    producer.start()
    wait_for(lambda: _fills_posted(env_settings, schema) > 0, "the sink to post fills")
    paths = stack.Paths(env_settings.state_dir)
    try:
        stack.stop_postgres(paths)
        time.sleep(DOWN_S)
    finally:
        stack.start_postgres(env_settings, paths)
    producer.join(timeout=60)
    assert not producer.is_alive()
    total = FILLS_PER_BURST * BURSTS
    wait_for(
        lambda: _fills_posted(env_settings, schema) == total,
        "the sink to catch up after the restart",
        timeout_s=90,
    )
    ends = end_offsets(env_settings)
    assert sink.proc.poll() is None, sink.output()
    assert sink.terminate() == 0
    log = sink.output()
    assert "waiting for PostgreSQL" in log
    with psycopg.connect(env_settings.database_url, options=f"-c search_path={schema}") as conn:
        row = conn.execute("SELECT sum(next_offset) FROM consumer_offsets").fetchone()
    assert row is not None and row[0] == sum(ends.values())
    assert_verified_but_unfunded(run_cli("ledger", "verify"))
