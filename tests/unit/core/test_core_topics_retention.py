"""The audit topics keep their records forever unless a deployment says otherwise."""

from __future__ import annotations

import pytest

from sampan import topics, topics_cli
from sampan.errors import ConfigError


def test_audit_topics_never_expire_by_default() -> None:
    for name in ("orders.requests", "orders.internal", "orders.events", "fills", "hkex.dropcopy"):
        assert topics.topic(name).configs(1)["retention.ms"] == "-1", name
    for name in topics.AUDIT_TOPICS:
        assert topics.topic(name).cleanup == "delete", name
    assert {t.name for t in topics.DEAD_LETTERS} <= topics.AUDIT_TOPICS


def test_a_deployment_sets_the_audit_retention(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMPAN_AUDIT_RETENTION_DAYS", "2557")  # seven years
    retention_ms = topics_cli.audit_retention_ms()
    assert retention_ms == 2557 * topics.DAY_MS
    assert topics.topic("orders.events").configs(1, retention_ms)["retention.ms"] == str(
        retention_ms
    )
    # Market data is not an audit record: its own retention stands.
    trades = topics.topic("md.trades")
    assert trades.configs(1, retention_ms)["retention.ms"] == str(trades.retention_ms)


@pytest.mark.parametrize("raw", ["0", "-5", "seven", "1.5"])
def test_a_bad_audit_retention_is_refused(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("SAMPAN_AUDIT_RETENTION_DAYS", raw)
    with pytest.raises(ConfigError, match="SAMPAN_AUDIT_RETENTION_DAYS"):
        topics_cli.audit_retention_ms()
