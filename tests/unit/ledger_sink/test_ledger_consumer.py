"""The sink's consumer settings: a prefixed group, and a static member in live mode."""

from __future__ import annotations

import dataclasses

from sampan.config import settings
from sampan.ledger_sink.sink import SESSION_TIMEOUT_MS, consumer_config


def test_group_carries_the_topic_prefix_and_the_member_is_static() -> None:
    current = dataclasses.replace(settings(), topic_prefix="venue2.")
    config = consumer_config(current, "ledger_sink", "3", job_timeout_s=60.0)
    assert config["group.id"] == "venue2.ledger_sink"
    assert config["group.instance.id"] == "venue2.ledger_sink-3"
    assert config["session.timeout.ms"] == SESSION_TIMEOUT_MS <= 10_000


def test_replay_mode_joins_no_group_as_a_static_member() -> None:
    config = consumer_config(settings(), "ledger_sink", None, job_timeout_s=60.0)
    assert "group.instance.id" not in config
