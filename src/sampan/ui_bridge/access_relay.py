"""The screen's access audit trail on `ui.access`: every row of `access_audit`, once, in id order.

Design: the row is written to PostgreSQL first (that write is what a refusal waits for, and
the table stays the screen's own append-only record); a relay in the server then publishes the
committed rows in id order, keyed by the row's id, and waits for the broker's acknowledgement
of each before the next. Its cursor is the highest id on the topic: read from the topic's tail
at start (and again after any failed write), then advanced with each acknowledged record. So
the topic is its own bookmark: nothing else has to be kept in step with it.

Guarantees:
- No row lost: inserts are serialised (`Store.audit` locks the table), so ids commit in rising
  order and a row with a smaller id than one already read can no longer appear; a row is
  published after every row with a smaller id, on one partition; a row written while the
  broker is away is published when it is back (the relay retries every `RELAY_S`, and at start
  it resumes after the tail, so rows written by a server that stopped before relaying them are
  published by the next). On shutdown the relay makes a last pass (`FINAL_PASS_S`).
- None duplicated: after a failed write (an acknowledgement lost: the record may or may not be
  on the topic) the cursor is re-read from the tail before anything is sent again. A reader
  that still meets an id it has passed (two servers relaying one schema, a write acknowledged
  late) skips it: ids rise along the topic (`tools/audit_access.py` does so).
- Bounded: at most `BATCH_MAX` rows a pass; the tail read reads at most `TAIL_RECORDS` records.

Limits: one users schema per topic prefix (the ids of two schemas would mix on one topic);
a row reaches the topic within about `RELAY_S` of its commit while the broker is up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from sampan.config import Settings
from sampan.schemas import SchemaError, registry
from sampan.streams import profiles
from sampan.streams.reader import read_to_end

log = logging.getLogger(__name__)

TOPIC = "ui.access"
SCHEMA = "AccessAudit"
RELAY_S = 0.5
BATCH_MAX = 500
TAIL_RECORDS = 16
TAIL_TIMEOUT_S = 30.0
FINAL_PASS_S = 10.0


def record_of(row: dict[str, Any]) -> dict[str, Any]:
    """The AccessAudit record of an `access_audit` row (`Store.audit_after`)."""
    return {
        "audit_id": int(row["id"]),
        "ts_ns": int(row["ts_ns"]),
        "username": row["username"],
        "role": row["role"],
        "action": row["action"],
        "target": row["target"],
        "reason": row["reason"],
        "remote": row["remote"],
    }


def highest_published(settings: Settings) -> int:
    """The highest audit id on `ui.access` (0 when it holds none), from its last records."""
    name = settings.topic(TOPIC)
    lookup = Consumer(profiles.lookup(settings, f"sampan-ui-tail-{uuid.uuid4().hex[:8]}"))
    try:
        metadata = lookup.list_topics(name, timeout=TAIL_TIMEOUT_S)
        if name not in metadata.topics or metadata.topics[name].error is not None:
            raise TimeoutError(f"topic {name} does not exist or has no leader")
        starts: dict[int, int] = {}
        for partition in metadata.topics[name].partitions:
            low, high = lookup.get_watermark_offsets(
                TopicPartition(name, partition), timeout=TAIL_TIMEOUT_S
            )
            if high > low:
                starts[partition] = max(low, high - TAIL_RECORDS)
    finally:
        lookup.close()
    highest = 0
    if not starts:
        return highest
    for message in read_to_end(settings, TOPIC, TAIL_TIMEOUT_S, starts):
        value = message.value()
        if value is None:
            continue
        try:
            highest = max(highest, int(registry().decode(SCHEMA, value)["audit_id"]))
        except SchemaError as error:
            log.error("ui.access tail: undecodable record @%d: %s", message.offset(), error)
    return highest


@dataclass(slots=True)
class Relay:
    """The relay's cursor and its one pass; the edges are functions, so the logic is testable
    without a broker: `read_tail()` gives the highest id on the topic, `rows(after, limit)`
    the committed rows above an id, `send(key, record)` resolves on the acknowledgement."""

    read_tail: Callable[[], Awaitable[int]]
    rows: Callable[[int, int], Awaitable[list[dict[str, Any]]]]
    send: Callable[[str, dict[str, Any]], Awaitable[None]]
    cursor: int | None = None  # None: not known; read the tail before sending

    async def relay_once(self) -> int:
        """Publish the rows above the cursor (at most `BATCH_MAX`); returns how many. A failed
        write forgets the cursor (the tail tells, next pass, whether it landed) and raises."""
        if self.cursor is None:
            self.cursor = await self.read_tail()
        sent = 0
        for row in await self.rows(self.cursor, BATCH_MAX):
            record = record_of(row)
            try:
                await self.send(str(record["audit_id"]), record)
            except BaseException:
                self.cursor = None
                raise
            self.cursor = record["audit_id"]
            sent += 1
        return sent


async def run(relay: Relay, stopping: asyncio.Event) -> None:
    """Relay every `RELAY_S` until `stopping` is set; failures are logged and retried."""
    while not stopping.is_set():
        try:
            while await relay.relay_once() == BATCH_MAX:
                pass
        except Exception as failure:  # the rows stay in the database; the next pass retries
            log.warning("ui: relaying the access audit to %s failed (retrying): %s", TOPIC, failure)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), RELAY_S)


async def final_pass(relay: Relay) -> None:
    """One last relay of what is left, bounded by `FINAL_PASS_S`; says what it could not do."""
    try:
        async with asyncio.timeout(FINAL_PASS_S):
            while await relay.relay_once() == BATCH_MAX:
                pass
    except Exception as failure:
        log.warning(
            "ui: last relay of the access audit failed; the next start publishes the rest: %s",
            failure,
        )
