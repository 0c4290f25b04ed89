"""HKEX refuses the router's order at the session level (35=3), on the real stack with the real
simulator: the router maps the Reject back by RefSeqNum to its order, rejects it with the
reason and releases its hold, and logs it; a SMART parent whose HKEX child is refused that way
ends too. Nothing is dead-lettered."""

from __future__ import annotations

import pytest
from router_harness import (
    Sim,
    account,
    command,
    events_of,
    publish,
    read_all,
    send,
    start_matcher,
    start_router,
    state_dir,
    wait_for,
)

from sampan.config import Settings
from sampan.router.risk import RiskConfig, hold_cents

pytestmark = pytest.mark.integration

PRICE_E3 = 500_000


def test_a_session_reject_from_hkex_rejects_the_order_it_refused(env_settings: Settings) -> None:
    directory = state_dir()
    sim = Sim(directory / "sim")
    exact = hold_cents(PRICE_E3, 100, RiskConfig())  # one order's hold, no more
    publish(env_settings, "reference.accounts", "Account", [account("BUYER1", "M1", exact)])
    matcher = start_matcher(directory)
    router = start_router(sim, directory)
    procs = (router, matcher)
    try:

        def final(cl: str, status: str) -> list[dict]:
            return [
                e
                for e in events_of(env_settings)
                if e["cl_ord_id"] == cl and e["ord_status"] == status
            ]

        for route in ("HKEX", "SMART"):
            sim.call(lambda: sim.gateway.reject_next("SAMPAN", 1))
            refused = command("BUYER1", "M1", "BUY", 100, PRICE_E3, route)
            send(env_settings, refused)
            (rejected,) = wait_for(
                f"the {route} order REJECTED",
                lambda cl=refused["cl_ord_id"]: [  # type: ignore[misc]
                    e for e in final(cl, "REJECTED") if not e["order_id"].startswith("S")
                ][-1:],
                60,
                *procs,
            )
            assert rejected["reject_reason"] == "VENUE_REJECTED"
            assert "session Reject" in rejected["text"]
        assert router.text().count("HKEX Reject seq") == 2
        # Both holds were released: the account can buy its one order's worth again.
        again = command("BUYER1", "M1", "BUY", 100, PRICE_E3, "HKEX")
        send(env_settings, again)
        wait_for("the next order NEW", lambda: final(again["cl_ord_id"], "NEW"), 60, *procs)
        assert read_all(env_settings, "orders.events.dlq", "DeadLetter") == []
        assert router.stop() == 0
    finally:
        router.stop()
        matcher.stop()
        sim.close()
