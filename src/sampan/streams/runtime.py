"""Exactly-once consume → handle → produce → commit, on confluent-kafka transactions.

Guarantees, for an agent whose handler is a pure function of its state and input:
- outputs and input offsets commit atomically; readers with read_committed see each output
  exactly once, across crashes, SIGKILL and restarts (a restarted instance with the same
  transactional id fences its predecessor and aborts its open transaction);
- on an abortable error the transaction is aborted, the consumer rewinds to the committed
  offsets and the agent is told to reset its state to match them;
- an undecodable record, or one whose handler raised, goes to the source topic's dead-letter
  topic (with topic, partition, offset and the error) in the same transaction; the agent goes on.
  So does a record one of whose outputs the client refuses as such (`RECORD_ERRORS`, say an
  output larger than the broker accepts): the transaction is aborted, the agent reset, and the
  batch redone with that record dead-lettered instead of handled. Any other failure to produce
  (a full queue, a fenced producer) is not the record's fault: it propagates and stops the
  runner (the open transaction is fenced by the restarted instance or aborted by the broker);
- every transaction call has a deadline the process enforces itself, and a retriable error is
  retried in one place (`streams.txn`); a broker restart costs an abort and a rewind, not the
  process; a producer fenced by the broker's own abort of a timed-out transaction (the broker
  was away longer than the transaction timeout), or one whose call hung past its deadline
  (librdkafka #5456), is replaced by a new one that takes the transactional id over (at most
  `PRODUCER_RENEWALS_MAX` times per `PRODUCER_RENEWAL_WINDOW_S`). A loop that has input
  waiting and commits nothing for
  `stall_timeout_s` logs CRITICAL and exits with `liveness.EXIT_STALLED`; while it is healthy
  it touches a liveness file (`liveness.liveness_path`) that a supervisor watches;
- a record polled before a rebalance that ran during the same fetch is dropped, never handled:
  its partition may have moved, or been rebuilt to the committed offset, from which the
  consumer fetches it again;
- every batch, poll, retry and wait is bounded (see `AgentConfig`); SIGTERM and SIGINT finish
  the current batch, commit it and leave the group.
Agents with inputs outside Kafka (the router's FIX session and tables, the drop copy's FIX
session) use the optional hooks below; `handle` and `end_batch` stay free of I/O.

Limits: one transaction per batch, so latency is at least one commit round trip; the handler
runs on the polling thread.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Protocol

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

from sampan import topics
from sampan.config import Settings
from sampan.schemas import SchemaError, registry
from sampan.streams import profiles
from sampan.streams.letters import dead_letter, produce_waiting
from sampan.streams.liveness import CallHung, Liveness, die, liveness_path
from sampan.streams.metrics import AgentMetrics
from sampan.streams.txn import FENCED_ERRORS, Transactions

log = logging.getLogger(__name__)

# Errors the client raises for one record it will not take (the record, not the client, is at
# fault): its input is dead-lettered.
RECORD_ERRORS = frozenset({KafkaError.MSG_SIZE_TOO_LARGE})
REWIND_PAUSE_S = 1.0
PRODUCER_RENEWALS_MAX = 3
PRODUCER_RENEWAL_WINDOW_S = 600.0


@dataclass(frozen=True, slots=True)
class InRecord:
    """One decoded input record and its origin."""

    topic: str  # the catalog name, without the deployment's prefix
    partition: int
    offset: int
    key: bytes | None
    value: dict[str, Any]
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class Output:
    """A record to produce in the batch's transaction; `value` is already encoded (None: a
    tombstone)."""

    topic: str  # the catalog name
    key: bytes | None
    value: bytes | None
    partition: int | None = None


StartOffsets = Mapping[tuple[str, int], int]


class Agent(Protocol):
    """What the runtime needs of an agent. The handler methods must not do I/O.

    `assigned` may return where some of the newly assigned partitions must start consuming,
    {(catalog topic, partition): offset}, overriding the committed offset (or, without one,
    `auto.offset.reset`): an agent that restored a partition from a snapshot beyond the
    committed offset (say the group's offsets expired) names the snapshot's offset so that no
    input it already holds is applied again. None or {}: the committed offsets.

    Optional hooks, called when the agent has them:
    - `started(consumer)`: after `init_transactions` fenced any earlier instance and before
      the consumer subscribes (load state, open sessions);
    - `pending() -> bool`: input from outside Kafka waits, so run a batch even when no record
      arrived (its records come out of `end_batch`);
    - `committed()`: after each commit (actions that must follow a commit, such as sending
      a committed outbox); `reset` is called instead after an abort;
    - `close()`: when the runner stops, after its last transaction."""

    name: str  # consumer group; also the transactional id's stem
    inputs: Mapping[str, str]  # catalog topic → Avro record name of its values

    def handle(self, record: InRecord) -> Iterable[Output]: ...

    def end_batch(self) -> Iterable[Output]: ...

    def stopping(self) -> Iterable[Output]: ...

    def assigned(
        self, partitions: Sequence[tuple[str, int]], consumer: Consumer
    ) -> StartOffsets | None: ...

    def revoked(self, partitions: Sequence[tuple[str, int]]) -> None: ...

    def reset(self) -> None: ...


@dataclass(frozen=True, slots=True)
class AgentConfig:
    instance_id: str = "0"
    batch_size_max: int = 500
    poll_timeout_s: float = 0.05
    commit_timeout_s: float = 30.0
    init_timeout_s: float = 60.0
    # An instance that dies inside a transaction and never comes back (its partitions move to
    # another instance) leaves that transaction open, and read_committed readers of every
    # partition it wrote to stop at it until the broker aborts it after this timeout. Keep it
    # short; it only needs to outlast one batch's commit.
    transaction_timeout_ms: int = 10_000
    session_timeout_ms: int = 10_000
    linger_ms: int = 1
    metrics_port: int = 0  # 0: no HTTP metrics endpoint
    max_batches: int | None = None  # for tests and benchmarks: stop after this many batches
    idle_exit_s: float | None = None  # for tests: stop after this long without input
    # With input waiting and no commit for this long, the process logs CRITICAL and exits
    # (`liveness.EXIT_STALLED`); it must outlast a partition's rebuild on assignment and a
    # broker's restart. The group drops a member that stalls past max.poll.interval.ms anyway.
    stall_timeout_s: float = 300.0
    liveness_file: bool = True  # touch `liveness.liveness_path(...)` while healthy
    extra_consumer: dict[str, object] = field(default_factory=dict)
    extra_producer: dict[str, object] = field(default_factory=dict)


class _Stop:
    """Set by SIGTERM/SIGINT; checked between batches so a batch is never cut in half."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping after the current batch", signum)
        self.requested = True


