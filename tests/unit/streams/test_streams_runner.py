"""The runtime's batch, handle and rebalance logic against scripted consumer and producer fakes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import pytest
from confluent_kafka import OFFSET_INVALID, KafkaError, KafkaException, TopicPartition

from sampan.config import settings
from sampan.schemas import registry
from sampan.streams import liveness, runtime
from sampan.streams.runtime import AgentConfig, AgentRunner, InRecord, Output
from sampan.tools.records import order_command

INPUT = "orders.requests"


class Message:
    def __init__(self, topic: str, partition: int, offset: int, value: bytes) -> None:
        self._topic, self._partition, self._offset, self._value = topic, partition, offset, value

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return b"ACC1"

    def value(self) -> bytes:
        return self._value

    def timestamp(self) -> tuple[int, int]:
        return (1, 1)

    def error(self) -> None:
        return None


class FakeConsumer:
    def __init__(self) -> None:
        self.consumes: list[Callable[[], list[Any]]] = []
        self.polled: Any = None
        self.assigned: list[TopicPartition] | None = None
        self.committed_offsets: list[TopicPartition] = []
        self.seeks: list[TopicPartition] = []
        self.positions: list[TopicPartition] = []

    def consume(self, num_messages: int, timeout: float) -> list[Any]:
        return self.consumes.pop(0)() if self.consumes else []

    def poll(self, timeout: float) -> Any:
        return self.polled

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned = partitions

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition) for tp in self.committed_offsets]

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        return self.committed_offsets

    def seek(self, tp: TopicPartition) -> None:
        self.seeks.append(tp)

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return self.positions

    def consumer_group_metadata(self) -> object:
        return object()


class FakeProducer:
    def __init__(self) -> None:
        self.produced: list[tuple[str, bytes | None]] = []
        self.failing_topic = ""
        self.too_large = b""
        self.transactions: list[str] = []

    def produce(self, topic: str, value: bytes, key: bytes | None, **kwargs: Any) -> None:
        if topic == self.failing_topic:
            raise KafkaException(KafkaError(KafkaError._QUEUE_FULL, "queue full"))
        if self.too_large and value == self.too_large:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "too large"))
        self.produced.append((topic, key))

    def begin_transaction(self) -> None:
        self.transactions.append("begin")
        self.produced = []

    def commit_transaction(self, timeout: float) -> None:
        self.transactions.append("commit")

    def abort_transaction(self, timeout: float) -> None:
        self.transactions.append("abort")
        self.produced = []

    def init_transactions(self, timeout: float) -> None:
        self.transactions.append("init")

    def purge(self) -> None:
        self.transactions.append("purge")

    def send_offsets_to_transaction(self, offsets: Any, metadata: Any, timeout: float) -> None:
        return None


class FakeAgent:
    name = "fake"
    inputs: Mapping[str, str] = {INPUT: "OrderCommand"}

    def __init__(self) -> None:
        self.starts: dict[tuple[str, int], int] = {}
        self.resets = 0

    def handle(self, record: InRecord) -> Iterable[Output]:
        yield Output("orders.events", record.key, b"report 1")
        yield Output("orders.events", record.key, b"report 2")

    def end_batch(self) -> Iterable[Output]:
        return ()

    def stopping(self) -> Iterable[Output]:
        return ()

    def assigned(self, partitions: Sequence[tuple[str, int]], consumer: Any) -> dict[Any, int]:
        return self.starts

    def revoked(self, partitions: Sequence[tuple[str, int]]) -> None:
        return None

    def reset(self) -> None:
        self.resets += 1


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> AgentRunner:
    monkeypatch.setattr(runtime, "Consumer", lambda config: FakeConsumer())
    monkeypatch.setattr(runtime, "Producer", lambda config: FakeProducer())
    return AgentRunner(FakeAgent(), settings(), AgentConfig())


def command_message(runner: AgentRunner, partition: int, offset: int) -> Message:
    value = registry().encode("OrderCommand", order_command("unit", offset, "ACC1"))
    return Message(runner.settings.topic(INPUT), partition, offset, value)


def test_a_record_polled_before_a_rebalance_in_the_same_fetch_is_dropped(
    runner: AgentRunner,
) -> None:
    consumer: FakeConsumer = runner.consumer
    first = command_message(runner, 0, 7)
    after = command_message(runner, 0, 5)
    tps = [TopicPartition(runner.settings.topic(INPUT), 0)]

    def rebalance() -> list[Any]:
        runner._on_revoke(runner.consumer, tps)
        runner._on_assign(runner.consumer, tps)
        return [after]

    consumer.consumes = [lambda: [], rebalance]
    consumer.polled = first
    assert runner._next_batch() == [after]
    # Without a rebalance, the polled record leads the batch.
    consumer.consumes = [lambda: [], lambda: [after]]
    assert runner._next_batch() == [first, after]


def test_a_produce_failure_propagates_and_dead_letters_nothing(runner: AgentRunner) -> None:
    producer: FakeProducer = runner.producer
    producer.failing_topic = runner.settings.topic("orders.events")
    with pytest.raises(KafkaException):
        runner._handle(command_message(runner, 0, 3))
    assert producer.produced == []
    producer.failing_topic = ""
    assert runner._handle(command_message(runner, 0, 3)) == 2
    assert [topic for topic, _ in producer.produced] == [runner.settings.topic("orders.events")] * 2


def test_an_output_too_large_dead_letters_its_input_after_a_redo(runner: AgentRunner) -> None:
    producer: FakeProducer = runner.producer
    agent: FakeAgent = runner.agent
    producer.too_large = b"report 2"
    runner._process([command_message(runner, 0, 3)])
    assert producer.transactions == ["begin", "abort"]
    assert agent.resets == 1, "the agent's state is rebuilt to the committed offsets"
    # The redo meets the record again: dead-lettered, not handled, and the batch commits.
    runner._process([command_message(runner, 0, 3)])
    assert producer.transactions == ["begin", "abort", "begin", "commit"]
    assert producer.produced == [(runner.settings.topic("orders.requests.dlq"), b"ACC1")]
    # After it, records are handled as usual.
    producer.too_large = b""
    runner._process([command_message(runner, 0, 4)])
    assert [t for t, _ in producer.produced] == [runner.settings.topic("orders.events")] * 2


def test_a_fenced_producer_is_renewed_a_bounded_number_of_times(
    runner: AgentRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broker back from an outage longer than the transaction timeout aborts our transaction
    and fences our producer: a new producer takes the transactional id over and the batch is
    redone. Fenced again and again within the window: someone else holds the id; stop."""
    agent: FakeAgent = runner.agent
    fenced = KafkaException(KafkaError(KafkaError._FENCED, "fenced", fatal=True))

    class Fenced(FakeProducer):
        def commit_transaction(self, timeout: float) -> None:
            raise fenced

    monkeypatch.setattr(runtime, "Producer", lambda config: Fenced())
    runner.producer = runner.txn.producer = Fenced()
    for renewal in range(1, runtime.PRODUCER_RENEWALS_MAX + 1):
        first = runner.producer
        with pytest.raises(KafkaException):
            runner._process([command_message(runner, 0, 3)])
        runner._renew_producer("fenced")
        assert runner.producer is not first and runner.txn.producer is runner.producer
        assert runner.producer.transactions == ["init"]
        assert agent.resets == renewal
    assert not runner._renewable(fenced), "fenced too often: another instance holds the id"
    other = KafkaException(KafkaError(KafkaError._STATE, "other fatal", fatal=True))
    refused_abort = KafkaException(KafkaError(KafkaError.INVALID_TXN_STATE, "abort", fatal=True))
    runner._renewals = []
    assert runner._renewable(fenced) and not runner._renewable(other)
    assert runner._renewable(refused_abort), "the broker had already aborted it"


