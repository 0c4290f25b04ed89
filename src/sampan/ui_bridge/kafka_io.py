"""The ui's Kafka edges: one follower of every topic the screen shows, and one producer.

Follower guarantees: a single consumer (no group, no commits: state is rebuilt on every start)
is assigned every partition of the followed topics: compacted tables from their beginning,
`orders.events` from the first record of the Hong Kong trading day (by record timestamp),
`md.trades` from its last `TRADES_TAIL` records per partition. It reads with `read_committed`
and reports `ready` once every partition has reported its end (`enable.partition.eof`, never
silence), so the server accepts clients only on a state rebuilt to what was committed when it
started; it then simply keeps following, with no gap between catching up and going live.
Decoded records go to the event loop in batches through a bounded hand-off: a loop that falls
behind slows the follower, never the other way round; undecodable records are logged and
skipped (the screen is a reader; the writers' dead-letter topics hold what they refused).

Producer guarantees: idempotent, `acks=all`, the Java client's partitioner (so an account's
commands land on the partition every other writer and reader uses), and `send` resolves only
when the broker acknowledged the record; a full local queue is an error, never a wait.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

from sampan.config import Settings
from sampan.schemas import SchemaError, registry
from sampan.streams import profiles

log = logging.getLogger(__name__)

FOLLOWED: dict[str, str] = {
    "reference.instruments": "Instrument",
    "reference.accounts": "Account",
    "ledger.balances": "AccountSnapshot",
    "md.depth": "DepthSnapshot",
    "md.stats": "SecurityStats",
    "md.trades": "TradeTick",
    "md.movers": "Movers",
    "orders.events": "ExecutionReport",
    "recon.breaks": "ReconBreak",
    "risk.marks": "AccountMark",
    "risk.controls": "RiskControl",
    "surveillance.alerts": "SurveillanceAlert",
}
TRADES_TAIL = 1_000
CONSUME_MAX = 1_000
POLL_TIMEOUT_S = 0.05
HANDOFF_MAX = 32  # decoded batches waiting for the event loop
METADATA_TIMEOUT_S = 30.0
HK_OFFSET_NS = 8 * 3600 * 10**9
DAY_NS = 86_400 * 10**9
PRODUCE_QUEUE_MAX = 100_000

Batch = list[tuple[str, dict[str, Any]]]


def hk_day_start_ns(now_ns: int) -> int:
    """Midnight in Hong Kong (UTC+8, no daylight saving) at or before `now_ns`."""
    return (now_ns + HK_OFFSET_NS) // DAY_NS * DAY_NS - HK_OFFSET_NS


class Follower:
    def __init__(
        self,
        settings: Settings,
        loop: asyncio.AbstractEventLoop,
        on_batch: Callable[[Batch, bool], None],
        day_start_ns: int,
    ) -> None:
        self.settings = settings
        self.loop = loop
        self.on_batch = on_batch
        self.day_start_ns = day_start_ns
        self.ready = threading.Event()
        self.failed: str | None = None
        self._stop = threading.Event()
        self._slots = threading.BoundedSemaphore(HANDOFF_MAX)
        self._unprefix = {settings.topic(t): t for t in FOLLOWED}
        self._thread = threading.Thread(target=self._run, name="ui-follower", daemon=True)
        # Told when it reaches each partition's end: that is when the screen is ready.
        self.consumer = Consumer(
            profiles.follower(
                settings, f"sampan-ui-{uuid.uuid4().hex[:8]}", **{"enable.partition.eof": True}
            )
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _assignments(self) -> list[TopicPartition]:
        out = []
        day_start_ms = self.day_start_ns // 1_000_000
        for topic in FOLLOWED:
            name = self.settings.topic(topic)
            metadata = self.consumer.list_topics(name, timeout=METADATA_TIMEOUT_S)
            if name not in metadata.topics or metadata.topics[name].error is not None:
                raise TimeoutError(f"topic {name} does not exist or has no leader")
            partitions = sorted(metadata.topics[name].partitions)
            if topic == "orders.events":
                wanted = [TopicPartition(name, p, day_start_ms) for p in partitions]
                found = self.consumer.offsets_for_times(wanted, timeout=METADATA_TIMEOUT_S)
                for tp in found:
                    # -1: no record since the day began; start at the end then.
                    offset = tp.offset
                    if offset < 0:
                        offset = self.consumer.get_watermark_offsets(
                            TopicPartition(name, tp.partition), timeout=METADATA_TIMEOUT_S
                        )[1]
                    out.append(TopicPartition(name, tp.partition, offset))
            elif topic == "md.trades":
                for p in partitions:
                    low, high = self.consumer.get_watermark_offsets(
                        TopicPartition(name, p), timeout=METADATA_TIMEOUT_S
                    )
                    out.append(TopicPartition(name, p, max(low, high - TRADES_TAIL)))
            else:
                out.extend(TopicPartition(name, p, OFFSET_BEGINNING) for p in partitions)
        return out

    def _run(self) -> None:
        try:
            assignments = self._assignments()
            self.consumer.assign(assignments)
            waiting = {(tp.topic, tp.partition) for tp in assignments}
            while not self._stop.is_set():
                messages = self.consumer.consume(CONSUME_MAX, POLL_TIMEOUT_S)
                batch: Batch = []
                for message in messages:
                    error = message.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            waiting.discard((message.topic(), message.partition()))
                        else:
                            log.warning("ui follower: %s", error)
                        continue
                    value = message.value()
                    if value is None:
                        continue
                    topic = self._unprefix[message.topic()]
                    try:
                        batch.append((topic, registry().decode(FOLLOWED[topic], value)))
                    except SchemaError as decode_error:
                        log.error(
                            "ui follower: undecodable record %s[%d]@%d skipped: %s",
                            message.topic(),
                            message.partition(),
                            message.offset(),
                            decode_error,
                        )
                caught_up = not waiting
                if batch or (caught_up and not self.ready.is_set()):
                    self._hand_off(batch, caught_up)
                    if caught_up:
                        self.ready.set()
        except (KafkaException, TimeoutError) as error:
            self.failed = f"following the topics failed: {error}"
            log.error("ui follower: %s", self.failed)
        finally:
            self.consumer.close()

    def _hand_off(self, batch: Batch, caught_up: bool) -> None:
        while not self._slots.acquire(timeout=0.5):
            if self._stop.is_set():
                return

        def deliver() -> None:
            try:
                self.on_batch(batch, caught_up)
            finally:
                self._slots.release()

        self.loop.call_soon_threadsafe(deliver)


class Sender:
    """Writes records and tells the event loop when the broker acknowledged each."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer = Producer(
            profiles.producer(
                settings,
                linger_ms=1,
                **{
                    "queue.buffering.max.messages": PRODUCE_QUEUE_MAX,
                    "message.timeout.ms": 10_000,
                },
            )
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="ui-producer", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.05)

    def send(
        self, topic: str, key: str, schema: str, value: dict[str, Any]
    ) -> asyncio.Future[None]:
        """Produce one record; the future resolves on the broker's acknowledgement."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        encoded = registry().encode(schema, value)

        def delivered(error: Any, _message: Any) -> None:
            def settle() -> None:
                if future.done():
                    return
                if error is not None:
                    future.set_exception(OSError(f"writing {topic} failed: {error}"))
                else:
                    future.set_result(None)

            loop.call_soon_threadsafe(settle)

        try:
            self.producer.produce(
                self.settings.topic(topic), encoded, key.encode(), on_delivery=delivered
            )
        except BufferError:
            future.set_exception(OSError(f"writing {topic}: the local queue is full"))
        return future

    def close(self, timeout_s: float = 10.0) -> int:
        remaining: int = self.producer.flush(timeout_s)
        self._stop.set()
        self._thread.join(5)
        return remaining


def now_ns() -> int:
    return time.time_ns()
