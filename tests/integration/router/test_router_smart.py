"""The case study's hardest case on the real stack: a SMART buy of 1,000 fills 300 on the
internal book and 700 on HKEX in two executions; the parent says 1,000 at the exact average
price; `fills` holds the three fills once each; the drop copy carries both HKEX executions."""

from __future__ import annotations

from collections import Counter

import pytest
from router_harness import (
    Sim,
    account,
    command,
    events_of,
    fills_of,
    publish,
    send,
    start_matcher,
    start_router,
    state_dir,
    wait_for,
)

from sampan.config import Settings

pytestmark = pytest.mark.integration

PRICE_E3 = 512_000  # HK$512.000, on tick (0.500 band), the previous close


def test_smart_buy_fills_internally_then_on_hkex(env_settings: Settings) -> None:
    directory = state_dir()
    sim = Sim(directory / "sim")
    publish(
        env_settings,
        "reference.accounts",
        "Account",
        [account("BUYER1", "M1", 10**9), account("SELLER2", "M2", 10**9, allow_short=True)],
    )
    # HKEX's touch: two resting sells of 400 and 300 at the price.
    sim.rest_sell(400, PRICE_E3)
    sim.rest_sell(300, PRICE_E3)
    matcher = start_matcher(directory)
    router = start_router(sim, directory)
    procs = (router, matcher)
    try:
        resting = command("SELLER2", "M2", "SELL_SHORT", 300, PRICE_E3, "INTERNAL")
        send(env_settings, resting)
        wait_for(
            "the resting internal sell",
            lambda: any(
                e["cl_ord_id"] == resting["cl_ord_id"] and e["exec_type"] == "NEW"
                for e in events_of(env_settings)
            ),
            60,
            *procs,
        )
        smart = command("BUYER1", "M1", "BUY", 1_000, PRICE_E3, "SMART")
        send(env_settings, smart)

        def parent_filled() -> list[dict]:
            return [
                e
                for e in events_of(env_settings)
                if e["cl_ord_id"] == smart["cl_ord_id"]
                and e["order_id"].startswith("P")
                and e["ord_status"] == "FILLED"
            ]

        final = wait_for("the parent FILLED", parent_filled, 60, *procs)[0]
        assert final["cum_qty"] == 1_000 and final["leaves_qty"] == 0
        assert final["cum_notional_e3"] == 1_000 * PRICE_E3
        assert final["cum_notional_e3"] // final["cum_qty"] == PRICE_E3
        assert final["cum_notional_e3"] % final["cum_qty"] == 0

        fills = wait_for(
            "three fills",
            lambda: f if len(f := fills_of(env_settings)) >= 3 else None,
            30,
            *procs,
        )
        assert len(fills) == 3, fills
        by_venue = Counter(f["venue"] for f in fills)
        assert by_venue == {"INTERNAL": 1, "HKEX": 2}
        assert sorted(f["qty"] for f in fills) == [300, 300, 400]
        assert all(f["parent_id"] == smart["cl_ord_id"] for f in fills)
        hkex = [f for f in fills if f["venue"] == "HKEX"]
        assert all(
            f["buy_account"] == "BUYER1"
            and f["sell_account"] == "HKEX.CLEARING"
            and f["sell_member"] == "HKEX"
            for f in hkex
        )
        # Reconciliation's key: the HKEX fills' exec ids are the drop copy's ExecIDs.
        wait_for("two drop-copy trades", lambda: len(sim.drop_copy.trades) == 2, 10, *procs)
        assert sorted(f["exec_id"] for f in hkex) == sorted(sim.drop_copy.trades)

        parent_reports = [
            e
            for e in events_of(env_settings)
            if e["cl_ord_id"] == smart["cl_ord_id"] and e["order_id"].startswith("P")
        ]
        assert [e["cum_qty"] for e in parent_reports] == [0, 300, 700, 1_000]
        assert [e["venue"] for e in parent_reports] == ["INTERNAL", "INTERNAL", "HKEX", "HKEX"]
        assert router.stop() == 0
    finally:
        router.stop()
        matcher.stop()
        sim.close()
