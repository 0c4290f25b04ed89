"""The matcher's recovery reads: to the end the broker reports, across a pause, or fail loudly;
and a partition whose committed offset is gone starts at its snapshot, not at the beginning."""

from __future__ import annotations

import signal
import time
from collections import Counter
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from test_matcher_crash import (
    ACCOUNTS,
    committed_total,
    end_total,
    log_tail,
    produce,
    start_matcher,
)

from sampan.config import Settings
from sampan.market.listings import listings
from sampan.matcher import agent, verify
from sampan.matcher.agent import default_instruments, load_snapshots, replay, snapshot_key
from sampan.matcher.mapping import PartitionBook
from sampan.schemas import registry
from sampan.streams import reader
from sampan.tools.loadgen import generate_commands

pytestmark = pytest.mark.integration

PAUSE_S = 3.0  # longer than any idle-means-the-end window a reader might have had


class Paused(Consumer):
    """A consumer that receives nothing for its first PAUSE_S seconds, as when the broker stops
    answering for a while (a long GC, a leader election)."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.pause_until = time.monotonic() + PAUSE_S

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]:
        if time.monotonic() < self.pause_until:
            time.sleep(max(timeout, 0))
            return []
        return super().consume(num_messages, timeout)


@pytest.fixture
def paused_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every recovery read pauses (the modules' own consumers too, as the readers once were)."""
    monkeypatch.setattr(reader, "Consumer", Paused)
    monkeypatch.setattr(agent, "Consumer", Paused, raising=False)
    monkeypatch.setattr(verify, "Consumer", Paused, raising=False)


def produce_snapshots(settings: Settings, books: dict[int, PartitionBook], ends: dict[int, int]):
    producer = Producer(settings.kafka(**{"enable.idempotence": True, "acks": "all"}))
    for partition, book in books.items():
        value = {
            "partition": partition,
            "next_offset": ends[partition],
            "state": book.snapshot(),
            "ts_ns": 1,
        }
        producer.produce(
            settings.topic("matcher.snapshots"),
            registry().encode("MatcherSnapshot", value),
            snapshot_key(partition),
        )
    assert producer.flush(30) == 0


def reference(placed: list[tuple[int, int]], commands: list[dict], books: dict[int, PartitionBook]):
    """Apply `commands` at their (partition, offset) to `books`; the records, in order."""
    records = []
    for (partition, offset), command in sorted(
        zip(placed, commands, strict=True), key=lambda x: x[0]
    ):
        book = books.setdefault(partition, PartitionBook(partition, default_instruments()))
        records += book.apply(offset, command)
    return records


def test_recovery_reads_everything_across_a_broker_pause(
    env_settings: Settings, paused_broker: None
) -> None:
    commands = list(generate_commands(5, 400, listings(), ACCOUNTS))
    placed = produce(env_settings, commands)
    half = len(commands) // 2
    books: dict[int, PartitionBook] = {}
    reference(placed[:half], commands[:half], books)
    ends = {p: max(o for q, o in placed[:half] if q == p) + 1 for p in books}
    produce_snapshots(env_settings, books, ends)

    snapshots = load_snapshots(env_settings, set(books))
    assert {p: offset for p, (offset, _) in snapshots.items()} == ends
    partition = max(books, key=lambda p: sum(1 for q, _ in placed if q == p))
    end = max(o for q, o in placed if q == partition) + 1
    book = PartitionBook.restore(snapshots[partition][1])
    assert replay(env_settings, partition, book, ends[partition], end) == sum(
        1 for q, o in placed if q == partition and o >= ends[partition]
    )
    assert len(verify.read_topic(env_settings, "orders.internal", False)) == len(commands)


def test_a_recovery_read_that_cannot_finish_in_time_fails_loudly(
    env_settings: Settings, paused_broker: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    placed = produce(env_settings, list(generate_commands(6, 20, listings(), ACCOUNTS)))
    monkeypatch.setattr(agent, "REPLAY_TIMEOUT_S", 1.0)
    partition = placed[0][0]
    book = PartitionBook(partition, default_instruments())
    with pytest.raises(TimeoutError):
        replay(env_settings, partition, book, 0, max(o for p, o in placed if p == partition) + 1)
    with pytest.raises(TimeoutError):
        load_snapshots(env_settings, {partition})


def test_without_a_committed_offset_a_partition_starts_at_its_snapshot(
    env_settings: Settings,
) -> None:
    """The group's offsets expired (here: were never committed) while the snapshots remain:
    the matcher must start after what the snapshots hold, not re-apply it from offset 0."""
    commands = list(generate_commands(11, 3000, listings(), ACCOUNTS))
    before, after = commands[:2000], commands[2000:]
    placed_before = produce(env_settings, before)
    books: dict[int, PartitionBook] = {}
    reference(placed_before, before, books)
    ends = {p: max(o for q, o in placed_before if q == p) + 1 for p in books}
    produce_snapshots(env_settings, books, ends)
    placed_after = produce(env_settings, after)
    expected = reference(placed_after, after, books)
    expected_fills = [r.value["exec_id"] for r in expected if r.topic == "fills"]
    expected_reports = [r.value["exec_id"] for r in expected if r.topic == "orders.events"]
    assert expected_fills

    end = end_total(env_settings)
    matcher = start_matcher()
    try:
        deadline = time.monotonic() + 120
        while committed_total(env_settings) < end:
            assert matcher.poll() is None, log_tail()
            assert time.monotonic() < deadline, "matcher did not catch up"
            time.sleep(0.1)
    finally:
        matcher.send_signal(signal.SIGTERM)
        status = matcher.wait(timeout=60)
    assert status == 0, log_tail()
    fills = [
        registry().decode("Fill", v)["exec_id"]
        for *_, v in verify.read_topic(env_settings, "fills", False)
    ]
    reports = [
        registry().decode("ExecutionReport", v)["exec_id"]
        for *_, v in verify.read_topic(env_settings, "orders.events", False)
    ]
    assert not [e for e, n in Counter(fills).items() if n > 1], "a fill was committed twice"
    assert sorted(fills) == sorted(expected_fills)
    assert sorted(reports) == sorted(expected_reports)
