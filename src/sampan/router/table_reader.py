"""Reads the topics risk uses as tables into `Tables`: latest value per key wins.

reference.accounts, reference.instruments, ledger.balances and risk.controls are compacted and read from the
beginning; md.trades only from its last `TRADES_TAIL` records per partition (the last price is
all risk needs); `fills` from the offsets the oldest ledger snapshot includes, so that every
fill some snapshot does not include yet is read (tables.py). No consumer group, no commits:
the whole table is read again on every start.

Guarantees: `catch_up` returns once every partition has reported its end (`read_to_end`:
an end-of-partition event, never a pause), within `CATCH_UP_TIMEOUT_S`, else raises
`TimeoutError` (the router exits non-zero rather than decide on partial tables); `poll`
never blocks; a reference record (`REFERENCE`) that cannot be decoded, or that risk cannot use
(`tables.BadReference`), is logged, removes its key (fail closed: orders for that account or
instrument are refused as unknown until a sound record replaces it) and waits in `dead` for
the service to write it to the topic's dead-letter topic in its next transaction (at most
`DEAD_MAX`; the rest are only logged); an undecodable record of another table is logged and
skipped (its writer is a sampan process, whose own input is dead-lettered). Tables are re-read on every start, so such a record is
dead-lettered again after each restart until a sound one replaces it.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from sampan.config import Settings
from sampan.router.records import Out, dead_letter
from sampan.router.tables import BadReference, Tables
from sampan.schemas import SchemaError, registry
from sampan.streams import profiles
from sampan.streams.reader import read_to_end
from sampan.topics import dead_letter_of

log = logging.getLogger(__name__)

TABLES = {
    "reference.accounts": "Account",
    "reference.instruments": "Instrument",
    "ledger.balances": "AccountSnapshot",
    "md.trades": "TradeTick",
    "risk.controls": "RiskControl",
    # After ledger.balances: read from where the oldest snapshot stops (Tables.fills_start).
    "fills": "Fill",
}
REFERENCE = ("reference.accounts", "reference.instruments")
TRADES_TAIL = 1_000
CATCH_UP_TIMEOUT_S = 120.0
POLL_MAX = 1_000
DEAD_MAX = 10_000  # dead letters waiting for the service's next transaction
AGENT = "sampan-router"


class TableReader:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._unprefix = {settings.topic(name): name for name in TABLES}
        self.dead: list[Out] = []  # rejected reference records, for the service to dead-letter
        self.consumer = Consumer(
            profiles.follower(settings, f"sampan-router-tables-{uuid.uuid4().hex[:8]}")
        )

    def catch_up(self, tables: Tables) -> None:
        """Read every table to the end the broker reports, then follow it with `poll`."""
        deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
        follow: list[TopicPartition] = []
        for topic in TABLES:
            name = self.settings.topic(topic)
            starts = self._starts(topic, name, tables)
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                raise TimeoutError(f"reading the router's tables took over {CATCH_UP_TIMEOUT_S} s")
            nexts = dict(starts)
            for message in read_to_end(self.settings, topic, remaining_s, starts=starts):
                self._apply(tables, message)
                nexts[message.partition()] = message.offset() + 1
            # Only transaction markers (never delivered) can lie between the last record read
            # and the end, so following on from the next offset skips nothing.
            follow.extend(TopicPartition(name, p, offset) for p, offset in nexts.items())
        self.consumer.assign(follow)

    def _starts(self, topic: str, name: str, tables: Tables) -> dict[int, int]:
        metadata = self.consumer.list_topics(name, timeout=30)
        if name not in metadata.topics or metadata.topics[name].error is not None:
            raise TimeoutError(f"table {name} does not exist or has no leader")
        starts = {}
        for p in metadata.topics[name].partitions:
            low, high = self.consumer.get_watermark_offsets(TopicPartition(name, p), timeout=30)
            starts[p] = max(low, high - TRADES_TAIL) if topic == "md.trades" else low
        if topic == "fills":
            oldest = tables.fills_start(starts)
            starts = {p: max(low, oldest[p]) for p, low in starts.items()}
        return starts

    def poll(self, tables: Tables) -> int:
        messages = self.consumer.consume(POLL_MAX, 0)
        for message in messages:
            self._apply(tables, message)
        return len(messages)

    def _apply(self, tables: Tables, message: Any) -> None:
        error = message.error()
        if error is not None:
            log.warning("router tables: %s", error)
            return
        topic = self._unprefix[message.topic()]
        value = message.value()
        if value is None:
            return
        try:
            decoded = registry().decode(TABLES[topic], value)
            if topic == "fills":
                tables.apply_fill(message.partition(), message.offset(), decoded)
            else:
                tables.apply(topic, decoded)
        except SchemaError as error:
            if topic not in REFERENCE:
                log.error("router tables: undecodable %s record skipped: %s", topic, error)
                return
            log.error("router tables: undecodable %s record rejected: %s", topic, error)
            _forget(tables, topic, message.key())
            self._reject(message, topic, f"undecodable: {error}")
        except BadReference as error:
            log.error("router tables: %s record rejected: %s", topic, error)
            self._reject(message, topic, str(error))

    def _reject(self, message: Any, topic: str, error: str) -> None:
        if len(self.dead) >= DEAD_MAX:
            return
        source = (message.topic(), message.partition(), message.offset())
        letter = dead_letter(
            dead_letter_of(topic),
            source,
            message.key(),
            message.value(),
            error,
            AGENT,
            time.time_ns(),
        )
        self.dead.append(letter)

    def take_dead(self) -> list[Out]:
        dead, self.dead = self.dead, []
        return dead

    def close(self) -> None:
        self.consumer.close()


def _forget(tables: Tables, topic: str, key: bytes | None) -> None:
    """Drop the table entry an undecodable reference record was meant to replace (its key:
    the account, or the security as decimal text)."""
    text = (key or b"").decode("utf-8", "replace")
    if topic == "reference.accounts":
        tables.accounts.pop(text, None)
    elif text.isdigit():
        tables.instruments.pop(int(text), None)
