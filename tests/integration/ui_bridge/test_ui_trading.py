"""The screen on the real stack with the real matcher and router: a trader logs in, places an
order that fills against another member's, and sees the execution on the WebSocket; another
firm's account stays invisible over REST and WebSocket; a risk officer halts an account and its
next order is refused by the router."""

from __future__ import annotations

import pytest
from conftest import ws_messages
from router_harness import Sim, account, publish, start_matcher, start_router, state_dir
from websockets.sync.client import connect

from sampan.config import Settings
from sampan.tools.seed import publish_seed

pytestmark = pytest.mark.integration

PRICE_E3 = 512_000


def test_trade_fills_and_reaches_the_websocket(
    env_settings: Settings, users: object, start_ui
) -> None:  # type: ignore[no-untyped-def]
    directory = state_dir()
    sim = Sim(directory / "sim")
    publish_seed(env_settings)
    publish(
        env_settings,
        "reference.accounts",
        "Account",
        [account("BUY1", "M1", 10**9), account("SELL2", "M2", 10**9, allow_short=True)],
    )
    matcher = start_matcher(directory)
    router = start_router(sim, directory)
    try:
        ui = start_ui()
        alice, bob, rita = ui.login("alice"), ui.login("bob"), ui.login("rita")
        assert "BUY1" in alice.get("/api/me").json()["accounts"]
        assert "SELL2" not in alice.get("/api/me").json()["accounts"]

        with connect(ui.ws_url(alice.token), open_timeout=10, max_size=None) as ws:
            ws.send('{"op":"subscribe","channel":"account","account":"BUY1"}')
            ws.send('{"op":"subscribe","channel":"depth","security":700}')
            ws_messages(ws, lambda m: m["type"] == "inventory", 10)

            sell = bob.post(
                "/api/orders",
                json={
                    "account": "SELL2",
                    "security": 700,
                    "side": "SELL",
                    "qty": 100,
                    "price_e3": PRICE_E3,
                },
            )
            assert sell.status_code == 202, sell.text
            ws_messages(
                ws,
                lambda m: (
                    m["type"] == "depth"
                    and m["venue"] == "INTERNAL"
                    and m["asks"]
                    and m["asks"][0]["price_e3"] == PRICE_E3
                ),
                60,
            )
            buy = alice.post(
                "/api/orders",
                json={
                    "account": "BUY1",
                    "security": 700,
                    "side": "BUY",
                    "qty": 100,
                    "price_e3": PRICE_E3,
                },
            )
            assert buy.status_code == 202, buy.text
            cl_ord_id = buy.json()["cl_ord_id"]
            got = ws_messages(
                ws,
                lambda m: (
                    m["type"] == "exec"
                    and m["cl_ord_id"] == cl_ord_id
                    and m["ord_status"] == "FILLED"
                ),
                60,
            )
            trade = got[-1]
            assert trade["exec_type"] == "TRADE" and trade["last_qty"] == 100
            assert trade["last_px_e3"] == PRICE_E3 and trade["account"] == "BUY1"
            # Nothing of the other firm's account reached this socket.
            assert all(m.get("account") in (None, "BUY1") for m in got)

            orders = alice.get("/api/accounts/BUY1/orders").json()
            [row] = [o for o in orders if o["cl_ord_id"] == cl_ord_id]
            assert row["status"] == "FILLED" and row["cum_qty"] == row["order_qty"] == 100
            assert [f["last_qty"] for f in row["fills"]] == [100]

            # Amend one resting order and cancel another; the log keeps each under its own
            # cl_ord_id. (Cancelling an amended order is the router's and matcher's to agree on.)
            resting = []
            for _ in range(2):
                rest = alice.post(
                    "/api/orders",
                    json={
                        "account": "BUY1",
                        "security": 700,
                        "side": "BUY",
                        "qty": 100,
                        "price_e3": 500_000,
                    },
                )
                cl = rest.json()["cl_ord_id"]
                resting.append(cl)
                ws_messages(ws, lambda m, cl=cl: m["type"] == "exec" and m["cl_ord_id"] == cl, 30)
            amend = alice.post(
                f"/api/orders/{resting[0]}/amend",
                json={"account": "BUY1", "qty": 200, "price_e3": 501_000},
            )
            assert amend.status_code == 202, amend.text
            replaced = ws_messages(
                ws,
                lambda m: m["type"] == "exec" and m["cl_ord_id"] == amend.json()["cl_ord_id"],
                30,
            )[-1]
            assert replaced["exec_type"] == "REPLACED", (
                replaced["reject_reason"],
                replaced["text"],
            )
            assert (replaced["order_qty"], replaced["price_e3"]) == (200, 501_000)
            cancel = alice.post(f"/api/orders/{resting[1]}/cancel", json={"account": "BUY1"})
            assert cancel.status_code == 202, cancel.text
            canceled = ws_messages(
                ws,
                lambda m: m["type"] == "exec" and m["cl_ord_id"] == cancel.json()["cl_ord_id"],
                30,
            )[-1]
            assert canceled["exec_type"] == "CANCELED", (
                canceled["reject_reason"],
                canceled["text"],
            )
            log = {o["cl_ord_id"]: o for o in alice.get("/api/accounts/BUY1/orders").json()}
            assert (log[resting[0]]["status"], log[resting[0]]["order_qty"]) == ("NEW", 200)
            assert log[resting[0]]["live_cl_ord_id"] == amend.json()["cl_ord_id"]
            assert log[resting[1]]["status"] == "CANCELED"
            assert (
                bob.post(f"/api/orders/{resting[1]}/cancel", json={"account": "BUY1"}).status_code
                == 403
            )

            # Another firm's account: refused over REST and WebSocket, and audited.
            assert alice.get("/api/accounts/SELL2").status_code == 403
            assert alice.get("/api/accounts/SELL2/orders").status_code == 403
            refused = alice.post(
                "/api/orders",
                json={
                    "account": "SELL2",
                    "security": 700,
                    "side": "BUY",
                    "qty": 100,
                    "price_e3": PRICE_E3,
                },
            )
            assert refused.status_code == 403 and "M1" in refused.json()["reason"]
            ws.send('{"op":"subscribe","channel":"account","account":"SELL2"}')
            error = ws_messages(ws, lambda m: m["type"] == "error", 10)[-1]
            assert error["error"] == "FORBIDDEN"
            trail = rita.get("/api/access-audit", params={"limit": 50}).json()
            targets = {(r["username"], r["action"], r["target"]) for r in trail}
            assert ("alice", "view_account", "SELL2") in targets
            assert ("alice", "trade", "SELL2") in targets
            assert ("alice", "subscribe account", "SELL2") in targets

            # The risk officer halts BUY1; its next order is refused by the router.
            halt = rita.put("/api/accounts/BUY1/limits", json={"enabled": False})
            assert halt.status_code == 202, halt.text
            ws_messages(ws, lambda m: m["type"] == "limits" and m["enabled"] is False, 30)
            assert alice.put("/api/accounts/BUY1/limits", json={"enabled": True}).status_code == 403
            reason = None
            for _ in range(20):  # the router follows reference.accounts on its own clock
                placed = alice.post(
                    "/api/orders",
                    json={
                        "account": "BUY1",
                        "security": 700,
                        "side": "BUY",
                        "qty": 100,
                        "price_e3": 500_000,
                    },
                )
                assert placed.status_code == 202
                cl = placed.json()["cl_ord_id"]
                verdict = ws_messages(
                    ws, lambda m, cl=cl: m["type"] == "exec" and m["cl_ord_id"] == cl, 30
                )[-1]
                if verdict["exec_type"] == "REJECTED":
                    reason = verdict["reject_reason"]
                    break
            assert reason == "ACCOUNT_DISABLED"
    finally:
        router.stop()
        matcher.stop()
        sim.close()
