"""The ACLs generated from the topic catalog: each process gets what its flow needs, no more."""

from __future__ import annotations

import pytest

from sampan import acls, topics
from sampan.credentials import ADMIN, PRINCIPALS


def _can(principal: str, operation: str, topic: str, prefix: str = "") -> bool:
    return prefix + topic in acls.topics_of(principal, operation, prefix)


def test_every_catalog_writer_and_reader_is_a_principal() -> None:
    for topic in topics.CATALOG:
        for role in (*topic.writers, *topic.readers):
            assert set(acls.principals_of(role)) <= set(PRINCIPALS), role


def test_the_order_path_is_closed_to_everyone_but_its_writers() -> None:
    writers_internal = {p for p in acls.PROCESSES if _can(p, "write", "orders.internal")}
    assert writers_internal == {"router"}
    writers_fills = {p for p in acls.PROCESSES if _can(p, "write", "fills")}
    assert writers_fills == {"matcher", "router"}
    assert _can("ui_bridge", "write", "orders.requests")
    assert not _can("ui_bridge", "write", "orders.internal")
    assert not _can("analytics", "write", "fills")
    assert not _can("analytics", "read", "reference.accounts")
    assert not _can("matcher", "read", "ledger.balances")
    assert _can("matcher", "read", "orders.internal")
    assert _can("ledger_sink", "read", "fills") and _can("ledger_sink", "write", "ledger.balances")


def test_dead_letters_are_written_by_the_readers_of_their_topic() -> None:
    assert _can("router", "write", "orders.requests.dlq")
    assert _can("matcher", "write", "orders.internal.dlq")
    assert not _can("matcher", "write", "orders.requests.dlq")
    for principal in acls.PROCESSES:  # "all" read it; the audit command only reports
        assert _can(principal, "write", "reference.instruments.dlq") == (principal != "audit")


def test_audit_reads_every_topic_it_exports_and_writes_none() -> None:
    for topic in topics.ALL:
        assert _can("audit", "read", topic.name) == (topic.name not in acls.AUDIT_EXCLUDED)
    assert acls.topics_of("audit", "write") == []


def test_admin_needs_no_grant_and_every_process_gets_its_groups() -> None:
    everything = acls.grants("t1.")
    assert not [g for g in everything if g.principal == ADMIN]
    for principal in acls.PROCESSES:
        groups = [g for g in everything if g.principal == principal and g.resource == "group"]
        assert any(g.name == acls.READER_GROUP for g in groups), principal
    matcher_ids = [
        g.name for g in everything if g.principal == "matcher" and g.resource == "transactional_id"
    ]
    assert matcher_ids == ["t1.sampan-matcher-"]


@pytest.mark.parametrize("prefix", ["", "t9."])
def test_topic_grants_are_literal_names_under_the_prefix(prefix: str) -> None:
    for grant in acls.grants(prefix):
        if grant.resource == "topic":
            assert grant.pattern == "literal"
            assert grant.name.removeprefix(prefix) in topics.BY_NAME
