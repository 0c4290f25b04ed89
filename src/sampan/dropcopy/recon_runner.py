"""The reconciliation process around `recon.Reconciler`, and the day's report.

On start it reads `recon.breaks` (compacted: the latest state per ExecID) to learn what was
already published today, then reads today's `hkex.dropcopy` and `fills` from the first offset
at or after Hong Kong midnight up to their ends, and only then starts evaluating: so a restart
rebuilds the same state from the logs and republishes nothing unchanged, and a record whose
other side merely sits later in the other topic is never flagged. After that it follows both
topics and evaluates every `tick_s`, publishing changes keyed by ExecID.

Guarantees: inputs are read with read_committed; an undecodable input goes to the source's
dead-letter topic with its origin; every poll, flush and read has a timeout; a break record
may be published twice after a crash (the topic is compacted and the states are idempotent,
so the latest state per ExecID is still right).

Limits: one instance (it assigns every partition itself, no consumer group); state is the
current trading day only; the grace period runs on the record timestamps and the wall clock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import (
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

from sampan import topics
from sampan.config import Settings
from sampan.dropcopy.recon import Break, BreakKind, BreakStatus, Execution, Reconciler, Summary
from sampan.dropcopy.records import EXEC_TYPE_TRADE
from sampan.market.calendar import trading_day_iso
from sampan.market.parties import EXCHANGE_MEMBER
from sampan.schemas import SchemaError, registry
from sampan.streams import profiles
from sampan.streams.letters import dead_letter

log = logging.getLogger(__name__)

DROPCOPY, FILLS, BREAKS = "hkex.dropcopy", "fills", "recon.breaks"
_SCHEMAS = {DROPCOPY: "DropCopyExecution", FILLS: "Fill", BREAKS: "ReconBreak"}
GRACE_S_DEFAULT = 10.0
POLL_S = 0.2
BATCH_MAX = 500
# A broker restarting on a loaded machine can take minutes to answer again: reads and
# deliveries wait that long before the process gives up (and its supervisor restarts it).
READ_TIMEOUT_S = 180.0
FLUSH_TIMEOUT_S = 30.0
BROKER_WAIT_S = 300.0
_HKT = timedelta(hours=8)


def day_start_ms(day: str) -> int:
    """Hong Kong midnight of `day` (YYYY-MM-DD) in ms since the epoch."""
    midnight = datetime.fromisoformat(day).replace(tzinfo=UTC) - _HKT
    return int(midnight.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class _Input:
    topic: str  # catalog name
    value: dict[str, Any]
    timestamp_ms: int


def _consumer(settings: Settings, group: str) -> Consumer:
    # The group is never committed: the reader assigns and rebuilds.
    return Consumer(profiles.end_reader(settings, settings.topic(group)))


class _Reader:
    """Reads catalog topics from given timestamps; decodes; dead-letters what it cannot."""

    def __init__(self, settings: Settings, group: str, dead_letter: Producer | None) -> None:
        self.settings = settings
        self.consumer = _consumer(settings, group)
        self._dead_letter = dead_letter
        self._unprefix: dict[str, str] = {}
        self._at_end: set[tuple[str, int]] = set()
        self._assigned: set[tuple[str, int]] = set()

    def assign(self, names: list[str], since_ms: int) -> None:
        wanted = []
        for name in names:
            topic = self.settings.topic(name)
            self._unprefix[topic] = name
            metadata = self.consumer.list_topics(topic, timeout=READ_TIMEOUT_S)
            for p in sorted(metadata.topics[topic].partitions):
                wanted.append(TopicPartition(topic, p, since_ms))
        found = self.consumer.offsets_for_times(wanted, timeout=READ_TIMEOUT_S)
        start = [
            TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_END)
            for tp in found
        ]
        self.consumer.assign(start)
        self._assigned = {(tp.topic, tp.partition) for tp in start}

    @property
    def caught_up(self) -> bool:
        return self._at_end >= self._assigned

    def poll(self) -> list[_Input]:
        out = []
        for message in self.consumer.consume(BATCH_MAX, POLL_S):
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    self._at_end.add((message.topic(), message.partition()))
                    continue
                if error.fatal():
                    raise KafkaException(error)
                log.warning("recon: consumer error %s", error)
                continue
            name = self._unprefix[message.topic()]
            try:
                value = registry().decode(_SCHEMAS[name], message.value() or b"")
            except SchemaError as exc:
                self._letter(message, name, f"undecodable: {exc}")
                continue
            out.append(_Input(name, value, message.timestamp()[1]))
        return out

    def read_to_end(self, handle: Callable[[_Input], None]) -> None:
        deadline = time.monotonic() + READ_TIMEOUT_S
        while not self.caught_up:
            if time.monotonic() > deadline:
                raise TimeoutError(f"recon: inputs not read to their end within {READ_TIMEOUT_S} s")
            for item in self.poll():
                handle(item)

    def _letter(self, message: Any, name: str, reason: str) -> None:
        log.error("recon: %s[%d]@%d %s", name, message.partition(), message.offset(), reason)
        if self._dead_letter is None or name == BREAKS:
            return
        letter = dead_letter(
            message.topic(),
            message.partition(),
            message.offset(),
            message.key(),
            message.value(),
            reason,
            "recon",
            time.time_ns(),
        )
        dlq = self.settings.topic(topics.dead_letter_of(name))
        self._dead_letter.produce(dlq, registry().encode("DeadLetter", letter), message.key())

    def close(self) -> None:
        self.consumer.close()


def feed(reconciler: Reconciler, item: _Input) -> None:
    """Hand one input record to the reconciler (trades and HKEX fills only), with the member's
    side: the drop copy's order side (SELL_SHORT counts as SELL: a fill cannot tell them
    apart), and a fill's BUY when its buyer is the member, not the exchange."""
    v, seen_ns = item.value, item.timestamp_ms * 1_000_000
    if item.topic == DROPCOPY and v["exec_type"] == EXEC_TYPE_TRADE:
        side = "BUY" if v["side"] == "BUY" else "SELL"
        reconciler.add_dropcopy(
            Execution(v["exec_id"], v["last_qty"], v["last_px_e3"], seen_ns, side, v["security"])
        )
    elif item.topic == FILLS and v["venue"] == "HKEX":
        side = "BUY" if v["buy_member"] != EXCHANGE_MEMBER else "SELL"
        reconciler.add_fill(
            Execution(v["exec_id"], v["qty"], v["price_e3"], seen_ns, side, v["security"])
        )


