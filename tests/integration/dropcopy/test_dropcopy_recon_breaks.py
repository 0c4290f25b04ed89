"""On the real stack: reconciliation publishes the right break for each kind of difference,
heals a missing fill that arrives late, and `recon report` prints the day's state."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest
from confluent_kafka import Producer

from sampan.config import Settings
from sampan.dropcopy.recon import BreakKind, BreakStatus
from sampan.dropcopy.recon_runner import ReconRunner, load_breaks
from sampan.market.calendar import trading_day_iso
from sampan.schemas import registry

pytestmark = pytest.mark.integration

WAIT_S = 30.0


def dropcopy(
    exec_id: str, qty: int = 400, px: int = 98_550, seq: int = 1, side: str = "BUY"
) -> dict:
    return {
        "exec_id": exec_id,
        "order_id": "1",
        "cl_ord_id": exec_id,
        "security": 5,
        "side": side,
        "exec_type": "F",
        "last_px_e3": px,
        "last_qty": qty,
        "msg_seq_num": seq,
        "sending_time_ns": time.time_ns(),
        "raw": f"35=8|49=HKEX|56=SAMPANDC|17={exec_id}|",
    }


def fill(exec_id: str, qty: int = 400, px: int = 98_550, security: int = 5) -> dict:
    return {
        "exec_id": exec_id,
        "venue": "HKEX",
        "security": security,
        "price_e3": px,
        "qty": qty,
        "buy_account": "ACC1",
        "buy_member": "SAMPAN",
        "buy_order_id": "1",
        "sell_account": "HKEX",
        "sell_member": "HKEX",
        "sell_order_id": "HKEX",
        "aggressor": "BUY",
        "parent_id": None,
        "ts_ns": time.time_ns(),
    }


def produce(settings: Settings, dcs: list[dict], fills: list[dict]) -> None:
    producer = Producer(settings.kafka(**{"enable.idempotence": True, "acks": "all"}))
    for r in dcs:
        value = registry().encode("DropCopyExecution", r)
        producer.produce(settings.topic("hkex.dropcopy"), value, r["exec_id"].encode())
    for f in fills:
        producer.produce(settings.topic("fills"), registry().encode("Fill", f), b"ACC1")
    assert producer.flush(10) == 0


def wait_breaks(settings: Settings, expected: dict[str, tuple[BreakKind, BreakStatus]]) -> None:
    day = trading_day_iso(time.time_ns())
    deadline = time.monotonic() + WAIT_S
    while True:
        got = {k: (b.kind, b.status) for k, b in load_breaks(settings, day).items()}
        if got == expected:
            return
        assert time.monotonic() < deadline, f"breaks {got} != {expected}"
        time.sleep(0.5)


def test_each_break_kind_is_published_and_a_late_fill_heals(env_settings: Settings) -> None:
    produce(
        env_settings,
        [
            dropcopy("ok"),
            dropcopy("late"),
            dropcopy("qty", qty=400),
            dropcopy("px", px=98_550),
            dropcopy("dup"),
            dropcopy("side", side="SELL_SHORT"),  # the member sold; the fill says it bought
            dropcopy("sec"),
        ],
        [
            fill("ok"),
            fill("nodc"),
            fill("qty", qty=300),
            fill("px", px=98_600),
            fill("dup"),
            fill("dup"),
            fill("side"),
            fill("sec", security=700),
        ],
    )
    runner = ReconRunner(env_settings, trading_day_iso(time.time_ns()), grace_s=1.0)
    thread = threading.Thread(target=runner.run, kwargs={"tick_s": 0.2}, daemon=True)
    thread.start()
    try:
        opened = {
            "late": (BreakKind.MISSING_FILL, BreakStatus.OPEN),
            "nodc": (BreakKind.MISSING_DROPCOPY, BreakStatus.OPEN),
            "qty": (BreakKind.QTY_MISMATCH, BreakStatus.OPEN),
            "px": (BreakKind.PRICE_MISMATCH, BreakStatus.OPEN),
            "dup": (BreakKind.DUPLICATE, BreakStatus.OPEN),
            # A wrong side or security is reported as the closest kind the schema has.
            "side": (BreakKind.QTY_MISMATCH, BreakStatus.OPEN),
            "sec": (BreakKind.QTY_MISMATCH, BreakStatus.OPEN),
        }
        wait_breaks(env_settings, opened)
        produce(env_settings, [], [fill("late")])
        wait_breaks(env_settings, {**opened, "late": (BreakKind.MISSING_FILL, BreakStatus.HEALED)})
    finally:
        runner.stop()
        thread.join(timeout=30)
    assert not thread.is_alive(), "recon did not stop"

    # A restarted reconciler rebuilds the same state and republishes nothing.
    again = ReconRunner(env_settings, trading_day_iso(time.time_ns()), grace_s=1.0)
    timer = threading.Timer(3.0, again.stop)
    timer.start()
    again.run(tick_s=0.2)
    assert again.published == 0

    out = subprocess.run(
        [sys.executable, "-m", "sampan.dropcopy.cli", "recon", "report", "--grace-s", "1"],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    first = out.stdout.splitlines()[0]
    assert "matched 2" in first and "open breaks 6" in first and "healed 1" in first, first
    for kind in ("DUPLICATE 1", "MISSING_DROPCOPY 1", "PRICE_MISMATCH 1", "QTY_MISMATCH 3"):
        assert kind in first
    lines = out.stdout.splitlines()
    assert any(line.startswith("OPEN QTY_MISMATCH qty:") for line in lines)
    assert "OPEN QTY_MISMATCH side: side differs: dropcopy SELL 400@98.550 in 5 | fill BUY" in (
        "\n".join(lines)
    )
    assert any(line.startswith("OPEN QTY_MISMATCH sec: security differs:") for line in lines)
