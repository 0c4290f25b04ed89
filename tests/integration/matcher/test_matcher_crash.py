"""The matcher on the real stack: SIGKILLed at random points under 100,000 seeded orders, it
still commits every fill exactly once, `verify` says identical, and its final books equal a
reference replay's."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from sampan.config import Settings
from sampan.market.listings import listings
from sampan.matcher.agent import default_instruments, load_snapshots
from sampan.matcher.mapping import PartitionBook
from sampan.matcher.verify import read_topic, verify
from sampan.schemas import registry
from sampan.tools.loadgen import generate_commands

pytestmark = pytest.mark.integration

ACCOUNTS = [f"ACC{n}" for n in range(1, 9)]
CATCH_UP_TIMEOUT_S = 240.0


LOG = Path(os.environ.get("SAMPAN_STATE_DIR", ".state")) / "test-matcher.log"


def start_matcher(instance: str = "0", batch_size: int = 500) -> subprocess.Popen[bytes]:
    """The matcher as a process of its own; its log goes to .state/test-matcher.log."""
    LOG.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "sampan.cli", "matcher", "--batch-size", str(batch_size)]
    with LOG.open("ab") as log:
        return subprocess.Popen(
            [*command, "--snapshot-commands", "7000"],
            env={**os.environ, "SAMPAN_INSTANCE_ID": instance},
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def log_tail() -> str:
    return LOG.read_text(errors="replace")[-3000:] if LOG.exists() else "(no log)"


def produce(settings: Settings, commands: list[dict]) -> list[tuple[int, int]]:
    """Produce keyed by security; the (partition, offset) each command landed at, in order."""
    producer = Producer(
        settings.kafka(
            **{
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "partitioner": "murmur2_random",
            }
        )
    )
    placed: dict[int, tuple[int, int]] = {}

    def delivered(index: int):
        def callback(error, message) -> None:
            assert error is None, error
            placed[index] = (message.partition(), message.offset())

        return callback

    topic = settings.topic("orders.internal")
    for index, command in enumerate(commands):
        value = registry().encode("OrderCommand", command)
        while True:
            try:
                producer.produce(
                    topic, value, str(command["security"]).encode(), on_delivery=delivered(index)
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(60) == 0
    return [placed[i] for i in range(len(commands))]


def committed_total(settings: Settings) -> int:
    consumer = Consumer(settings.kafka(**{"group.id": settings.topic("sampan-matcher")}))
    try:
        name = settings.topic("orders.internal")
        tps = [TopicPartition(name, p) for p in range(3)]
        return sum(max(tp.offset, 0) for tp in consumer.committed(tps, timeout=10))
    finally:
        consumer.close()


def end_total(settings: Settings) -> int:
    consumer = Consumer(settings.kafka(**{"group.id": "watermarks"}))
    try:
        name = settings.topic("orders.internal")
        return sum(
            consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)[1] for p in range(3)
        )
    finally:
        consumer.close()


def test_matcher_survives_sigkill_with_every_fill_exactly_once(env_settings: Settings) -> None:
    commands = list(generate_commands(20261124, 100_000, listings(), ACCOUNTS))
    placed = produce(env_settings, commands)

    # The reference: the same commands, per partition in offset order, through fresh books.
    reference: dict[int, PartitionBook] = {}
    expected_fills: list[str] = []
    for (partition, offset), command in sorted(
        zip(placed, commands, strict=True), key=lambda pc: pc[0]
    ):
        book = reference.setdefault(partition, PartitionBook(partition, default_instruments()))
        expected_fills += [
            r.value["exec_id"] for r in book.apply(offset, command) if r.topic == "fills"
        ]
    assert len(expected_fills) > 10_000

    end = end_total(env_settings)
    rng = random.Random(7)
    kill_points = sorted(rng.sample(range(end // 10, end * 9 // 10), 3))
    matcher = start_matcher()
    kills = 0
    try:
        for point in kill_points:
            deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
            while committed_total(env_settings) < point:
                assert matcher.poll() is None, (
                    matcher.stderr.read().decode()[-3000:] if matcher.stderr else ""
                )
                assert time.monotonic() < deadline, f"matcher did not reach offset total {point}"
                time.sleep(0.02)
            matcher.send_signal(signal.SIGKILL)
            matcher.wait(timeout=10)
            kills += 1
            matcher = start_matcher()
        deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
        while committed_total(env_settings) < end:
            assert matcher.poll() is None, log_tail()
            assert time.monotonic() < deadline, "matcher did not catch up"
            time.sleep(0.1)
    finally:
        matcher.send_signal(signal.SIGTERM)
        status = matcher.wait(timeout=60)
    assert status == 0, "matcher did not stop cleanly"
    assert kills == 3

    fills = [
        registry().decode("Fill", value)["exec_id"]
        for *_, value in read_topic(env_settings, "fills", False)
    ]
    duplicates = [exec_id for exec_id, n in Counter(fills).items() if n > 1]
    assert not duplicates, f"{len(duplicates)} fills committed twice"
    assert sorted(fills) == sorted(expected_fills)

    result = verify(env_settings, progress=False)
    assert result.difference is None, result.summary()
    assert result.commands == len(commands)

    # The final books (the snapshot written on the clean stop) equal the reference's.
    snapshots = load_snapshots(env_settings, set(reference))
    for partition, book in reference.items():
        next_offset, state = snapshots[partition]
        assert next_offset == max(offset for p, offset in placed if p == partition) + 1
        live = PartitionBook.restore(state)
        live.engine.validate()
        for instrument in book.engine.instruments():
            assert live.engine.resting_orders(instrument.security) == book.engine.resting_orders(
                instrument.security
            )
        assert live.orders == book.orders


def test_a_cross_yields_reports_fills_trades_and_depth(env_settings: Settings) -> None:
    base = {
        "command_id": "",
        "kind": "NEW",
        "member": "M1",
        "security": 700,
        "orig_cl_ord_id": None,
        "ord_type": "LIMIT",
        "time_in_force": "DAY",
        "route": "INTERNAL",
        "batch_id": None,
        "parent_id": None,
        "user": None,
        "stp": None,
        "ts_ns": 1,
    }
    sell = {
        **base,
        "command_id": "s1",
        "cl_ord_id": "s1",
        "account": "ACC1",
        "side": "SELL",
        "price_e3": 512_000,
        "qty": 300,
    }
    buy = {
        **base,
        "command_id": "b1",
        "cl_ord_id": "b1",
        "account": "ACC2",
        "member": "M2",
        "side": "BUY",
        "price_e3": 512_500,
        "qty": 500,
    }
    bad = {
        **base,
        "command_id": "b2",
        "cl_ord_id": "b2",
        "account": "ACC2",
        "side": "BUY",
        "price_e3": 512_010,
        "qty": 100,
    }
    produce(env_settings, [sell, buy, bad])
    matcher = start_matcher()
    try:
        deadline = time.monotonic() + 60
        while committed_total(env_settings) < 3:
            assert time.monotonic() < deadline, "matcher did not consume the commands"
            time.sleep(0.1)
    finally:
        matcher.send_signal(signal.SIGTERM)
        assert matcher.wait(timeout=30) == 0
    reports = [
        registry().decode("ExecutionReport", v)
        for *_, v in read_topic(env_settings, "orders.events", False)
    ]
    by_order = {(r["cl_ord_id"], r["exec_type"], r["ord_status"]) for r in reports}
    assert ("s1", "TRADE", "FILLED") in by_order
    assert ("b1", "TRADE", "PARTIALLY_FILLED") in by_order
    rejected = [r for r in reports if r["cl_ord_id"] == "b2"]
    assert [(r["exec_type"], r["reject_reason"]) for r in rejected] == [("REJECTED", "NOT_ON_TICK")]
    fills = [registry().decode("Fill", v) for *_, v in read_topic(env_settings, "fills", False)]
    assert [
        (f["price_e3"], f["qty"], f["buy_account"], f["sell_account"], f["aggressor"])
        for f in fills
    ] == [(512_000, 300, "ACC2", "ACC1", "BUY")]
    buy_fill = next(r for r in reports if r["cl_ord_id"] == "b1" and r["exec_type"] == "TRADE")
    assert buy_fill["cum_notional_e3"] == 512_000 * 300
    depth = [
        registry().decode("DepthSnapshot", v)
        for *_, v in read_topic(env_settings, "md.depth", False)
    ]
    last = [d for d in depth if d["security"] == 700][-1]
    assert last["bids"] == [{"price_e3": 512_500, "qty": 200, "orders": 1}]
    assert last["asks"] == []
    trades = [
        registry().decode("TradeTick", v) for *_, v in read_topic(env_settings, "md.trades", False)
    ]
    assert [(t["venue"], t["price_e3"], t["qty"]) for t in trades] == [("INTERNAL", 512_000, 300)]
    assert verify(env_settings, progress=False).difference is None


def test_partitions_move_to_the_surviving_instance_without_loss(env_settings: Settings) -> None:
    """Two instances share the partitions; one dies and never returns. After the session
    timeout the survivor takes its partitions over (snapshot + replay) and finishes the work."""
    commands = list(generate_commands(99, 60_000, listings(), ACCOUNTS))
    # The doomed instance commits small batches, so the kill lands while its work is under way.
    first, second = start_matcher("0"), start_matcher("1", batch_size=50)
    owned = wait_for_members(env_settings, 2)
    doomed = owned_by(env_settings, "1")
    probe = Consumer(env_settings.kafka(**{"group.id": env_settings.topic("sampan-matcher")}))
    watched = [TopicPartition(env_settings.topic("orders.internal"), p) for p in doomed]
    probe.committed(watched, timeout=10)  # find the coordinator now, not while racing

    def progress() -> int:
        # Right after the kill the broker holds the committed offsets back until the dead
        # instance's open transaction is aborted (its transaction timeout): wait that out.
        return sum(max(tp.offset, 0) for tp in probe.committed(watched, timeout=60))

    try:
        # Hold both instances while the input is written (well within the 10 s session
        # timeout), so that each starts on its own partitions with all the work ahead of it.
        for process in (first, second):
            process.send_signal(signal.SIGSTOP)
        try:
            placed = produce(env_settings, commands)
        finally:
            for process in (first, second):
                process.send_signal(signal.SIGCONT)
        doomed_total = sum(1 for p, _ in placed if p in doomed)
        deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
        # Kill the second instance while its own partitions are part-way through.
        while progress() < doomed_total // 10:
            assert time.monotonic() < deadline, log_tail()
            time.sleep(0.002)
        second.send_signal(signal.SIGKILL)
        second.wait(timeout=10)
        assert progress() < doomed_total, "the instance finished its partitions before the kill"
        end = end_total(env_settings)
        while committed_total(env_settings) < end:
            assert first.poll() is None, log_tail()
            assert time.monotonic() < deadline, "the surviving instance did not finish the work"
            time.sleep(0.1)
    finally:
        probe.close()
        for process in (first, second):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)
    expected = 0
    books: dict[int, PartitionBook] = {}
    for (partition, offset), command in sorted(
        zip(placed, commands, strict=True), key=lambda pc: pc[0]
    ):
        book = books.setdefault(partition, PartitionBook(partition, default_instruments()))
        expected += sum(1 for r in book.apply(offset, command) if r.topic == "fills")
    # The killed instance's open transaction holds read_committed readers back until the
    # broker aborts it (transaction.timeout.ms): wait for every fill to become readable.
    deadline = time.monotonic() + 60
    while True:
        fills = [
            registry().decode("Fill", v)["exec_id"]
            for *_, v in read_topic(env_settings, "fills", False)
        ]
        if len(fills) >= expected or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert len(fills) == len(set(fills)) == expected
    result = verify(env_settings, progress=False)
    assert result.difference is None, result.summary()
    assert sorted(owned.values()) == [1, 2], (
        f"the two instances did not share the partitions: {owned}"
    )


def committed(settings: Settings, partition: int) -> int:
    consumer = Consumer(settings.kafka(**{"group.id": settings.topic("sampan-matcher")}))
    try:
        tp = TopicPartition(settings.topic("orders.internal"), partition)
        return max(consumer.committed([tp], timeout=10)[0].offset, 0)
    finally:
        consumer.close()


def owned_by(settings: Settings, instance: str) -> list[int]:
    """The partitions the matcher instance `instance` holds now."""
    from confluent_kafka.admin import AdminClient

    group = settings.topic("sampan-matcher")
    admin = AdminClient(settings.kafka())
    description = admin.describe_consumer_groups([group])[group].result(timeout=10)
    for member in description.members:
        if member.client_id == f"{group}-{instance}":
            return [tp.partition for tp in member.assignment.topic_partitions]
    raise AssertionError(f"instance {instance} is not in {group}")


def wait_for_members(settings: Settings, count: int) -> dict[str, int]:
    """Wait until the matcher group has `count` members with partitions; member → partitions."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(settings.kafka())
    group = settings.topic("sampan-matcher")
    deadline = time.monotonic() + 60
    while True:
        description = admin.describe_consumer_groups([group])[group].result(timeout=10)
        owned = {
            m.member_id: len(m.assignment.topic_partitions)
            for m in description.members
            if m.assignment and m.assignment.topic_partitions
        }
        if len(owned) == count:
            return owned
        assert time.monotonic() < deadline, f"matcher group never had {count} members: {owned}"
        time.sleep(0.2)