def to_break(value: dict[str, Any]) -> Break:
    return Break(
        value["exec_id"],
        BreakKind(value["kind"]),
        BreakStatus(value["status"]),
        value["detail"],
        value["ts_ns"],
    )


def load_breaks(settings: Settings, day: str) -> dict[str, Break]:
    """The latest published break per ExecID, for breaks published on `day`."""
    reader = _Reader(settings, "recon-breaks-reader", None)
    latest: dict[str, Break] = {}
    try:
        reader.assign([BREAKS], day_start_ms(day))

        def keep(item: _Input) -> None:
            brk = to_break(item.value)
            if trading_day_iso(brk.ts_ns) == day:
                latest[brk.exec_id] = brk

        reader.read_to_end(keep)
    finally:
        reader.close()
    return latest


class ReconRunner:
    """The long-running reconciliation of one trading day. `run()` until `stop()`."""

    def __init__(self, settings: Settings, day: str, grace_s: float = GRACE_S_DEFAULT) -> None:
        self.settings = settings
        self.day = day
        self.reconciler = Reconciler(int(grace_s * 1e9))
        # A break outlives the longest wait for the broker (`_flush`) in the queue.
        timeout_ms = int((BROKER_WAIT_S + 2 * FLUSH_TIMEOUT_S) * 1000)
        self.producer = Producer(
            profiles.producer(settings, linger_ms=5, **{"message.timeout.ms": timeout_ms})
        )
        self._stop = threading.Event()
        self.published = 0
        self._undelivered: list[str] = []

    def stop(self) -> None:
        self._stop.set()

    def run(self, tick_s: float = 1.0) -> int:
        for brk in load_breaks(self.settings, self.day).values():
            self.reconciler.load_published(brk)
        reader = _Reader(self.settings, "recon", self.producer)
        try:
            reader.assign([DROPCOPY, FILLS], day_start_ms(self.day))
            reader.read_to_end(lambda item: feed(self.reconciler, item))
            log.info("recon %s: inputs read to their end; following", self.day)
            next_tick = 0.0
            while not self._stop.is_set():
                for item in reader.poll():
                    feed(self.reconciler, item)
                if time.monotonic() >= next_tick:
                    self._publish(self.reconciler.evaluate(time.time_ns()))
                    next_tick = time.monotonic() + tick_s
        finally:
            reader.close()
            self.producer.flush(FLUSH_TIMEOUT_S)
        return 0

    def _publish(self, breaks: list[Break]) -> None:
        topic = self.settings.topic(BREAKS)
        for brk in breaks:
            value = {
                "exec_id": brk.exec_id,
                "kind": str(brk.kind),
                "status": str(brk.status),
                "detail": brk.detail,
                "ts_ns": brk.ts_ns,
            }
            self.producer.produce(
                topic,
                registry().encode("ReconBreak", value),
                brk.exec_id.encode(),
                on_delivery=self._delivered,
            )
            log.info("recon: %s %s %s (%s)", brk.status, brk.kind, brk.exec_id, brk.detail)
        if breaks:
            self._flush()
            self.published += len(breaks)

    def _delivered(self, error: KafkaError | None, message: Any) -> None:
        if error is not None:
            self._undelivered.append(f"{message.key()!r}: {error}")

    def _flush(self) -> None:
        """Wait until every break is delivered. While the broker is away (a restart) that
        takes as long as its absence: keep waiting, up to `BROKER_WAIT_S`, then fail (the
        restarted process rebuilds its state from the logs and publishes again). A break
        the client gave up on also fails the process, so none is taken as published."""
        deadline = time.monotonic() + BROKER_WAIT_S
        while remaining := self.producer.flush(FLUSH_TIMEOUT_S):
            if time.monotonic() > deadline:
                raise KafkaException(
                    KafkaError(
                        KafkaError._TIMED_OUT,
                        f"{remaining} breaks unsent after {BROKER_WAIT_S:.0f} s",
                    )
                )
            log.warning("recon: %d breaks not delivered yet (is the broker away?)", remaining)
        if self._undelivered:
            raise KafkaException(
                KafkaError(KafkaError._MSG_TIMED_OUT, f"breaks undelivered: {self._undelivered}")
            )


