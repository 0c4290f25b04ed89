"""A SMART order whose HKEX part HKEX would refuse as a plain limit, on the real stack with the
real simulator: the remainder goes as an enhanced limit and trades through the touch; priced
further through than an enhanced limit may reach, HKEX rejects it and the parent ends REJECTED
with its hold released. Nothing is dead-lettered."""

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

LIMIT_E3 = 512_000  # HK$512.000, on tick (0.500 band), the previous close


def test_smart_remainders_priced_through_hkex_end_their_parents(env_settings: Settings) -> None:
    directory = state_dir()
    sim = Sim(directory / "sim")
    # BUYER2's credit covers exactly one buy of 500 at the limit: a hold not released after
    # its SMART order ends would refuse its next order.
    exact = hold_cents(LIMIT_E3, 500, RiskConfig())
    publish(
        env_settings,
        "reference.accounts",
        "Account",
        [account("BUYER1", "M1", 10**9), account("BUYER2", "M2", exact)],
    )
    sim.rest_sell(300, 511_000)  # HKEX's best ask, two ticks under the SMART limit
    matcher = start_matcher(directory)
    router = start_router(sim, directory)
    procs = (router, matcher)
    try:
        through = command("BUYER1", "M1", "BUY", 1_000, LIMIT_E3, "SMART")
        send(env_settings, through)

        def parent(cl: str, status: str) -> list[dict]:
            return [
                e
                for e in events_of(env_settings)
                if e["cl_ord_id"] == cl and e["order_id"].startswith("P")
                if e["ord_status"] == status
            ]

        # The enhanced limit takes HKEX's 300 at 511.000 and rests 700 at the limit.
        (partial,) = wait_for(
            "the parent PARTIALLY_FILLED", lambda: parent(through["cl_ord_id"], "PARTIALLY_FILLED"),
            60, *procs,
        )  # fmt: skip
        assert (partial["cum_qty"], partial["leaves_qty"]) == (300, 700)
        assert partial["cum_notional_e3"] == 300 * 511_000
        cancel = command(
            "BUYER1", "M1", "BUY", 1_000, LIMIT_E3, "SMART", kind="CANCEL",
            orig=through["cl_ord_id"],
        )  # fmt: skip
        send(env_settings, cancel)
        # The parent's CANCELED report answers the cancel, under the cancel's ClOrdID.
        (ended,) = wait_for(
            "the parent CANCELED", lambda: parent(cancel["cl_ord_id"], "CANCELED"), 60, *procs
        )
        assert (ended["cum_qty"], ended["leaves_qty"]) == (300, 0)
        assert ended["orig_cl_ord_id"] == through["cl_ord_id"]

        # Ten ticks through the touch is beyond an enhanced limit's reach: HKEX rejects it.
        sim.rest_sell(100, 507_000)
        too_far = command("BUYER2", "M2", "BUY", 500, LIMIT_E3, "SMART")
        send(env_settings, too_far)
        (rejected,) = wait_for(
            "the parent REJECTED", lambda: parent(too_far["cl_ord_id"], "REJECTED"), 60, *procs
        )
        assert rejected["reject_reason"] == "VENUE_REJECTED" and rejected["leaves_qty"] == 0
        assert rejected["venue"] == "HKEX" and rejected["text"]

        # The hold is released: the same buy again is not refused for buying power.
        again = command("BUYER2", "M2", "BUY", 500, LIMIT_E3, "INTERNAL")
        send(env_settings, again)
        (answer,) = wait_for(
            "an answer to the second buy",
            lambda: [e for e in events_of(env_settings) if e["cl_ord_id"] == again["cl_ord_id"]],
            60,
            *procs,
        )
        assert (answer["exec_type"], answer["reject_reason"]) == ("NEW", None)
        assert read_all(env_settings, "orders.events.dlq", "DeadLetter") == []
        assert router.stop() == 0
    finally:
        router.stop()
        matcher.stop()
        sim.close()
