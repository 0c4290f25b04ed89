"""A retriable error from a transaction call is retried by the runtime, not fatal to the
router: the orders around it are answered exactly once and the router stops cleanly."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest
from router_harness import (
    Proc,
    Sim,
    account,
    command,
    events_of,
    publish,
    send,
    state_dir,
    wait_for,
)

from sampan.config import Settings

pytestmark = pytest.mark.integration

PRICE_E3 = 512_000


def test_a_retriable_commit_error_is_retried_not_fatal(
    env_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = str(Path(__file__).parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([here, os.environ.get("PYTHONPATH", "")]))
    # The third commit and the one after it fail before reaching the broker.
    monkeypatch.setenv("SAMPAN_TEST_COMMIT_ERRORS", "3:2")
    directory = state_dir()
    sim = Sim(directory / "sim")
    publish(env_settings, "reference.accounts", "Account", [account("BUYER1", "M1", 10**12)])
    sim.rest_sell(10_000, PRICE_E3)
    router = Proc(
        "router",
        [
            "faulty_router",
            "--ocg-port",
            str(sim.port),
            "--heartbeat-s",
            "1",
            "--state-dir",
            str(directory / "router-fix"),
            "--no-fsync",
        ],
        directory,
    )
    orders = [command("BUYER1", "M1", "BUY", 100, PRICE_E3, "HKEX") for _ in range(6)]
    try:
        for order in orders:
            send(env_settings, order)
        ids = {o["cl_ord_id"] for o in orders}

        def traded() -> bool:
            trades = [
                e
                for e in events_of(env_settings)
                if e["cl_ord_id"] in ids and e["exec_type"] == "TRADE"
            ]
            return len(trades) >= len(orders)

        wait_for("every order traded on HKEX", traded, 60, router)
        text = router.text()
        assert "injected retriable commit error 4" in text, text[-3000:]
        assert "commit_transaction: retriable error" in text
        assert router.proc is not None and router.proc.poll() is None, "the router kept running"
        events = [e for e in events_of(env_settings) if e["cl_ord_id"] in ids]
        kinds = Counter((e["cl_ord_id"], e["exec_type"]) for e in events)
        assert all(kinds[(o["cl_ord_id"], "TRADE")] == 1 for o in orders), kinds
        assert all(kinds[(o["cl_ord_id"], "NEW")] == 1 for o in orders), kinds
        assert router.stop() == 0
    finally:
        router.stop()
        sim.close()
