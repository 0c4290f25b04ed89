"""The screen's access rules and bad input on the real broker and database: bad input gets a
clear error and writes nothing; cookie sessions need the CSRF header; logout ends a session;
failed logins are throttled; a restarted server rebuilds today's orders from the topics."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from conftest import PASSWORD, ws_messages
from router_harness import account, publish, read_all
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from sampan.config import Settings
from sampan.tools.seed import publish_seed

pytestmark = pytest.mark.integration

ORDER = {"account": "BUY1", "security": 700, "side": "BUY", "qty": 100, "price_e3": 512_000}


def _requests(settings: Settings) -> list[dict]:
    return read_all(settings, "orders.requests", "OrderCommand")


def test_bad_input_changes_nothing(env_settings: Settings, users: object, start_ui) -> None:  # type: ignore[no-untyped-def]
    publish_seed(env_settings)
    publish(env_settings, "reference.accounts", "Account", [account("BUY1", "M1", 10**9)])
    ui = start_ui()
    alice = ui.login("alice")
    cases = [
        (b'{"account": "BUY1", "security":', 400, "MALFORMED_JSON"),
        (json.dumps({**ORDER, "security": 7}).encode(), 400, "UNKNOWN_SECURITY"),
        (json.dumps({**ORDER, "qty": 10**30}).encode(), 400, "INVALID_FIELD"),
        (json.dumps({**ORDER, "price_e3": "512"}).encode(), 400, "INVALID_FIELD"),
        (b"x" * (300 * 1024), 413, "TOO_LARGE"),
        (json.dumps({**ORDER, "account": "ACC2"}).encode(), 403, "FORBIDDEN"),
        (json.dumps({**ORDER, "account": "NOSUCH"}).encode(), 403, "FORBIDDEN"),
    ]
    for body, status, code in cases:
        response = alice.post(
            "/api/orders", content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == status, (body[:60], response.text)
        assert response.json()["error"] == code and response.json()["reason"]
    batch = alice.post(
        "/api/batches", json={"account": "BUY1", "orders": [ORDER, {**ORDER, "qty": 10**30}]}
    )
    assert batch.status_code == 400 and "order 2" in batch.json()["reason"]

    with connect(ui.ws_url(alice.token), open_timeout=10, max_size=None) as ws:
        ws.send("x" * (10 * 1024 * 1024))
        assert ws_messages(ws, lambda m: m["type"] == "error", 20)[-1]["error"] == "TOO_LARGE"
        ws.send("{not json")
        assert ws_messages(ws, lambda m: m["type"] == "error", 10)[-1]["error"] == "MALFORMED_JSON"
        ws.send('{"op":"subscribe","channel":"depth","security":7}')
        assert (
            ws_messages(ws, lambda m: m["type"] == "error", 10)[-1]["error"] == "UNKNOWN_SECURITY"
        )
        ws.send('{"op":"subscribe","channel":"account","account":"ACC2"}')
        assert ws_messages(ws, lambda m: m["type"] == "error", 10)[-1]["error"] == "FORBIDDEN"
        # The socket still serves after all that.
        ws.send('{"op":"subscribe","channel":"account","account":"BUY1"}')
        ws_messages(ws, lambda m: m["type"] == "inventory" and m["account"] == "BUY1", 10)

    assert _requests(env_settings) == []
    good = alice.post(
        "/api/batches", json={"account": "BUY1", "orders": [ORDER, {**ORDER, "qty": 200}]}
    )
    assert good.status_code == 202, good.text
    written = _requests(env_settings)
    assert [c["qty"] for c in written] == [100, 200]
    assert {c["batch_id"] for c in written} == {good.json()["batch_id"]}
    assert {c["user"] for c in written} == {"alice"} and {c["member"] for c in written} == {"M1"}

    # Refused attempts are in the access audit, which traders may not read.
    assert alice.get("/api/access-audit").status_code == 403
    trail = ui.login("audrey").get("/api/access-audit").json()
    assert any(r["username"] == "alice" and r["target"] == "ACC2" for r in trail)
    assert any(r["action"] == "view_audit" and r["username"] == "alice" for r in trail)


def test_cookie_session_csrf_logout_throttle_and_restart(
    env_settings: Settings, users: object, start_ui
) -> None:  # type: ignore[no-untyped-def]
    publish_seed(env_settings)
    publish(env_settings, "reference.accounts", "Account", [account("BUY1", "M1", 10**9)])
    ui = start_ui()
    with httpx.Client(base_url=ui.url, timeout=10) as page:
        front = page.get("/")
        assert (
            front.status_code == 200
            and "frame-ancestors 'none'" in front.headers["content-security-policy"]
        )
        login = page.post("/api/login", json={"username": "alice", "password": PASSWORD})
        assert login.status_code == 200
        assert "httponly" in login.headers.get_list("set-cookie")[0].lower()
        assert page.get("/api/me").json()["username"] == "alice"
        no_csrf = page.post("/api/orders", json=ORDER)
        assert no_csrf.status_code == 403 and no_csrf.json()["error"] == "CSRF"
        placed = page.post(
            "/api/orders", json=ORDER, headers={"X-CSRF-Token": login.json()["csrf"]}
        )
        assert placed.status_code == 202
        cl_ord_id = placed.json()["cl_ord_id"]
        token = login.json()["token"]
        # The cookie is refused on a WebSocket opened by another site's page.
        cookie = f"sampan_session={token}"
        with pytest.raises(InvalidStatus):
            connect(
                ui.ws_url("").split("?")[0],
                additional_headers={"Cookie": cookie},
                origin="https://evil.example",
                open_timeout=10,
            )  # type: ignore[arg-type]
        assert (
            page.post("/api/logout", headers={"X-CSRF-Token": login.json()["csrf"]}).status_code
            == 204
        )
        after = httpx.get(
            ui.url + "/api/me", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert after.status_code == 401 and "logout" in after.json()["reason"]

    with httpx.Client(base_url=ui.url, timeout=10) as guess:
        statuses = [
            guess.post("/api/login", json={"username": "bob", "password": f"wrong {i}"}).status_code
            for i in range(7)
        ]
        assert statuses[:5] == [401] * 5 and statuses[5:] == [429, 429]
        blocked = guess.post("/api/login", json={"username": "bob", "password": PASSWORD})
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0

    # The command reached orders.requests; a restarted server finds the order again (no router
    # runs here, so it is the router's report that is missing: publish one as the router would).
    [command] = [c for c in _requests(env_settings) if c["cl_ord_id"] == cl_ord_id]
    report = {
        "exec_id": "X1",
        "venue": "INTERNAL",
        "order_id": "O1",
        "cl_ord_id": cl_ord_id,
        "orig_cl_ord_id": None,
        "parent_id": None,
        "account": "BUY1",
        "member": "M1",
        "security": 700,
        "side": "BUY",
        "exec_type": "NEW",
        "ord_status": "NEW",
        "price_e3": command["price_e3"],
        "order_qty": command["qty"],
        "last_px_e3": 0,
        "last_qty": 0,
        "cum_qty": 0,
        "leaves_qty": command["qty"],
        "cum_notional_e3": 0,
        "reject_reason": None,
        "text": None,
        "ts_ns": time.time_ns(),
    }
    publish(env_settings, "orders.events", "ExecutionReport", [("BUY1", report)])
    ui.proc.stop()
    again = start_ui()
    orders = again.login("alice").get("/api/accounts/BUY1/orders").json()
    assert [o["cl_ord_id"] for o in orders] == [cl_ord_id]
    assert orders[0]["status"] == "NEW" and orders[0]["leaves_qty"] == 100
