"""The per-test topic namespace deletes what it created, so `make test` leaves the broker's
topic list as it found it."""

from __future__ import annotations

import pytest
from topic_namespace import new_prefix, topic_namespace, topics_under

from sampan import topics
from sampan.config import Settings, settings

pytestmark = pytest.mark.integration


def test_namespace_topics_are_deleted_afterwards(
    stack_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAMPAN_TOPIC_PREFIX", new_prefix())
    current = settings()
    with topic_namespace(current) as prefix:
        created = topics_under(current, prefix)
        assert created == sorted(current.topic(t.name) for t in topics.ALL)
    assert topics_under(current, prefix) == []
