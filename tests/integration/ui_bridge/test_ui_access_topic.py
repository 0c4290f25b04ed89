"""The screen's access audit trail reaches `ui.access` on the real broker and database: a
login, a refused request (403) and a logout each appear on the topic exactly once, keyed by
their row id, also across a restart of the server and for a row written while no server ran;
`sampan audit access` shows them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest
from router_harness import read_all

from sampan.config import Settings
from sampan.ui_bridge.store import Store

pytestmark = pytest.mark.integration

RELAYED_S = 30.0


def _on_topic(settings: Settings) -> list[dict[str, Any]]:
    return read_all(settings, "ui.access", "AccessAudit")


def _wait_relayed(settings: Settings, store: Store) -> list[dict[str, Any]]:
    """The topic once it holds as many records as the table has rows (bounded)."""
    deadline = time.monotonic() + RELAYED_S
    while True:
        rows = store.audit_trail(1000)
        on_topic = _on_topic(settings)
        if len(on_topic) >= len(rows):
            return on_topic
        if time.monotonic() > deadline:
            raise AssertionError(
                f"ui.access holds {len(on_topic)} records, the table {len(rows)} rows, "
                f"after {RELAYED_S} s"
            )
        time.sleep(0.3)


def _session(ui: Any, username: str) -> None:
    """Log in, be refused the access audit (traders may not read it), log out."""
    client = ui.login(username)
    assert client.get("/api/access-audit").status_code == 403
    assert client.post("/api/logout").status_code == 204


def _story(records: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(r["username"], r["action"], r["target"], r["reason"]) for r in records]


def test_logins_refusals_and_logouts_reach_ui_access_once_across_a_restart(
    env_settings: Settings, users: Store, start_ui
) -> None:  # type: ignore[no-untyped-def]
    ui = start_ui()
    _session(ui, "alice")
    first = _wait_relayed(env_settings, users)
    assert _story(first) == [
        ("alice", "login", "alice", "ok"),
        ("alice", "view_audit", "*", "the trader role may not view audit"),
        ("alice", "logout", "alice", "ok"),
    ]
    ui.proc.stop()

    # A row committed while no server runs (as if one died before relaying it).
    users.audit(None, None, "login", "mallory", "wrong user name or password", "10.0.0.9")

    ui = start_ui()
    _session(ui, "bob")
    on_topic = _wait_relayed(env_settings, users)
    time.sleep(2.0)  # a few relay periods: nothing more may arrive
    on_topic = _on_topic(env_settings)

    rows = sorted(users.audit_trail(1000), key=lambda r: r["id"])
    ids = [r["audit_id"] for r in on_topic]
    assert ids == [r["id"] for r in rows], "each row exactly once, in id order"
    assert [
        {k: r[k] for k in ("ts_ns", "username", "role", "action", "target", "reason", "remote")}
        for r in on_topic
    ] == [{k: v for k, v in r.items() if k != "id"} for r in rows]
    assert _story(on_topic)[3:] == [
        (None, "login", "mallory", "wrong user name or password"),
        ("bob", "login", "bob", "ok"),
        ("bob", "view_audit", "*", "the trader role may not view audit"),
        ("bob", "logout", "bob", "ok"),
    ]

    shown = subprocess.run(
        [sys.executable, "-m", "sampan.cli", "audit", "access", "--user", "alice", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )
    assert shown.returncode == 0, shown.stderr
    body = json.loads(shown.stdout)
    assert _story(body["records"]) == _story(first)
    assert body["repeats_skipped"] == 0
    table = subprocess.run(
        [sys.executable, "-m", "sampan.cli", "audit", "access"],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )
    assert table.returncode == 0, table.stderr
    assert "access: 7 records" in table.stdout and "mallory" in table.stdout
