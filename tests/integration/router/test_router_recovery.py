"""HKEX executions reach orders.events and fills exactly once through faults: a report lost
on the order session (healed by ResendRequest), the router SIGKILLed mid-flow and restarted,
and the gateway cutting the session. Each request's decision record is on router.decisions
once, naming the ClOrdID it sent to HKEX."""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest
from router_harness import (
    Sim,
    account,
    command,
    events_of,
    fills_of,
    publish,
    read_all,
    send,
    start_router,
    state_dir,
    wait_for,
)

from sampan.config import Settings
from sampan.router.ids import Origin, parse_hkex_cl_ord_id

pytestmark = pytest.mark.integration

PRICE_E3 = 512_000


def _hkex_trades(settings: Settings) -> list[dict]:
    return [e for e in events_of(settings) if e["venue"] == "HKEX" and e["exec_type"] == "TRADE"]


def test_lost_report_is_resent_and_recorded_once(env_settings: Settings) -> None:
    directory = state_dir()
    sim = Sim(directory / "sim")
    publish(env_settings, "reference.accounts", "Account", [account("BUYER1", "M1", 10**9)])
    sim.rest_sell(1_000, PRICE_E3)
    router = start_router(sim, directory)
    try:
        first = command("BUYER1", "M1", "BUY", 100, PRICE_E3, "HKEX")
        send(env_settings, first)
        wait_for("the first fill", lambda: len(fills_of(env_settings)) == 1, 60, router)
        # The next order's New and Trade reports are not written on the order session (the
        # drop copy still gets them); the next heartbeat reveals the gap.
        sim.call(lambda: sim.gateway.lose_reports("SAMPAN", 2))
        second = command("BUYER1", "M1", "BUY", 100, PRICE_E3, "HKEX")
        send(env_settings, second)
        wait_for("the drop copy of the lost trade", lambda: len(sim.drop_copy.trades) == 2, 20)
        fills = wait_for(
            "the resent fill",
            lambda: f if len(f := fills_of(env_settings)) >= 2 else None,
            30,
            router,
        )
        time.sleep(2)  # a duplicate, if any, would arrive within a heartbeat or two
        fills = fills_of(env_settings)
        assert len(fills) == 2
        assert sorted(f["exec_id"] for f in fills) == sorted(sim.drop_copy.trades)
        trades = _hkex_trades(env_settings)
        assert sorted(e["exec_id"] for e in trades) == sorted(sim.drop_copy.trades)
        news = [e for e in events_of(env_settings) if e["cl_ord_id"] == second["cl_ord_id"]]
        assert [e["exec_type"] for e in news] == ["NEW", "TRADE"]
        assert router.stop() == 0
    finally:
        router.stop()
        sim.close()


def test_sigkill_and_session_cut_lose_and_duplicate_nothing(env_settings: Settings) -> None:
    directory = state_dir()
    sim = Sim(directory / "sim")
    publish(env_settings, "reference.accounts", "Account", [account("BUYER1", "M1", 10**12)])
    sim.rest_sell(100_000, PRICE_E3)
    router = start_router(sim, directory)
    orders = [command("BUYER1", "M1", "BUY", 100, PRICE_E3, "HKEX") for _ in range(120)]
    rng = random.Random(5)
    try:
        wait_for("the logon", lambda: "logged on" in router.text(), 30, router)
        for chunk in range(3):
            # Mid-flow: orders sent to HKEX whose requests and reports are not yet committed.
            send(env_settings, *orders[chunk * 30 : chunk * 30 + 30])
            time.sleep(rng.uniform(0.0, 0.05))
            router.kill()
            router.start()
            wait_for(
                "the logon", lambda n=chunk: router.text().count("logged on") > n + 1, 30, router
            )
        wait_for("fills after restarts", lambda: len(fills_of(env_settings)) >= 90, 60, router)
        assert sim.call(lambda: sim.gateway.cut("SAMPAN"))
        send(env_settings, *orders[90:])
        wait_for("every order filled", lambda: len(sim.drop_copy.trades) >= len(orders), 60, router)
        wait_for(
            "every fill committed", lambda: len(fills_of(env_settings)) >= len(orders), 60, router
        )
        time.sleep(2)
        fills = fills_of(env_settings)
        counts = Counter(f["exec_id"] for f in fills)
        assert max(counts.values()) == 1, counts.most_common(3)
        assert sorted(counts) == sorted(sim.drop_copy.trades)
        assert len(sim.drop_copy.trades) == len(orders)  # no order was placed twice at HKEX
        trades = Counter(e["exec_id"] for e in _hkex_trades(env_settings))
        assert sorted(trades) == sorted(counts) and max(trades.values()) == 1
        # One committed decision per request, whatever the kills rolled back and redid; each
        # names the order it sent, which HKEX traded.
        decided = read_all(env_settings, "router.decisions", "RouterDecision")
        ids = Counter(d["decision_id"] for d in decided)
        assert len(ids) == len(orders) and max(ids.values()) == 1, ids.most_common(3)
        assert {d["cl_ord_id"] for d in decided} == {o["cl_ord_id"] for o in orders}
        assert all(d["outcome"] == "ACCEPTED" and d["route"] == "HKEX" for d in decided)
        assert {e["cl_ord_id"] for e in _hkex_trades(env_settings)} == {
            d["cl_ord_id"] for d in decided
        }
        for d in decided:
            (child,) = d["children"]
            sent = parse_hkex_cl_ord_id(child["cl_ord_id"])
            assert sent is not None and child["venue"] == "HKEX"
            assert sent.origin == Origin(d["request_partition"], d["request_offset"])
        assert router.stop() == 0
    finally:
        router.stop()
        sim.close()
