"""Surveillance on the real stack: a scripted layering sequence through the real matcher raises
exactly one SPOOFING alert on surveillance.alerts with its evidence, also when the analytics
app is SIGKILLed in the middle of the sequence (after it committed its reading of the orders)
and restarted, and again after a second restart (the alert raised again under its id)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from venue_procs import (
    Procs,
    committed_through,
    order,
    procs_fixture,
    reports,
    to_matcher,
    wait_for,
)

from sampan.config import Settings
from sampan.tools.records import read_topic

pytestmark = pytest.mark.integration

TENCENT = 700  # tick HK$0.500 between HK$500 and HK$1,000; board lot 100


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    yield from procs_fixture(tmp_path)


def alerts(s: Settings) -> dict[str, dict[str, Any]]:
    """What a reader keyed by alert id sees: the latest record of each id."""
    return {a["alert_id"]: a for a in read_topic(s, "surveillance.alerts", "SurveillanceAlert")}


def order_ids(s: Settings) -> dict[str, str]:
    return {r["cl_ord_id"]: r["order_id"] for r in reports(s) if r["exec_type"] == "NEW"}


def test_a_layering_sequence_raises_one_alert_across_restarts(
    env_settings: Settings, procs: Procs
) -> None:
    s = env_settings
    matcher = procs.matcher()
    app = procs.analytics()
    # A market maker of another firm quotes both sides; the spoofer S1 layers two large bids at
    # and just behind the best bid (HK$2.5M each), offers 200 shares inside the spread, a
    # buyer of a third firm takes them, and S1 cancels both bids.
    to_matcher(
        s,
        order("MM1", "MB", TENCENT, "BUY", 1_000, 511_500, "mm-bid"),
        order("MM1", "MB", TENCENT, "SELL", 1_000, 512_500, "mm-ask"),
    )
    to_matcher(
        s,
        order("S1", "MS", TENCENT, "BUY", 5_000, 511_500, "layer-1"),
        order("S1", "MS", TENCENT, "BUY", 5_000, 511_000, "layer-2"),
        order("S1", "MS", TENCENT, "SELL", 200, 512_000, "offer"),
        order("C1", "MC", TENCENT, "BUY", 200, 512_000, "take"),
    )
    fills = wait_for(
        "the spoofer's offer to trade",
        lambda: read_topic(s, "fills", "Fill"),
        procs.check,
    )
    assert [(f["sell_account"], f["buy_account"], f["qty"]) for f in fills] == [("S1", "C1", 200)]
    group = s.topic("sampan-analytics")
    wait_for(
        "the analytics app to commit its reading of orders.events",
        lambda: committed_through(s, group, "orders.events"),
        procs.check,
    )
    assert alerts(s) == {}
    # Killed with the layers still open; they are cancelled while it is down.
    app.kill()
    to_matcher(
        s,
        order("S1", "MS", TENCENT, "BUY", 0, 0, "cancel-1", kind="CANCEL", orig="layer-1"),
        order("S1", "MS", TENCENT, "BUY", 0, 0, "cancel-2", kind="CANCEL", orig="layer-2"),
    )
    wait_for(
        "both layers cancelled",
        lambda: sum(r["exec_type"] == "CANCELED" for r in reports(s)) == 2,
        procs.check,
    )
    app = procs.analytics()
    seen = wait_for("a surveillance alert", lambda: alerts(s), procs.check)
    ids = order_ids(s)
    expected_id = f"SPOOFING:S1:{TENCENT}:{ids['layer-1']}"
    assert list(seen) == [expected_id]
    alert = seen[expected_id]
    assert alert["rule"] == "SPOOFING"
    assert alert["accounts"] == ["S1"] and alert["member"] == "MS"
    assert alert["security"] == TENCENT and alert["venue"] == "INTERNAL"
    assert alert["order_ids"] == [ids["layer-1"], ids["layer-2"], ids["offer"]]
    assert alert["exec_ids"] == [fills[0]["exec_id"]]
    # Restarted again: the alert is raised again under the same id, never a second one.
    app.kill()
    app = procs.analytics()
    wait_for(
        "the restarted app to raise the alert again",
        lambda: len(read_topic(s, "surveillance.alerts", "SurveillanceAlert")) >= 2,
        procs.check,
    )
    assert alerts(s) == {expected_id: alert}
    # The market maker's quotes, the buyer and the fill raised nothing else.
    assert app.stop() == 0
    assert matcher.stop() == 0
    for proc in procs.started:
        assert "Traceback" not in proc.output(), proc.output()[-4000:]