def consumer_config(settings: Settings, group: str, config: AgentConfig) -> dict[str, object]:
    # Not a static member (no instance id for group.instance.id): a static member was fenced
    # by its own earlier membership after a broker restart (FENCED_INSTANCE_ID, which
    # librdkafka makes a fatal consumer error), so the process died. A dynamic member rejoins
    # after an UNKNOWN_MEMBER_ID; a restarted instance waits at most the session timeout for
    # its predecessor's partitions. The client id names the instance.
    return profiles.group_consumer(
        settings,
        group,
        None,
        session_timeout_ms=config.session_timeout_ms,
        **{
            "statistics.interval.ms": 5_000,
            "client.id": f"{group}-{config.instance_id}",
            **config.extra_consumer,
        },
    )


def producer_config(settings: Settings, group: str, config: AgentConfig) -> dict[str, object]:
    return profiles.transactional_producer(
        settings,
        f"{group}-{config.instance_id}",
        transaction_timeout_ms=config.transaction_timeout_ms,
        linger_ms=config.linger_ms,
        **config.extra_producer,
    )


class AgentRunner:
    """Drives one agent instance. Create, then `run()` until stopped."""

    def __init__(self, agent: Agent, settings: Settings, config: AgentConfig) -> None:
        self.agent = agent
        self.settings = settings
        self.config = config
        self.metrics = AgentMetrics(agent.name, config.metrics_port)
        self.stop = _Stop()
        self._unprefix = {settings.topic(name): name for name in agent.inputs}
        # The group and transactional ids carry the topic prefix, so venues (or tests) that
        # share a cluster under different prefixes never share a group or fence each other.
        self.group = settings.topic(agent.name)
        consumer_settings = consumer_config(settings, self.group, config)
        consumer_settings["stats_cb"] = self.metrics.on_consumer_stats
        self.consumer = Consumer(consumer_settings)
        self.producer = Producer(producer_config(settings, self.group, config))
        path = liveness_path(settings, agent.name, config.instance_id)
        self.liveness = Liveness(
            agent.name, config.stall_timeout_s, path if config.liveness_file else None
        )
        self.txn = Transactions(
            self.producer,
            agent.name,
            self.liveness,
            config.commit_timeout_s,
            retry_for_s=config.stall_timeout_s,
        )
        # Inputs found to make an output the client refuses: dead-lettered when met again.
        self._poison: dict[tuple[str, int, int], str] = {}
        self._renewals: list[float] = []  # when the producer was renewed (monotonic)
        self.batches = 0
        # Bumped by every assign and revoke, so `_next_batch` sees a rebalance that ran inside
        # one of its calls.
        self.rebalances = 0
        # The start offsets the agent chose on assignment; a rewind uses them for a partition
        # that has no committed offset yet.
        self._starts: dict[tuple[str, int], int] = {}

    # -- rebalance ---------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.rebalances += 1
        pairs = [(self._unprefix.get(p.topic, p.topic), p.partition) for p in partitions]
        log.info("%s: assigned %s", self.agent.name, pairs)
        starts = self.agent.assigned(pairs, consumer) or {}
        if not starts:
            return
        for pair, tp in zip(pairs, partitions, strict=True):
            if pair in starts:
                tp.offset = self._starts[pair] = starts[pair]
        log.info("%s: starting at %s", self.agent.name, dict(starts))
        # Assigning inside the callback replaces the library's own assign, with our offsets.
        consumer.assign(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.rebalances += 1
        pairs = [(self._unprefix.get(p.topic, p.topic), p.partition) for p in partitions]
        log.info("%s: revoked %s", self.agent.name, pairs)
        for pair in pairs:
            self._starts.pop(pair, None)
        self.agent.revoked(pairs)

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        self.liveness.start()
        try:
            try:
                self.txn.init(self.config.init_timeout_s)
            except KafkaException as error:
                log.error(
                    "%s: cannot initialise transactions within %.0f s: %s",
                    self.agent.name,
                    self.config.init_timeout_s,
                    error,
                )
                return 1
            self._hook("started", self.consumer)
            if self._unprefix:
                self.consumer.subscribe(
                    list(self._unprefix), on_assign=self._on_assign, on_revoke=self._on_revoke
                )
            self._loop()
            if self.stop.requested:
                self._final_transaction()
        finally:
            self.consumer.close()
            try:
                self.producer.flush(self.config.commit_timeout_s)
            except KafkaException as error:  # already failing: say so, let the cause propagate
                log.error("%s: flushing the producer: %s", self.agent.name, error)
            self._hook("close")
            self.liveness.close()
        return 0

    def _loop(self) -> None:
        idle_since = time.monotonic()
        while not self.stop.requested:
            if self.config.max_batches is not None and self.batches >= self.config.max_batches:
                break
            messages = self._next_batch()
            pending = self._hook("pending")  # called every turn: the agent may poll its inputs
            if not messages and not pending:
                self.liveness.beat()  # caught up: nothing waits
                if (
                    self.config.idle_exit_s is not None
                    and time.monotonic() - idle_since > self.config.idle_exit_s
                ):
                    break
                continue
            idle_since = time.monotonic()
            try:
                self._process(messages)
            except CallHung as hung:
                if not self._renewals_left():
                    die(f"{self.agent.name}: {hung}, and the producer was renewed too often")
                self._renew_producer(f"a transaction call hung: {hung}", hung=True)
            except KafkaException as exception:
                if not self._renewable(exception):
                    raise
                self._renew_producer(
                    f"the producer was fenced ({exception.args[0]}): a broker that was away "
                    "aborts a transaction past its timeout"
                )

    def _renewable(self, exception: KafkaException) -> bool:
        """A fenced producer, at most PRODUCER_RENEWALS_MAX times per window: see
        `_renew_producer`. More often than that, another live instance is fencing us."""
        error = exception.args[0] if exception.args else None
        if not isinstance(error, KafkaError) or error.code() not in FENCED_ERRORS:
            return False
        return self._renewals_left()

    def _renewals_left(self) -> bool:
        now = time.monotonic()
        self._renewals = [t for t in self._renewals if now - t < PRODUCER_RENEWAL_WINDOW_S]
        return len(self._renewals) < PRODUCER_RENEWALS_MAX

    def _renew_producer(self, why: str, hung: bool = False) -> None:
        """Take the transactional id over with a new producer (`init_transactions` fences the
        old one and aborts its open transaction), rewind and go on: the process is not
        fenced out by its own earlier self. Two causes: a broker that was away longer than
        `transaction.timeout.ms` aborts our open transaction when it comes back and bumps the
        producer epoch, and librdkafka then reports our producer as fenced (fatal) although no
        other instance exists; or a call hung past its deadline (`hung`: librdkafka #5456;
        the old producer stays with its stuck thread, fenced, and is never used again)."""
        self._renewals.append(time.monotonic())
        log.error(
            "%s: %s; taking the transactional id over with a new producer", self.agent.name, why
        )
        old = self.producer
        if not hung:
            with contextlib.suppress(KafkaException, TimeoutError):
                self.liveness.bounded(
                    "purge", old.purge, self.config.commit_timeout_s, abandon=True
                )
        self.producer = Producer(producer_config(self.settings, self.group, self.config))
        self.txn.producer = self.producer
        self.txn.init(self.config.stall_timeout_s)
        self._rewind()

    def _hook(self, name: str, *args: Any) -> Any:
        hook = getattr(self.agent, name, None)
        return hook(*args) if hook is not None else None

    def _next_batch(self) -> list[Any]:
        """Whatever has arrived, up to the batch maximum, without waiting to fill the batch:
        `consume(n, timeout)` would wait the whole timeout for n records, adding that much
        latency to every record at low rates. Wait only for the first record.

        The second call may run a rebalance; `first` then belongs to the old assignment (its
        partition moved away, or was rebuilt to the committed offset and will be fetched again)
        and is dropped. What that call returns was fetched after the rebalance."""
        batch_max = self.config.batch_size_max
        messages: list[Any] = self.consumer.consume(num_messages=batch_max, timeout=0)
        if messages:
            return messages
        first = self.consumer.poll(self.config.poll_timeout_s)
        if first is None:
            return []
        rebalances = self.rebalances
        rest: list[Any] = self.consumer.consume(num_messages=batch_max - 1, timeout=0)
        if self.rebalances != rebalances:
            log.info(
                "%s: rebalanced while fetching: dropping the record polled before", self.agent.name
            )
            return rest
        return [first, *rest]

    def _process(self, messages: list[Any]) -> None:
        started = time.perf_counter()
        self.txn.begin()
        inputs = 0
        outputs = 0
        try:
            for message in messages:
                error = message.error()
                if error is not None:
                    if error.fatal():
                        raise KafkaException(error)
                    log.warning("%s: consumer error %s", self.agent.name, error)
                    continue
                inputs += 1
                outputs += self._handle(message)
            for output in self.agent.end_batch():
                self._produce(output)
                outputs += 1
        except _Redo:
            self.txn.abort()
            self._rewind()
            return
        if self._commit():
            self.batches += 1
            self.metrics.batch_done(inputs, outputs, time.perf_counter() - started)
            self.liveness.beat()
            self._hook("committed")

    def _final_transaction(self) -> None:
        """On a clean stop, commit whatever the agent wants to leave behind (a snapshot)."""
        outputs = list(self.agent.stopping())
        if not outputs:
            return
        self.txn.begin()
        for output in outputs:
            self._produce(output)
        self._commit()

    def _handle(self, message: Any) -> int:
        topic = self._unprefix[message.topic()]
        origin = (topic, message.partition(), message.offset())
        poisoned = self._poison.pop(origin, None)
        if poisoned is not None:
            self._dead_letter(message, topic, poisoned)
            return 1
        try:
            value = registry().decode(self.agent.inputs[topic], message.value() or b"")
        except SchemaError as error:
            self._dead_letter(message, topic, f"undecodable: {error}")
            return 1
        record = InRecord(
            topic,
            message.partition(),
            message.offset(),
            message.key(),
            value,
            message.timestamp()[1],
        )
        try:
            outputs = list(self.agent.handle(record))
        except Exception as error:  # a bad record must not stop the venue: dead-letter it
            log.exception(
                "%s: handler failed on %s[%d]@%d",
                self.agent.name,
                topic,
                record.partition,
                record.offset,
            )
            self._dead_letter(message, topic, f"handler failed: {error!r}")
            return 1
        # Outside the `try`: a produce failure (a full queue, a fenced producer) says nothing
        # about the record, so it must not dead-letter it; it propagates. Only an output the
        # client refuses as such (too large) condemns its input: the outputs produced before it
        # cannot be taken back and the agent's state has moved, so the batch is redone with
        # the input dead-lettered instead.
        try:
            for output in outputs:
                self._produce(output)
        except KafkaException as exception:
            refused = exception.args[0]
            if not isinstance(refused, KafkaError) or refused.code() not in RECORD_ERRORS:
                raise
            log.error(
                "%s: an output of %s[%d]@%d cannot be produced (%s): dead-lettering the input",
                self.agent.name,
                topic,
                record.partition,
                record.offset,
                refused,
            )
            self._poison[origin] = f"output not producible: {refused.str()}"
            raise _Redo from None
        return len(outputs)

    def _dead_letter(self, message: Any, topic: str, reason: str) -> None:
        self.metrics.dead_letters.inc()
        letter = dead_letter(
            message.topic(),
            message.partition(),
            message.offset(),
            message.key(),
            message.value(),
            reason,
            self.agent.name,
            time.time_ns(),
        )
        self._produce(
            Output(
                topics.dead_letter_of(topic), message.key(), registry().encode("DeadLetter", letter)
            )
        )

    def _produce(self, output: Output) -> None:
        produce_waiting(
            self.producer,
            self.settings.topic(output.topic),
            output.value,
            output.key,
            output.partition,
        )

    def _commit(self) -> bool:
        """Commit outputs and offsets; on an abortable error abort and rewind. True if committed.
        Retries and deadlines are `streams.txn`'s."""
        positions = [
            tp for tp in self.consumer.position(self.consumer.assignment()) if tp.offset >= 0
        ]
        metadata = self.consumer.consumer_group_metadata() if positions else None
        if self.txn.commit(positions, metadata):
            return True
        self._rewind()
        return False

    def _rewind(self) -> None:
        """Seek every assigned partition back to its committed offset; reset the agent.
        While the broker is away this fails: it is tried again until it works or the stall
        watchdog ends the process."""
        self.metrics.aborts.inc()
        while True:
            try:
                self._seek_committed()
                self.agent.reset()
                return
            except (KafkaException, TimeoutError) as error:
                log.warning("%s: rewind failed, trying again: %s", self.agent.name, error)
                time.sleep(REWIND_PAUSE_S)

    def _seek_committed(self) -> None:
        assignment = self.consumer.assignment()
        if not assignment:
            return
        committed = self.consumer.committed(assignment, timeout=self.config.commit_timeout_s)
        for tp in committed:
            if tp.error is not None:  # not known now (a coordinator still loading): retry
                raise KafkaException(tp.error)
            pair = (self._unprefix.get(tp.topic, tp.topic), tp.partition)
            offset = tp.offset if tp.offset >= 0 else self._starts.get(pair, OFFSET_BEGINNING)
            self.consumer.seek(TopicPartition(tp.topic, tp.partition, offset))


class _Redo(Exception):
    """Abort the batch and redo it: an input was found that must be dead-lettered instead."""


def run_agent(agent: Agent, settings: Settings, config: AgentConfig | None = None) -> int:
    """Run `agent` until SIGTERM/SIGINT (or the config's test limits); the exit status."""
    return AgentRunner(agent, settings, config or AgentConfig()).run()
