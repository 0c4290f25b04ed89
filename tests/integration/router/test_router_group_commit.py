"""The HKEX route with group commit (the router's FIX store fsync'd once per group of outbound
messages, none sent before it is durable): SIGKILLs of the router while hundreds of HKEX
orders are in flight lose and duplicate nothing, on the real broker and simulator."""

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
    send,
    start_router,
    state_dir,
    wait_for,
)

from sampan.config import Settings

pytestmark = pytest.mark.integration

PRICE_E3 = 512_000
BURST = 150
BURSTS = 2


def test_sigkill_under_a_burst_loses_and_duplicates_nothing(env_settings: Settings) -> None:
    directory = state_dir()
    sim = Sim(directory / "sim")
    publish(env_settings, "reference.accounts", "Account", [account("BUYER1", "M1", 10**12)])
    sim.rest_sell(BURST * BURSTS * 100, PRICE_E3)
    router = start_router(sim, directory)  # fsync on: the store commits in groups
    orders = [command("BUYER1", "M1", "BUY", 100, PRICE_E3, "HKEX") for _ in range(BURST * BURSTS)]
    rng = random.Random(17)
    try:
        wait_for("the logon", lambda: "logged on" in router.text(), 30, router)
        for burst in range(BURSTS):
            send(env_settings, *orders[burst * BURST : (burst + 1) * BURST])
            # Killed while the burst is partly decided, partly at HKEX, partly reported.
            wait_for(
                "some of the burst at HKEX",
                lambda n=burst: len(sim.drop_copy.trades) > n * BURST,
                30,
                router,
            )
            time.sleep(rng.uniform(0.0, 0.1))
            router.kill()
            router.start()
            wait_for(
                "the logon", lambda n=burst: router.text().count("logged on") > n + 1, 30, router
            )
        wait_for("every order filled", lambda: len(sim.drop_copy.trades) >= len(orders), 90, router)
        wait_for(
            "every fill committed", lambda: len(fills_of(env_settings)) >= len(orders), 90, router
        )
        time.sleep(2)  # a duplicate, if any, would arrive within a heartbeat or two
        fills = Counter(f["exec_id"] for f in fills_of(env_settings))
        assert max(fills.values()) == 1, fills.most_common(3)
        assert sorted(fills) == sorted(sim.drop_copy.trades)
        assert len(sim.drop_copy.trades) == len(orders)  # no order placed twice at HKEX
        trades = Counter(
            e["exec_id"]
            for e in events_of(env_settings)
            if e["venue"] == "HKEX" and e["exec_type"] == "TRADE"
        )
        assert sorted(trades) == sorted(fills) and max(trades.values()) == 1
        assert router.stop() == 0
    finally:
        router.stop()
        sim.close()
