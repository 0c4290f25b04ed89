"""The router's table reader dead-letters a reference.accounts record it cannot decode and
fails closed for that account."""

from __future__ import annotations

import pytest
from router_harness import (
    Sim,
    account,
    command,
    events_of,
    producer,
    publish,
    read_all,
    send,
    start_router,
    state_dir,
    wait_for,
)

from sampan.config import Settings

pytestmark = pytest.mark.integration

PRICE_E3 = 512_000


def test_an_undecodable_account_record_is_dead_lettered_and_fails_closed(
    env_settings: Settings,
) -> None:
    directory = state_dir()
    sim = Sim(directory / "sim")
    publish(
        env_settings,
        "reference.accounts",
        "Account",
        [account("GOOD1", "M1", 10**9), account("BROKEN1", "M1", 10**9)],
    )
    # The account's next record is not an Account: the earlier, sound one no longer holds.
    p = producer(env_settings)
    p.produce(env_settings.topic("reference.accounts"), b"\xc3\x01not avro", b"BROKEN1")
    assert p.flush(30) == 0
    router = start_router(sim, directory)
    try:
        refused = command("BROKEN1", "M1", "BUY", 100, PRICE_E3, "INTERNAL")
        taken = command("GOOD1", "M1", "BUY", 100, PRICE_E3, "INTERNAL")
        send(env_settings, refused, taken)
        (event,) = wait_for("the refusal", lambda: events_of(env_settings), 60, router)
        assert event["cl_ord_id"] == refused["cl_ord_id"]
        assert event["reject_reason"] == "ACCOUNT_UNKNOWN"
        (approved,) = wait_for(
            "the sound account's order on orders.internal",
            lambda: read_all(env_settings, "orders.internal", "OrderCommand"),
            30,
            router,
        )
        assert approved["account"] == "GOOD1"
        (letter,) = wait_for(
            "the dead letter",
            lambda: read_all(env_settings, "reference.accounts.dlq", "DeadLetter"),
            30,
            router,
        )
        assert letter["source_topic"].endswith("reference.accounts")
        assert letter["source_offset"] == 2 and letter["key"] == b"BROKEN1"
        assert letter["value"] == b"\xc3\x01not avro" and "undecodable" in letter["error"]
        assert router.stop() == 0
    finally:
        router.stop()
        sim.close()