def test_start_offsets_from_the_agent_apply_on_assign_and_on_rewind(runner: AgentRunner) -> None:
    consumer: FakeConsumer = runner.consumer
    agent: FakeAgent = runner.agent
    name = runner.settings.topic(INPUT)
    tps = [TopicPartition(name, 0), TopicPartition(name, 1)]
    runner._on_assign(runner.consumer, tps)
    assert consumer.assigned is None, "no start offsets: the library assigns as usual"
    agent.starts = {(INPUT, 1): 42}
    tps = [TopicPartition(name, 0), TopicPartition(name, 1)]
    runner._on_assign(runner.consumer, tps)
    assert consumer.assigned is not None
    assert [(tp.partition, tp.offset) for tp in consumer.assigned] == [(0, OFFSET_INVALID), (1, 42)]
    # After an abort, a partition that still has no committed offset goes back to its start.
    consumer.committed_offsets = [
        TopicPartition(name, 0, 9),
        TopicPartition(name, 1, OFFSET_INVALID),
    ]
    runner._rewind()
    assert [(tp.partition, tp.offset) for tp in consumer.seeks] == [(0, 9), (1, 42)]
    assert agent.resets == 1


def test_a_hung_transaction_call_renews_the_producer_and_redoes_the_batch(
    runner: AgentRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """librdkafka #5456 after a broker restart: send_offsets_to_transaction never returns. The
    process does not wait for it, and does not exit: a new producer takes the transactional id
    over (fencing the stuck one), the inputs rewind and the loop goes on."""
    monkeypatch.setattr(liveness, "CALL_GRACE_S", 0.05)
    runner.config = replace(runner.config, commit_timeout_s=0.1)
    runner.txn.timeout_s = 0.1
    agent: FakeAgent = runner.agent
    consumer: FakeConsumer = runner.consumer
    release = threading.Event()

    class Hangs(FakeProducer):
        def send_offsets_to_transaction(self, offsets: Any, metadata: Any, timeout: float) -> None:
            release.wait(10)

    stuck = Hangs()
    runner.producer = runner.txn.producer = stuck
    consumer.positions = [TopicPartition(runner.settings.topic(INPUT), 0, 4)]
    consumer.consumes = [lambda: [command_message(runner, 0, 3)]]
    runner.config = replace(runner.config, max_batches=1, idle_exit_s=0.5)
    try:
        runner._loop()
    finally:
        release.set()
    assert runner.producer is not stuck and runner.producer.transactions[0] == "init"
    assert agent.resets == 1 and len(runner._renewals) == 1


def test_the_runtime_consumer_is_a_dynamic_member_named_by_its_instance() -> None:
    """A static member (group.instance.id) was fenced by its own earlier membership after a
    broker restart, a fatal consumer error in librdkafka."""
    config = runtime.consumer_config(settings(), "venue.g", AgentConfig(instance_id="3"))
    assert "group.instance.id" not in config
    assert config["client.id"] == "venue.g-3"