@dataclass(frozen=True, slots=True)
class Report:
    day: str
    summary: Summary  # recomputed from today's inputs now
    published: dict[str, Break]  # what `recon.breaks` holds for today (latest per ExecID)

    def lines(self) -> list[str]:
        open_ = [b for b in self.published.values() if b.status is BreakStatus.OPEN]
        healed = sum(1 for b in self.published.values() if b.status is BreakStatus.HEALED)
        by_kind: dict[str, int] = {}
        for b in open_:
            by_kind[b.kind] = by_kind.get(b.kind, 0) + 1
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(by_kind.items())) or "none"
        s = self.summary
        out = [
            f"recon {self.day}: matched {s.matched}, pending {s.pending}, "
            f"open breaks {len(open_)} ({kinds}), healed {healed}"
        ]
        out += [
            f"OPEN {b.kind} {b.exec_id}: {b.detail}" for b in sorted(open_, key=lambda b: b.exec_id)
        ]
        return out


def report(settings: Settings, day: str, grace_s: float = GRACE_S_DEFAULT) -> Report:
    reconciler = Reconciler(int(grace_s * 1e9))
    reader = _Reader(settings, "recon-report", None)
    try:
        reader.assign([DROPCOPY, FILLS], day_start_ms(day))
        reader.read_to_end(lambda item: feed(reconciler, item))
    finally:
        reader.close()
    return Report(day, reconciler.summary(time.time_ns()), load_breaks(settings, day))
