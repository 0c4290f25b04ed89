"""The sink is prompt: a fill is posted without waiting for a full batch, and a SIGKILLed sink
restarted with the same SAMPAN_INSTANCE_ID is posting again within seconds (static group
membership), not after its predecessor's session timed out."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psycopg
import pytest
from conftest import SinkProcess, wait_for

from sampan.config import Settings
from sampan.ledger_sink.sink import SESSION_TIMEOUT_MS, LedgerSink, SinkOptions
from sampan.tools.bench.ledger import produce_fills, synthetic_fills

pytestmark = pytest.mark.integration
POLL_TIMEOUT_S = 10.0


def _posted(settings: Settings, schema: str) -> int:
    with psycopg.connect(settings.database_url, options=f"-c search_path={schema}") as conn:
        row = conn.execute("SELECT count(*) FROM fills").fetchone()
    return int(row[0]) if row else 0


def _post_one_and_time(settings: Settings, schema: str, n: int) -> float:
    """Produce the n-th synthetic fill; seconds until the ledger holds n + 1 fills."""
    produce_fills(settings, synthetic_fills(1, seed=3, start=n))
    started = time.monotonic()
    wait_for(lambda: _posted(settings, schema) >= n + 1, f"fill {n} to be posted", 60.0)
    return time.monotonic() - started


def test_a_single_fill_is_posted_without_waiting_for_a_batch(
    env_settings: Settings, schema: str
) -> None:
    # A long poll timeout and a large batch: a sink that waits to fill its batch (or for its
    # poll to time out) posts a lone fill only after POLL_TIMEOUT_S.
    sink = LedgerSink(
        env_settings,
        SinkOptions(schema=schema, batch_max=2_000, poll_timeout_s=POLL_TIMEOUT_S, publish=False),
    )
    runner = threading.Thread(target=sink.run, name="sink-under-test", daemon=True)
    runner.start()
    try:
        _post_one_and_time(env_settings, schema, 0)  # the group is joined, the sink is idle
        latencies = [_post_one_and_time(env_settings, schema, n) for n in (1, 2, 3)]
    finally:
        sink.stop()
        runner.join(POLL_TIMEOUT_S + 30)
    print(f"lone fill produced → posted: {', '.join(f'{s:.3f} s' for s in latencies)}")
    assert max(latencies) < POLL_TIMEOUT_S / 2, latencies


def test_sigkilled_sink_is_back_within_seconds(
    env_settings: Settings,
    schema: str,
    sink_process: Callable[..., SinkProcess],
) -> None:
    first = sink_process()
    _post_one_and_time(env_settings, schema, 0)
    first.kill()

    killed_at = time.monotonic()
    second = sink_process()
    produce_fills(env_settings, synthetic_fills(1, seed=3, start=1))
    wait_for(lambda: _posted(env_settings, schema) >= 2, "the restarted sink to post", 60.0)
    back_s = time.monotonic() - killed_at
    print(f"SIGKILL → restarted sink posting again: {back_s:.2f} s")
    # A sink that must wait for its predecessor's session to expire is back only after the
    # session timeout; a static member takes its partitions back as soon as it has started.
    assert back_s < SESSION_TIMEOUT_MS / 1000, second.output()
    assert second.terminate() == 0
