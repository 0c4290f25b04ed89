"""`sampan matcher verify` on a matcher that is only behind its input says BEHIND, with how
many commands it has not processed yet, not DIFFERENT."""

from __future__ import annotations

import signal
import time

import pytest
from test_matcher_crash import (
    ACCOUNTS,
    committed_total,
    end_total,
    log_tail,
    produce,
    start_matcher,
)

from sampan.config import Settings
from sampan.market.listings import listings
from sampan.matcher.verify import verify
from sampan.tools.loadgen import generate_commands

pytestmark = pytest.mark.integration
CATCH_UP_TIMEOUT_S = 120.0


def test_a_matcher_that_is_only_behind_is_reported_behind(env_settings: Settings) -> None:
    commands = list(generate_commands(18, 3_000, listings(), ACCOUNTS))
    produce(env_settings, commands[:2_000])
    matcher = start_matcher()
    try:
        deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
        while committed_total(env_settings) < end_total(env_settings):
            assert time.monotonic() < deadline, f"matcher did not catch up:\n{log_tail()}"
            time.sleep(0.5)
    finally:
        matcher.send_signal(signal.SIGTERM)
        matcher.wait(timeout=60)
    caught_up = verify(env_settings, progress=False)
    assert caught_up.difference is None and caught_up.behind is None, caught_up.summary()

    placed = produce(env_settings, commands[2_000:])  # the matcher is stopped: behind by 1,000
    result = verify(env_settings, progress=False)
    assert result.difference is None, result.summary()
    assert result.behind is not None, result.summary()
    assert sum(result.behind.commands.values()) == 1_000
    for partition in {p for p, _ in placed}:
        assert result.behind.commands[partition] == sum(1 for p, _ in placed if p == partition)
    assert result.behind.records > 0
    assert result.summary().startswith("BEHIND: 1000 commands of orders.internal")
