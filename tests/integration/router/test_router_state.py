"""Start-up reads (`state_topic.load`, `TableReader.catch_up`) go to the end the broker
reports, not to the first silence: a broker that pauses mid-read loses no open order and no
table row."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from router_harness import account, publish

from sampan.config import Settings
from sampan.market.side import Side
from sampan.router import state_topic, table_reader
from sampan.router.orders import Order, Route
from sampan.router.tables import Tables
from sampan.streams import reader

pytestmark = pytest.mark.integration

PAUSE_S = 3.0  # longer than the 2 s of silence the old readers took for the end


class PausingConsumer(Consumer):  # type: ignore[misc]
    """A consumer whose broker goes quiet for `PAUSE_S` after the first record it delivers,
    and that delivers one message per call (so the pause falls mid-topic)."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.quiet_until: float | None = None

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]:
        if self.quiet_until is not None and time.monotonic() < self.quiet_until:
            time.sleep(max(timeout, 0))
            return []
        messages = super().consume(1, timeout)
        if self.quiet_until is None and any(m.error() is None for m in messages):
            self.quiet_until = time.monotonic() + PAUSE_S
        return list(messages)


@pytest.fixture
def pausing(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in (reader, state_topic, table_reader):
        if hasattr(module, "Consumer"):
            monkeypatch.setattr(module, "Consumer", PausingConsumer)


def _order(n: int) -> Order:
    return Order(
        f"0.{n}", "A1", "M1", 700, Side.BUY, "LIMIT", "DAY", Route.HKEX, f"c{n}", 512_000,
        100, 512_000,
    )  # fmt: skip


def test_state_load_survives_a_broker_pause(env_settings: Settings, pausing: None) -> None:
    producer = Producer(
        env_settings.kafka(
            **{"transactional.id": f"t-state-{uuid.uuid4().hex[:8]}", "enable.idempotence": True}
        )
    )
    producer.init_transactions(30)
    name = env_settings.topic(state_topic.STATE_TOPIC)
    for n in range(5):  # one transaction each: the last offset is a transaction marker
        producer.begin_transaction()
        order = _order(n)
        producer.produce(name, state_topic.encode_order(order), state_topic.order_key(order.key))
        producer.commit_transaction(30)
    loaded = state_topic.load(env_settings, "SAMPAN", "2030-01-02")
    assert sorted(o.key for o in loaded.orders) == [f"0.{n}" for n in range(5)]
    assert loaded.next_inbound_seq == 1 and not loaded.outbox


def test_table_catch_up_survives_a_broker_pause(env_settings: Settings, pausing: None) -> None:
    rows = [account(f"ACC{n}", "M1", 10**9) for n in range(5)]
    publish(env_settings, "reference.accounts", "Account", rows)
    tables = Tables()
    tables_in = table_reader.TableReader(env_settings)
    try:
        tables_in.catch_up(tables)
    finally:
        tables_in.close()
    assert sorted(tables.accounts) == [f"ACC{n}" for n in range(5)]
