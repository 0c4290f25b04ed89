"""The screen shows what the analytics app publishes: trades on md.trades go through the real
`sampan analytics` process to md.stats and md.movers, and from there through `sampan ui` to a
WebSocket client as its `stats` and `movers` messages (the screen ranks nothing itself)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from conftest import ws_messages
from router_harness import Proc, publish, state_dir
from websockets.sync.client import connect

from sampan.config import Settings

pytestmark = pytest.mark.integration

READY_S = 60.0
PREV_E3 = {700: 500_000, 5: 100_000, 1299: 80_000}
LAST_E3 = {700: 550_000, 5: 95_000}  # +10.00% and -5.00%


def instrument(security: int) -> dict[str, Any]:
    return {
        "security": security,
        "name": f"SEC{security}",
        "currency": "HKD",
        "board_lot": 100,
        "spread_table": "A",
        "prev_close_e3": PREV_E3[security],
        "enabled": True,
        "ts_ns": time.time_ns(),
    }


def trade(security: int, n: int, price_e3: int) -> tuple[str, dict[str, Any]]:
    record = {
        "venue": "INTERNAL",
        "security": security,
        "trade_id": f"T{security}-{n}",
        "price_e3": price_e3,
        "qty": 100,
        "aggressor": None,
        "ts_ns": time.time_ns(),
    }
    return f"INTERNAL:{security}", record


def wait_for_log(proc: Proc, marker: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.proc is not None
        if proc.proc.poll() is not None:
            raise AssertionError(f"{proc.args} exited:\n{proc.tail()}")
        if marker in proc.tail() or marker in proc.log.read_text(errors="replace"):
            return
        time.sleep(0.3)
    raise AssertionError(f"no {marker!r} in the log within {timeout_s} s:\n{proc.tail()}")


def test_movers_from_analytics_reach_a_websocket_client(
    env_settings: Settings, users: object, start_ui
) -> None:  # type: ignore[no-untyped-def]
    s = env_settings
    publish(s, "reference.instruments", "Instrument", [(str(k), instrument(k)) for k in PREV_E3])
    analytics = Proc("analytics", ["sampan.cli", "analytics"], state_dir())
    try:
        wait_for_log(analytics, "[^Worker]: Ready", READY_S)
        ui = start_ui()
        alice = ui.login("alice")
        with connect(ui.ws_url(alice.token), open_timeout=10, max_size=None) as ws:
            ws.send('{"op":"subscribe","channel":"market"}')
            first = ws_messages(ws, lambda m: m["type"] == "movers", 10)
            assert first[-1]["top"] == [] and first[-1]["bottom"] == []
            # A first price on each, then the session's last: only the last counts.
            trades = [trade(700, 0, 510_000), trade(5, 0, 101_000)]
            trades += [trade(700, 1, LAST_E3[700]), trade(5, 1, LAST_E3[5])]
            publish(s, "md.trades", "TradeTick", trades)

            def ranked(m: dict[str, Any]) -> bool:
                return (
                    m["type"] == "movers"
                    and [r["security"] for r in m["top"]] == [700]
                    and [r["security"] for r in m["bottom"]] == [5]
                )

            got = ws_messages(ws, ranked, 60)
            movers = got[-1]
            assert movers["venue"] == "INTERNAL"
            assert movers["top"][0]["last_e3"] == LAST_E3[700]
            assert movers["top"][0]["change_bp"] == 1_000
            assert movers["bottom"][0]["change_bp"] == -500
            assert movers["bottom"][0]["name"] == "SEC5"

            # The internal last price and change come from analytics' md.stats records.
            def internal_last(m: dict[str, Any]) -> bool:
                return m["type"] == "stats" and m["security"] == 5 and m["last_e3"] == LAST_E3[5]

            if not any(internal_last(m) for m in got):
                got = ws_messages(ws, internal_last, 30)
            stats = next(m for m in got if internal_last(m))
            assert stats["venue"] == "INTERNAL" and stats["change_bp"] == -500

        # A client that connects later gets the published ranking at once.
        with connect(ui.ws_url(alice.token), open_timeout=10, max_size=None) as ws:
            ws.send('{"op":"subscribe","channel":"market"}')
            late = ws_messages(ws, lambda m: m["type"] == "movers", 10)
            assert ranked(late[-1])
            rows = {m["security"]: m for m in late if m["type"] == "stats"}
            assert rows[700]["last_e3"] == LAST_E3[700] and rows[1299]["last_e3"] is None
    finally:
        analytics.stop()
