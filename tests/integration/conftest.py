"""Fixtures for integration tests: the real local stack, and a fresh topic namespace per test.

The stack comes from the environment (SAMPAN_KAFKA_BOOTSTRAP, SAMPAN_DATABASE_URL); when those
point at the local defaults and it is not running, it is started here, as `make test` does.
Each test gets its own topic prefix, so tests never read each other's records, and its
topics are deleted after it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from topic_namespace import new_prefix, topic_namespace

from sampan import stack
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
    so subprocesses started by the test use the same topics. The topics are deleted after
    the test (a bounded wait), so a test run leaves the broker as it found it."""
    monkeypatch.setenv("SAMPAN_TOPIC_PREFIX", new_prefix())
    with topic_namespace(settings()) as value:
        yield value


@pytest.fixture
def env_settings(prefix: str) -> Settings:
    """Settings as a process started now would read them (with the test's topic prefix)."""
    return settings()
