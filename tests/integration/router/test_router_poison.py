"""Inputs the router cannot use are dead-lettered and the router goes on: an HKEX execution
that would overfill an order (to orders.events.dlq, named by session and MsgSeqNum, and not
again after a restart), and an instrument record with a board lot of 0 (to
reference.instruments.dlq; orders in it are rejected, not divided by zero)."""

from __future__ import annotations

import time

import pytest
from router_harness import (
    TENCENT,
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
from sampan.fix.codec import FixMessage
from sampan.fix.messages import ExecType, ExecutionReport, OrdStatus, Side

pytestmark = pytest.mark.integration

PRICE_E3 = 512_000


def _overfill(report: FixMessage, exec_id: str) -> FixMessage:
    """A trade HKEX should never send: 150 more of an order with 100 of 200 filled."""
    msg = ExecutionReport(
        order_id=report.get(37) or "", cl_ord_id=report.get(11) or "", exec_id=exec_id,
        exec_type=ExecType.TRADE, ord_status=OrdStatus.FILLED, security_id="700",
        side=Side.BUY, order_qty=200, cum_qty=200, leaves_qty=0, transact_time_ns=time.time_ns(),
        price_e3=PRICE_E3, last_px_e3=PRICE_E3, last_qty=150,
    ).to_fix()  # fmt: skip
    return FixMessage.of(msg.msg_type, *msg.fields[1:])


def test_an_hkex_message_that_cannot_apply_is_dead_lettered(env_settings: Settings) -> None:
    directory = state_dir()
    sim = Sim(directory / "sim")
    publish(env_settings, "reference.accounts", "Account", [account("BUYER1", "M1", 10**9)])
    sim.rest_sell(100, PRICE_E3)
    router = start_router(sim, directory)
    try:
        order = command("BUYER1", "M1", "BUY", 200, PRICE_E3, "HKEX")
        send(env_settings, order)
        wait_for("the first fill", lambda: len(fills_of(env_settings)) == 1, 60, router)
        (trade,) = [m for m in sim.drop_copy.reports if m.get(150) == "F"]
        firm = sim.gateway._firm("SAMPAN")  # the fault: the gateway misbehaves once
        sim.call(lambda: firm.orders.send(_overfill(trade, "BAD1"), time.time_ns()))
        (letter,) = wait_for(
            "the dead letter",
            lambda: read_all(env_settings, "orders.events.dlq", "DeadLetter"),
            30,
            router,
        )
        assert letter["source_topic"] == "fix:SAMPAN" and letter["source_offset"] > 0
        assert b"17=BAD1\x01" in letter["value"] and "IllegalTransition" in letter["error"]
        sim.rest_sell(100, PRICE_E3)  # the router is alive: the rest of the order fills
        wait_for("the second fill", lambda: len(fills_of(env_settings)) == 2, 30, router)
        assert router.stop() == 0
        router.start()  # resumes past the bad message: it is not applied or dead-lettered again
        later = command("BUYER1", "M1", "BUY", 100, PRICE_E3, "HKEX")
        send(env_settings, later)
        wait_for(
            "the later order",
            lambda: any(e["cl_ord_id"] == later["cl_ord_id"] for e in events_of(env_settings)),
            60,
            router,
        )
        assert len(read_all(env_settings, "orders.events.dlq", "DeadLetter")) == 1
        assert sorted(f["exec_id"] for f in fills_of(env_settings)) == sorted(sim.drop_copy.trades)
        assert router.stop() == 0
    finally:
        router.stop()
        sim.close()


def test_an_instrument_with_a_zero_board_lot_is_rejected(env_settings: Settings) -> None:
    directory = state_dir()
    sim = Sim(directory / "sim")
    publish(env_settings, "reference.accounts", "Account", [account("BUYER1", "M1", 10**9)])
    bad = {
        "security": TENCENT.security, "name": "TENCENT", "currency": "HKD", "board_lot": 0,
        "spread_table": "01", "prev_close_e3": PRICE_E3, "enabled": True, "ts_ns": time.time_ns(),
    }  # fmt: skip
    publish(env_settings, "reference.instruments", "Instrument", [("700", bad)])
    router = start_router(sim, directory)
    try:
        orders = [command("BUYER1", "M1", "BUY", 100, PRICE_E3, "HKEX") for _ in range(2)]
        send(env_settings, *orders)
        events = wait_for(
            "both answers",
            lambda: e if len(e := events_of(env_settings)) >= 2 else None,
            60,
            router,
        )
        assert {e["reject_reason"] for e in events} == {"INSTRUMENT_UNKNOWN"}
        (letter,) = read_all(env_settings, "reference.instruments.dlq", "DeadLetter")
        assert letter["source_topic"].endswith("reference.instruments")
        assert letter["source_offset"] == 0 and "board_lot" in letter["error"]
        assert router.stop() == 0
    finally:
        router.stop()
        sim.close()
