"""Reads the topics risk uses as tables into `Tables`: latest value per key wins.

reference.accounts, reference.instruments and ledger.balances are compacted and read from the
beginning; md.trades only from its last `TRADES_TAIL` records per partition (the last price is
all risk needs). No consumer group, no commits: the whole table is read again on every start.

Guarantees: `catch_up` returns once every partition has been read to the end offset it had
when catching up began (or has been idle `IDLE_END_S`), within `CATCH_UP_TIMEOUT_S`, else
raises `TimeoutError`; `poll` never blocks; undecodable records are logged and skipped (their
writers dead-letter nothing here: a table is not an input the router answers).
"""

from __future__ import annotations

import logging
import time
import uuid

from confluent_kafka import Consumer, TopicPartition

from sampan.config import Settings
from sampan.router.tables import Tables
from sampan.schemas import SchemaError, registry

log = logging.getLogger(__name__)

TABLES = {
    "reference.accounts": "Account",
    "reference.instruments": "Instrument",
    "ledger.balances": "AccountSnapshot",
    "md.trades": "TradeTick",
}
TRADES_TAIL = 1_000
CATCH_UP_TIMEOUT_S = 120.0
IDLE_END_S = 2.0
POLL_MAX = 1_000


class TableReader:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._unprefix = {settings.topic(name): name for name in TABLES}
        self.consumer = Consumer(
            settings.kafka(
                **{
                    "group.id": f"sampan-router-tables-{uuid.uuid4().hex[:8]}",
                    "enable.auto.commit": False,
                    "isolation.level": "read_committed",
                    "auto.offset.reset": "earliest",
                }
            )
        )
        self._ends: dict[tuple[str, int], int] = {}

    def _assign(self) -> None:
        tps = []
        for name in self._unprefix:
            metadata = self.consumer.list_topics(name, timeout=30)
            for p in metadata.topics[name].partitions:
                low, high = self.consumer.get_watermark_offsets(TopicPartition(name, p), timeout=30)
                start = max(low, high - TRADES_TAIL) if name.endswith("md.trades") else low
                tps.append(TopicPartition(name, p, start))
                self._ends[(name, p)] = high
        self.consumer.assign(tps)

    def catch_up(self, tables: Tables) -> None:
        self._assign()
        deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
        idle_since = time.monotonic()
        pending = {k for k, end in self._ends.items() if end > 0}
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading the router's tables took over {CATCH_UP_TIMEOUT_S} s")
            messages = self.consumer.consume(POLL_MAX, 0.2)
            if messages:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > IDLE_END_S:
                break  # only transaction markers remain below the end offsets
            for message in messages:
                self._apply(tables, message)
                key = (message.topic(), message.partition())
                if message.error() is None and message.offset() + 1 >= self._ends.get(key, 0):
                    pending.discard(key)

    def poll(self, tables: Tables) -> int:
        messages = self.consumer.consume(POLL_MAX, 0)
        for message in messages:
            self._apply(tables, message)
        return len(messages)

    def _apply(self, tables: Tables, message: object) -> None:
        error = message.error()  # type: ignore[attr-defined]
        if error is not None:
            log.warning("router tables: %s", error)
            return
        topic = self._unprefix[message.topic()]  # type: ignore[attr-defined]
        value = message.value()  # type: ignore[attr-defined]
        if value is None:
            return
        try:
            tables.apply(topic, registry().decode(TABLES[topic], value))
        except SchemaError as error:
            log.error("router tables: undecodable %s record skipped: %s", topic, error)

    def close(self) -> None:
        self.consumer.close()
