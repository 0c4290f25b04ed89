"""`sampan audit access`'s reading of ui.access: each id once, a user's own records."""

from __future__ import annotations

from typing import Any

from sampan.tools.audit_access import AccessTrail, line


def record(audit_id: int, username: str | None, action: str, target: str) -> dict[str, Any]:
    return {
        "audit_id": audit_id,
        "ts_ns": audit_id,
        "username": username,
        "role": "trader" if username else None,
        "action": action,
        "target": target,
        "reason": "ok",
        "remote": "127.0.0.1",
    }


def test_a_repeated_id_is_shown_once() -> None:
    trail = AccessTrail()
    offered = [1, 2, 2, 3, 1, 4]  # a late repeat of 1, a double 2
    kept = [
        trail.offer(0, offset, record(i, "alice", "trade", "ACC2"))
        for offset, i in enumerate(offered)
    ]
    assert kept == [True, True, False, True, False, True]
    assert [e.record["audit_id"] for e in trail.entries()] == [1, 2, 3, 4]
    assert trail.repeats == 2
    assert [e.position for e in trail.entries()] == [
        "ui.access[0]@0",
        "ui.access[0]@1",
        "ui.access[0]@3",
        "ui.access[0]@5",
    ]


def test_a_user_s_records_include_logins_made_before_a_session() -> None:
    trail = AccessTrail("alice")
    trail.offer(0, 0, record(1, None, "login", "alice"))  # a failed login: no session yet
    trail.offer(0, 1, record(2, "alice", "login", "alice"))
    trail.offer(0, 2, record(3, "bob", "trade", "alice"))  # bob's refusal, not alice's
    trail.offer(0, 3, record(4, "alice", "trade", "ACC2"))
    trail.offer(0, 4, record(5, None, "login", "bob"))
    trail.offer(0, 5, record(6, "alice", "logout", "alice"))
    assert [e.record["audit_id"] for e in trail.entries()] == [1, 2, 4, 6]
    assert "alice (trader)" in line(trail.entries()[1])


def test_memory_is_bounded_to_the_newest() -> None:
    trail = AccessTrail(keep_max=3)
    for i in range(1, 11):
        trail.offer(0, i, record(i, "alice", "trade", "ACC2"))
    assert [e.record["audit_id"] for e in trail.entries()] == [8, 9, 10]
    assert trail.dropped == 7
