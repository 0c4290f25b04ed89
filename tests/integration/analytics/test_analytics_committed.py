"""The analytics app reads committed records only: a trade, and an order sequence, that their
writer produced in a Kafka transaction it then aborted (as the matcher does on a rewind) are
neither counted in md.stats nor judged by surveillance; the committed trade after them is."""

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
from sampan.schemas.codec import registry
from sampan.streams import profiles
from sampan.tools.records import publish_records, read_topic

pytestmark = pytest.mark.integration

SECURITY = 939


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    yield from procs_fixture(tmp_path)


def tick(trade_id: str, price_e3: int, qty: int) -> dict[str, Any]:
    return {
        "venue": "INTERNAL",
        "security": SECURITY,
        "trade_id": trade_id,
        "price_e3": price_e3,
        "qty": qty,
        "aggressor": None,
        "ts_ns": time.time_ns(),
    }


def fill(exec_id: str) -> dict[str, Any]:
    """A fill between two accounts of one member firm: a wash trade, were it committed."""
    return {
        "exec_id": exec_id,
        "venue": "INTERNAL",
        "security": SECURITY,
        "price_e3": 7_540,
        "qty": 1_000,
        "buy_account": "W1",
        "buy_member": "MW",
        "buy_order_id": "OB",
        "sell_account": "W2",
        "sell_member": "MW",
        "sell_order_id": "OS",
        "aggressor": "BUY",
        "parent_id": None,
        "ts_ns": time.time_ns(),
    }


def test_records_of_an_aborted_transaction_count_for_nothing(
    env_settings: Settings, procs: Procs
) -> None:
    s = env_settings
    app = procs.analytics()
    writer = Producer(
        profiles.transactional_producer(
            s, f"aborting-{uuid.uuid4().hex[:8]}", transaction_timeout_ms=30_000
        )
    )
    writer.init_transactions(30)
    writer.begin_transaction()
    key = f"INTERNAL:{SECURITY}".encode()
    aborted = registry().encode("TradeTick", tick("T-aborted", 9_990, 1_000_000))
    writer.produce(s.topic("md.trades"), aborted, key)
    writer.produce(s.topic("fills"), registry().encode("Fill", fill("X-aborted")), b"W1")
    writer.flush(30)
    writer.abort_transaction(30)
    publish_records(s, "md.trades", "TradeTick", [(key.decode(), tick("T-ok", 7_550, 2_000))])
    publish_records(s, "fills", "Fill", [("W1", fill("X-committed"))])

    # Each committed record follows its aborted twin in the same partition, so once the
    # committed one shows, the aborted one was passed over (or counted).
    def stats() -> Any:
        found = [r for r in read_topic(s, "md.stats", "SecurityStats") if r["security"] == SECURITY]
        return found if any(r["last_e3"] == 7_550 for r in found) else None

    latest = wait_for("md.stats of the committed trade", stats, procs.check)[-1]
    assert (latest["volume"], latest["last_e3"], latest["high_e3"]) == (2_000, 7_550, 7_550)

    def alerts() -> Any:
        found = read_topic(s, "surveillance.alerts", "SurveillanceAlert")
        ids = [a["alert_id"] for a in found]
        return ids if "WASH_TRADE:INTERNAL:X-committed" in ids else None

    ids = wait_for("the committed wash trade's alert", alerts, procs.check)
    assert ids == ["WASH_TRADE:INTERNAL:X-committed"]
    assert app.stop() == 0
    assert "Traceback" not in app.output(), app.output()[-4000:]
