"""HKEX restarts without its state (a new simulator on the same port, a fresh state directory):
the router's next Logon is refused because the exchange's sequence numbers went back; the
router starts a new session from 1, ends the order it had resting there as CANCELED by the
venue (VENUE_UNKNOWN_ORDER) with an alert, and trades on the new session."""

from __future__ import annotations

import pytest
from router_harness import (
    Sim,
    account,
    command,
    events_of,
    publish,
    send,
    start_router,
    state_dir,
    wait_for,
)

from sampan.config import Settings

pytestmark = pytest.mark.integration

BID_E3 = 500_000  # under HKEX's (empty) offer: rests


def test_an_exchange_that_lost_its_state_ends_the_orders_held_there(
    env_settings: Settings,
) -> None:
    directory = state_dir()
    sim = Sim(directory / "sim")
    publish(env_settings, "reference.accounts", "Account", [account("BUYER1", "M1", 10**9)])
    router = start_router(sim, directory)
    try:
        resting = command("BUYER1", "M1", "BUY", 100, BID_E3, "HKEX")
        send(env_settings, resting)

        def reports_of(cl: str, exec_type: str) -> list[dict]:
            return [
                e
                for e in events_of(env_settings)
                if e["cl_ord_id"] == cl and e["exec_type"] == exec_type
            ]

        wait_for("the HKEX order NEW", lambda: reports_of(resting["cl_ord_id"], "NEW"), 60, router)
        port = sim.port
        sim.close()
        sim = Sim(directory / "sim-restarted", order_port=port)
        (lost,) = wait_for(
            "the order ended by the reset",
            lambda: reports_of(resting["cl_ord_id"], "CANCELED"),
            60,
            router,
        )
        assert (lost["ord_status"], lost["reject_reason"]) == ("CANCELED", "VENUE_UNKNOWN_ORDER")
        assert lost["leaves_qty"] == 0
        assert "ALERT" in router.text()
        after = command("BUYER1", "M1", "BUY", 100, BID_E3, "HKEX")
        send(env_settings, after)
        wait_for(
            "a NEW on the new session", lambda: reports_of(after["cl_ord_id"], "NEW"), 60, router
        )
        assert router.stop() == 0
    finally:
        router.stop()
        sim.close()
