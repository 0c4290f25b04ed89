"""An agent that cannot rebuild its state on assignment stops the runner with the error (so the
process exits non-zero) instead of going live without that state."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pytest

from sampan.config import Settings
from sampan.streams.runtime import AgentConfig, AgentRunner, InRecord, Output
from sampan.tools.records import produce_commands

pytestmark = pytest.mark.integration


class CannotRecover:
    name = "sampan-cannot-recover"
    inputs: Mapping[str, str] = {"orders.requests": "OrderCommand"}

    def __init__(self) -> None:
        self.handled = 0

    def handle(self, record: InRecord) -> Iterable[Output]:
        self.handled += 1
        return ()

    def end_batch(self) -> Iterable[Output]:
        return ()

    def stopping(self) -> Iterable[Output]:
        return ()

    def assigned(self, partitions: Sequence[tuple[str, int]], consumer: Any) -> None:
        raise TimeoutError("reading the state took too long")

    def revoked(self, partitions: Sequence[tuple[str, int]]) -> None:
        return None

    def reset(self) -> None:
        return None


def test_an_error_while_assigning_stops_the_runner(env_settings: Settings) -> None:
    produce_commands(env_settings, "assign", 5)
    agent = CannotRecover()
    config = AgentConfig(instance_id=uuid.uuid4().hex[:6], idle_exit_s=30.0)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        with pytest.raises(TimeoutError, match="took too long"):
            AgentRunner(agent, env_settings, config).run()
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
    assert agent.handled == 0
