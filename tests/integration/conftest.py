"""Fixtures for integration tests: the real local stack, and a fresh topic namespace per test.

The stack comes from the environment (SAMPAN_KAFKA_BOOTSTRAP, SAMPAN_DATABASE_URL); when those
point at the local defaults and it is not running, it is started here, as `make test` does.
Each test gets its own topic prefix, so tests never read each other's records.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from sampan import stack, topics_cli
from sampan.config import Settings, settings


@pytest.fixture(scope="session")
def stack_settings() -> Settings:
    current = settings()
    if not os.environ.get("SAMPAN_KAFKA_BOOTSTRAP") and not stack.is_up(current):
        stack.up(current)
    return current


@pytest.fixture
def prefix(stack_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A unique topic prefix with every catalog topic created under it; set in the env too,
    so subprocesses started by the test use the same topics."""
    value = f"t{uuid.uuid4().hex[:10]}."
    monkeypatch.setenv("SAMPAN_TOPIC_PREFIX", value)
    result = topics_cli.apply(settings())
    assert not result.drift, result.drift
    yield value


@pytest.fixture
def env_settings(prefix: str) -> Settings:
    """Settings as a process started now would read them (with the test's topic prefix)."""
    return settings()
