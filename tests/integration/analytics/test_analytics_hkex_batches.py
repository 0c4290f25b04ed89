"""The analytics app reads HKEX market data as omd-ingest writes it: transactional batches of
md.trades and md.depth compressed with lz4 (omd-ingest's producer settings, used here as they
are). Its Faust client needs a codec for that; without one the app died on the first HKEX
trade."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from venue_procs import Procs, procs_fixture, wait_for

from sampan.config import Settings
from sampan.omd_ingest.kafka_out import producer_config
from sampan.schemas.codec import registry
from sampan.tools.records import publish_records, read_topic

pytestmark = pytest.mark.integration

HSBC = 5
PREV_E3 = 98_550


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    yield from procs_fixture(tmp_path)


def instrument() -> dict[str, Any]:
    return {
        "security": HSBC,
        "name": "HSBC HOLDINGS",
        "currency": "HKD",
        "board_lot": 400,
        "spread_table": "A",
        "prev_close_e3": PREV_E3,
        "enabled": True,
        "ts_ns": time.time_ns(),
    }


def test_lz4_batches_of_hkex_trades_and_depth_are_read(
    env_settings: Settings, procs: Procs
) -> None:
    s = env_settings
    publish_records(s, "reference.instruments", "Instrument", [(str(HSBC), instrument())])
    app = procs.analytics()
    writer = Producer(producer_config(s, 5, f"omd-test-{uuid.uuid4().hex[:8]}"))
    writer.init_transactions(30)
    writer.begin_transaction()
    key = f"HKEX:{HSBC}".encode()
    for n in range(200):
        price_e3 = PREV_E3 + 50 * (n % 7)
        now = time.time_ns()
        tick = {
            "venue": "HKEX",
            "security": HSBC,
            "trade_id": f"{n}",
            "price_e3": price_e3,
            "qty": 400,
            "aggressor": None,
            "ts_ns": now,
        }
        depth = {
            "venue": "HKEX",
            "security": HSBC,
            "bids": [{"price_e3": price_e3 - 50, "qty": 4_000, "orders": 2}],
            "asks": [{"price_e3": price_e3, "qty": 4_000, "orders": 2}],
            "seq": n + 1,
            "ts_ns": now,
        }
        writer.produce(s.topic("md.trades"), registry().encode("TradeTick", tick), key)
        writer.produce(s.topic("md.depth"), registry().encode("DepthSnapshot", depth), key)
    writer.commit_transaction(30)
    last_e3 = PREV_E3 + 50 * (199 % 7)
    change_bp = (last_e3 - PREV_E3) * 10_000 // PREV_E3

    def ranked() -> Any:
        for record in read_topic(s, "md.movers", "Movers"):
            # The ranking follows the batches: wait for the one after the last trade.
            if record["venue"] == "HKEX" and [m["last_e3"] for m in record["top"]] == [last_e3]:
                return record["top"]
        return None

    top = wait_for("HKEX movers from the lz4 batches", ranked, procs.check)
    assert [(m["security"], m["last_e3"], m["change_bp"]) for m in top] == [
        (HSBC, last_e3, change_bp)
    ]
    assert app.stop() == 0
    assert "Traceback" not in app.output(), app.output()[-4000:]
