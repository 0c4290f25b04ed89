"""A burst of 1,000 buy orders for one account never takes it past its credit line: the
router approves exactly as many as the holds allow and rejects the rest with a reason."""

from __future__ import annotations

from collections import Counter

import pytest
from router_harness import (
    Sim,
    account,
    command,
    events_of,
    publish,
    read_all,
    send,
    start_router,
    state_dir,
    wait_for,
)

from sampan.config import Settings
from sampan.router.risk import RiskConfig, hold_cents

pytestmark = pytest.mark.integration

PRICE_E3 = 512_000
CREDIT_LINE_CENTS = 100_000_000  # HK$1,000,000, no cash: buying power is the credit line


def test_burst_never_exceeds_the_credit_line(env_settings: Settings) -> None:
    directory = state_dir()
    sim = Sim(directory / "sim")
    publish(
        env_settings, "reference.accounts", "Account", [account("BURST", "M1", CREDIT_LINE_CENTS)]
    )
    router = start_router(sim, directory)
    orders = [command("BURST", "M1", "BUY", 100, PRICE_E3, "INTERNAL") for _ in range(1_000)]
    try:
        send(env_settings, *orders)

        def answered() -> tuple[list[dict], list[dict]] | None:
            internal = read_all(env_settings, "orders.internal", "OrderCommand")
            rejects = [e for e in events_of(env_settings) if e["exec_type"] == "REJECTED"]
            return (internal, rejects) if len(internal) + len(rejects) >= 1_000 else None

        internal, rejects = wait_for("every order answered", answered, 90, router)
        per_order = hold_cents(PRICE_E3, 100, RiskConfig())
        fits = CREDIT_LINE_CENTS // per_order
        assert len(internal) == fits
        assert len(internal) * per_order <= CREDIT_LINE_CENTS
        assert Counter(e["reject_reason"] for e in rejects) == {
            "INSUFFICIENT_BUYING_POWER": 1_000 - fits
        }
        assert all(c["stp"] == "CANCEL_RESTING" for c in internal)
        assert router.stop() == 0
    finally:
        router.stop()
        sim.close()
