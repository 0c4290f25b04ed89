"""The matcher process: the internal books as an exactly-once agent on `orders.internal`.

One `PartitionBook` per assigned partition of `orders.internal` (keyed by security, so each
book has a single writer and a total order). Each batch's execution reports, fills, trades and
coalesced depth (only books that changed) commit in the transaction that commits the input
offsets. Every `snapshot_commands` commands or `snapshot_interval_s` seconds, and on a clean
stop, the partition's whole state goes to `matcher.snapshots` in the same transaction, with the
offset it reflects. On assignment a partition loads its latest snapshot and replays the input
from the snapshot's offset up to the committed offset without emitting, then goes live; so
partitions can move between instances, and a SIGKILL loses nothing. A partition without a
committed offset (never committed, or expired) but with a snapshot starts consuming at the
snapshot's offset, so nothing the snapshot holds is applied twice.

Limits: both reads go to the end the broker reports (`sampan.streams.reader`), never to a
silence, within `REPLAY_TIMEOUT_S`; an instance that cannot read them in time fails loudly (the
error ends the process) rather than go live on a stale book. Instruments come from
`sampan.market.listings` when a partition has no snapshot yet.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaException, TopicPartition

from sampan.config import Settings
from sampan.market.listings import SPREAD_TABLE_CODES, listings
from sampan.market.rules import SPREAD_TABLES
from sampan.matcher.mapping import PartitionBook, Record
from sampan.matching.instrument import Instrument
from sampan.schemas import SchemaError, registry
from sampan.streams import InRecord, Output
from sampan.streams.reader import read_to_end

log = logging.getLogger(__name__)

INPUT = "orders.internal"
SNAPSHOTS = "matcher.snapshots"
REPLAY_TIMEOUT_S = 300.0


def default_instruments() -> list[Instrument]:
    found = []
    for listing in listings():
        table = SPREAD_TABLE_CODES.get(listing.spread_table)
        assert table in SPREAD_TABLES, f"unknown spread table {listing.spread_table}"
        found.append(
            Instrument(
                listing.security, listing.board_lot, table, listing.prev_close_e3, listing.enabled
            )
        )
    return found


def encode(record: Record) -> Output:
    return Output(record.topic, record.key.encode(), registry().encode(record.schema, record.value))


def snapshot_key(partition: int) -> bytes:
    return f"{INPUT}:{partition}".encode()


@dataclass(slots=True)
class Live:
    """A partition being served: its book and what the current batch touched."""

    book: PartitionBook
    next_offset: int
    commands_since_snapshot: int = 0
    snapshot_at: float = 0.0


class MatcherAgent:
    name = "sampan-matcher"
    inputs: Mapping[str, str] = {INPUT: "OrderCommand"}

    def __init__(
        self, settings: Settings, snapshot_commands: int = 50_000, snapshot_interval_s: float = 30.0
    ) -> None:
        self.settings = settings
        self.snapshot_commands = snapshot_commands
        self.snapshot_interval_s = snapshot_interval_s
        self.live: dict[int, Live] = {}
        self.partitions: set[int] = set()  # assigned, whether or not rebuilt yet
        self.touched: dict[
            tuple[int, int], tuple[int, int]
        ] = {}  # (partition, security) → (seq, ts)
        self._consumer: Any = None

    # ---------------------------------------------------------------- the pure part

    def handle(self, record: InRecord) -> Iterable[Output]:
        live = self.live[record.partition]
        command = record.value
        outputs = [encode(r) for r in live.book.apply(record.offset, command)]
        live.next_offset = record.offset + 1
        live.commands_since_snapshot += 1
        if command["security"]:
            self.touched[(record.partition, command["security"])] = (
                record.offset,
                command["ts_ns"],
            )
        elif command["kind"] == "PHASE":  # an uncross or the close moves every book
            for instrument in live.book.engine.instruments():
                self.touched[(record.partition, instrument.security)] = (
                    record.offset,
                    command["ts_ns"],
                )
        return outputs

    def end_batch(self) -> Iterable[Output]:
        outputs = []
        for (partition, security), (seq, ts_ns) in sorted(self.touched.items()):
            book = self.live[partition].book
            if security in {i.security for i in book.engine.instruments()}:
                outputs.append(encode(book.depth_record(security, seq, ts_ns)))
        self.touched.clear()
        now = time.monotonic()
        for partition, live in sorted(self.live.items()):
            due = live.commands_since_snapshot >= self.snapshot_commands or (
                live.commands_since_snapshot and now - live.snapshot_at >= self.snapshot_interval_s
            )
            if due:
                outputs.append(self._snapshot(partition, live, now))
        return outputs

    def stopping(self) -> Iterable[Output]:
        """On a clean stop, snapshot every partition that moved since its last snapshot."""
        now = time.monotonic()
        return [
            self._snapshot(p, live, now)
            for p, live in sorted(self.live.items())
            if live.commands_since_snapshot
        ]

    def _snapshot(self, partition: int, live: Live, now: float) -> Output:
        live.commands_since_snapshot = 0
        live.snapshot_at = now
        value = {
            "partition": partition,
            "next_offset": live.next_offset,
            "state": live.book.snapshot(),
            "ts_ns": time.time_ns(),
        }
        return Output(
            SNAPSHOTS, snapshot_key(partition), registry().encode("MatcherSnapshot", value)
        )

    # ---------------------------------------------------------------- state recovery (I/O)

    def assigned(
        self, partitions: Sequence[tuple[str, int]], consumer: Any
    ) -> dict[tuple[str, int], int]:
        """Rebuild each assigned partition; the start offsets of those without a committed
        offset whose snapshot is beyond 0 (the runtime must not start them at the beginning)."""
        self._consumer = consumer
        numbers = [p for topic, p in partitions if topic == INPUT]
        self.partitions.update(numbers)
        committed = consumer.committed(
            [TopicPartition(self.settings.topic(INPUT), p) for p in numbers], timeout=30
        )
        snapshots = load_snapshots(self.settings, set(numbers))
        starts: dict[tuple[str, int], int] = {}
        for tp in committed:
            if tp.error is not None:  # unknown, not absent: never rebuild to the wrong offset
                raise KafkaException(tp.error)
            snapshot = snapshots.get(tp.partition)
            if tp.offset >= 0:
                target = tp.offset
            elif snapshot is not None:
                target = starts[(INPUT, tp.partition)] = snapshot[0]
            else:
                target = 0
            self.live[tp.partition] = recover_partition(
                self.settings, tp.partition, snapshot, target
            )
        return starts

    def revoked(self, partitions: Sequence[tuple[str, int]]) -> None:
        for topic, partition in partitions:
            if topic == INPUT:
                self.live.pop(partition, None)
                self.partitions.discard(partition)

    def reset(self) -> None:
        """After an aborted transaction: rebuild every partition to its committed offset. A
        reset that fails (the broker is away) can be called again: it rebuilds every assigned
        partition, not only those a failed attempt left."""
        partitions = [(INPUT, p) for p in sorted(self.partitions)]
        self.live.clear()
        self.touched.clear()
        if partitions:
            self.assigned(partitions, self._consumer)


def load_snapshots(settings: Settings, partitions: set[int]) -> dict[int, tuple[int, bytes]]:
    """The latest snapshot of each wanted partition: partition → (next_offset, state)."""
    found: dict[int, tuple[int, bytes]] = {}
    for message in read_to_end(settings, SNAPSHOTS, REPLAY_TIMEOUT_S):
        value = registry().decode("MatcherSnapshot", message.value())
        if value["partition"] in partitions:
            found[value["partition"]] = (value["next_offset"], value["state"])
    return found


def recover_partition(
    settings: Settings, partition: int, snapshot: tuple[int, bytes] | None, committed: int
) -> Live:
    """Restore from `snapshot` (or an empty book) and replay input up to `committed`."""
    if snapshot is not None:
        start, state = snapshot
        book = PartitionBook.restore(state)
    else:
        start, book = 0, PartitionBook(partition, default_instruments())
    assert start <= committed, f"snapshot at {start} beyond committed {committed}"
    replayed = replay(settings, partition, book, start, committed)
    log.info(
        "matcher: partition %d from snapshot at %d, replayed %d commands to %d",
        partition,
        start,
        replayed,
        committed,
    )
    # Replayed commands count towards the next snapshot, so a restart's catch-up is kept.
    return Live(book, committed, replayed, time.monotonic())


def replay(settings: Settings, partition: int, book: PartitionBook, start: int, end: int) -> int:
    """Apply the commands of [start, end) to `book`, discarding the outputs."""
    if start >= end:
        return 0
    applied = 0
    for message in read_to_end(
        settings, INPUT, REPLAY_TIMEOUT_S, starts={partition: start}, stop_before={partition: end}
    ):
        try:
            command = registry().decode("OrderCommand", message.value())
        except SchemaError:
            log.debug(
                "replay: skip undecodable record at %d (dead-lettered live)", message.offset()
            )
            continue
        book.apply(message.offset(), command)
        applied += 1
    return applied
