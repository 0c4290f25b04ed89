"""`sampan ledger-sink`: consume `fills`, post each exactly once, publish `ledger.balances`.

Guarantees:
- exactly once into PostgreSQL: offsets are stored in the same transaction as the rows
  (`store.post_batch`), and on start and on every partition assignment the consumer seeks to
  the stored offsets; Kafka's committed offsets are written too, after the database commit,
  for lag monitoring only and never read;
- bounded: at most `batch_max` records per poll and per transaction;
- prompt: what has arrived is posted as soon as the previous batch is committed, never held
  back waiting for a full batch;
- a restarted sink with the same SAMPAN_INSTANCE_ID rejoins its group as the same static
  member, so it gets its partitions back at once (its group carries SAMPAN_TOPIC_PREFIX);
- PostgreSQL down or restarting: the batch in hand is retried on a new connection with
  bounded backoff, logging what it waits for, for at most `db_wait_max_s`, then the process
  exits non-zero (a supervisor restarts it; nothing is lost because nothing was committed);
- SIGTERM/SIGINT (`stop()`): the batch in hand finishes or is abandoned uncommitted, then the
  consumer leaves its group and the producer flushes; exit status 0;
- dead letters (undecodable, invalid or conflicting fills) are acknowledged by Kafka before
  the batch commits: at least once, never lost.
Snapshots on `ledger.balances` are published after each commit for the accounts the batch
touched, for the accounts whose limits changed, and for every member account at start and
every `SNAPSHOT_REFRESH_S`; each says which fills it includes (the committed `fills` offsets,
read with the balances), so publishing one before the backlog is posted misleads nobody; a
snapshot lost to a crash is replaced by the next one (the topic is compacted and a snapshot is
the full state, not a delta).

Account limits (credit line, cut-loss, allow_short, enabled, member) come from
`reference.accounts`: a companion thread in this process (`limits.LimitsFollower`) applies each
record exactly once to the `accounts` table, with its own offsets in the same database
transaction. If it fails (PostgreSQL gone too long), the sink stops and exits non-zero.
Cash (deposits, withdrawals) enters the ledger through `sampan ledger deposit|withdraw`
(movements.py), not through this loop.

Throughput: the sink's Python is its bottleneck on a small machine (one core under the GIL),
so the loop overlaps decoding with the database worker, and the cyclic garbage collector runs
less often while the sink runs (`_collector_for_batches`).

Limits: fills of one account can arrive on different partitions (the key is the aggressor's
account), so the order in which a passive side's fills are applied is the consumption order.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

import psycopg

from sampan import topics
from sampan.config import Settings
from sampan.errors import SampanError
from sampan.ledger_sink import db, reads
from sampan.ledger_sink.intake import SinkStats, make_item
from sampan.ledger_sink.limits import LimitsFollower
from sampan.ledger_sink.rules import ChargeRule, default_schedule
from sampan.ledger_sink.snapshot import snapshot, to_record
from sampan.ledger_sink.store import (
    DEFAULT_GROUP,
    BatchResult,
    Conn,
    Item,
    Rejected,
    Source,
    post_batch,
)
from sampan.schemas import registry
from sampan.streams import profiles
from sampan.streams.letters import dead_letter

log = logging.getLogger(__name__)

BATCH_MAX_DEFAULT = 2_000
POLL_TIMEOUT_S = 0.5  # idle: how long one poll waits for a first record
# Busy: how long one poll waits while a batch is in flight, which bounds how late the loop
# notices that the worker is free (a commit takes tens of milliseconds).
BUSY_POLL_S = 0.002
CONFLICT_RETRIES_MAX = 5  # a concurrent sink inserted the same fill; retrying sees it
DELIVERY_TIMEOUT_S = 30.0
PROGRESS_EVERY_S = 10.0
CLOSE_TIMEOUT_S = 10.0
# How long a batch may take beyond the reconnect deadline (`db_wait_max_s`): its dead letters'
# delivery, then a couple of statements at their timeout.
JOB_MARGIN_S = DELIVERY_TIMEOUT_S + 2 * db.STATEMENT_TIMEOUT_MS / 1000
# Every member account's snapshot is published again this often (and at start), so that the
# oldest snapshot's fills offsets, where the router starts reading `fills` after a restart,
# stay recent (router/tables.py).
SNAPSHOT_REFRESH_S = 300.0
SESSION_TIMEOUT_MS = 10_000  # as the streams runtime's agents
LIMITS_JOIN_TIMEOUT_S = 40.0  # the follower's poll, plus its dead letters' delivery timeout
# A batch allocates tens of thousands of short-lived objects (records, fills, transfers), all
# freed by reference counting; with CPython's default threshold (700) the cyclic collector ran
# ~25 times per 1,000 fills and took ~15% of the sink's CPU (measured by bench.py).
GC_GEN0_THRESHOLD = 50_000


@contextlib.contextmanager
def _collector_for_batches() -> Iterator[None]:
    """Collect less often while the sink runs, and move what start-up allocated out of the
    collector's sight (gc.freeze); the previous settings come back afterwards."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, thresholds[1], thresholds[2])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


class SinkError(SampanError):
    """The sink cannot go on (dead letters not acknowledged, database gone for too long)."""


@dataclass(frozen=True, slots=True)
class SinkOptions:
    schema: str
    group_id: str = DEFAULT_GROUP
    batch_max: int = BATCH_MAX_DEFAULT
    poll_timeout_s: float = POLL_TIMEOUT_S
    db_wait_max_s: float = db.DB_WAIT_MAX_S
    schedule: tuple[ChargeRule, ...] = field(default_factory=default_schedule)
    instance_id: str = "0"  # SAMPAN_INSTANCE_ID: the static group member's id (live mode)
    publish: bool = True  # snapshots and dead letters; rebuild and bench turn it off
    # Replay mode (rebuild, bench): assign every partition instead of joining the group, and
    # stop once each partition's next offset reaches this (exclusive end offsets).
    stop_at: dict[int, int] | None = None
    # Follow reference.accounts into the accounts table (live mode only; rebuild replays it
    # itself, up to the live ledger's offsets).
    follow_limits: bool = True


def consumer_config(
    settings: Settings, group_id: str, instance_id: str | None, job_timeout_s: float
) -> dict[str, Any]:
    """The sink's consumer settings. The group carries the topic prefix, as every agent's
    does, so venues (or tests) sharing a cluster never share a group. With an `instance_id`
    (live mode) the member is static: a restarted sink with the same SAMPAN_INSTANCE_ID takes
    its partitions back at once instead of waiting for its predecessor's session to time out;
    replay mode assigns partitions and joins no group, so it has none."""
    return profiles.group_consumer(
        settings,
        settings.topic(group_id),
        instance_id,
        # A sink that died without leaving (SIGKILL, host lost) and does not come back
        # releases its partitions to the other instances after this long.
        session_timeout_ms=SESSION_TIMEOUT_MS,
        **{
            # Waiting for PostgreSQL happens between polls; stay in the group meanwhile.
            "max.poll.interval.ms": int(max(300.0, job_timeout_s + 30) * 1000),
            "queued.max.messages.kbytes": 65_536,
        },
    )


class LedgerSink:
    def __init__(
        self,
        settings: Settings,
        options: SinkOptions,
        on_batch: Callable[[SinkStats], None] | None = None,
    ) -> None:
        from confluent_kafka import Producer

        self.settings = settings
        self.options = options
        self.topic = settings.topic("fills")
        self.dlq_topic = settings.topic(topics.dead_letter_of("fills"))
        self.balances_topic = settings.topic("ledger.balances")
        self.source = Source(options.group_id, self.topic)
        self.stats = SinkStats()
        self._on_batch = on_batch
        self._stopping = False
        self._conn: Conn | None = None
        self._known_accounts: set[str] = set()
        self._pending_snapshots: set[str] = set()
        # Accounts whose snapshots another thread (the limits follower) asked for.
        self._requested_lock = threading.Lock()
        self._requested: set[str] = set()
        self._limits_error: BaseException | None = None
        self._done: set[int] = set()
        self._delivery_errors: list[str] = []
        self._inflight: tuple[Future[bool], list[Item]] | None = None
        self._refresh_at = time.monotonic() + SNAPSHOT_REFRESH_S  # run() publishes all first
        self._hung = False  # the worker overran `_job_timeout_s`: it may still use the connection
        self._producer = (
            Producer(profiles.producer(settings, linger_ms=5, **{"compression.type": "lz4"}))
            if options.publish
            else None
        )

    def stop(self) -> None:
        self._stopping = True

    def _job_timeout_s(self) -> float:
        """The longest a batch's database work may take before the sink gives up on it."""
        return self.options.db_wait_max_s + JOB_MARGIN_S

    def request_snapshots(self, accounts: Sequence[str]) -> None:
        """Publish these accounts' snapshots soon; safe to call from any thread."""
        with self._requested_lock:
            self._requested.update(accounts)

    def _take_requested(self) -> bool:
        """Move the requested accounts into the pending ones; True if any are pending."""
        with self._requested_lock:
            requested, self._requested = self._requested, set()
        self._pending_snapshots.update(requested)
        return bool(self._pending_snapshots)

    # -- database -------------------------------------------------------------------------

    def _connection(self) -> Conn:
        if self._conn is None or self._conn.closed:
            # No waiting here: a refused connection is an OperationalError, and the caller's
            # retry loop owns the backoff and its deadline.
            self._conn = db.connect(self.settings, self.options.schema)
            log.info("connected to PostgreSQL, schema %s", self.options.schema)
        return self._conn

    def _with_db_retry(self, what: str, action: Any) -> Any:
        """Run `action(conn)`; on a lost server reconnect and run it again, with backoff."""
        deadline = time.monotonic() + self.options.db_wait_max_s
        attempt = conflicts = 0
        while True:
            try:
                return action(self._connection())
            except psycopg.errors.UniqueViolation:
                conflicts += 1
                if conflicts > CONFLICT_RETRIES_MAX:
                    raise
                log.warning("%s: a concurrent writer posted the same fill; retrying", what)
            except psycopg.Error as error:
                if not db.is_connection_error(error):
                    raise
                if self._conn is not None:
                    self._conn.close()
                if not db.wait_backoff(what, attempt, error, deadline, lambda: self._stopping):
                    if self._stopping:
                        return None
                    raise SinkError(
                        f"PostgreSQL unavailable for {self.options.db_wait_max_s:.0f} s: {error}"
                    ) from None
                attempt += 1

    # -- Kafka ----------------------------------------------------------------------------

    def _consumer(self) -> Any:
        from confluent_kafka import Consumer

        return Consumer(
            consumer_config(
                self.settings,
                self.options.group_id,
                self.options.instance_id if self.options.stop_at is None else None,
                self._job_timeout_s(),
            )
        )

    def _seek_to_stored(self, consumer: Any, partitions: list[Any]) -> None:
        from confluent_kafka import OFFSET_BEGINNING

        # The stored offsets must include the batch in flight, and the worker must be idle
        # before this thread uses the connection.
        self._drain(consumer)

        stored: dict[int, int] | None = self._with_db_retry(
            "read stored offsets", lambda conn: reads.stored_offsets(conn, self.source)
        )
        if stored is None:  # stopping while PostgreSQL was down: read nothing
            return
        for tp in partitions:
            tp.offset = stored.get(tp.partition, OFFSET_BEGINNING)
        log.info("assigned %s", ", ".join(f"{tp.partition}@{tp.offset}" for tp in partitions))
        consumer.assign(partitions)

    def _on_revoke(self, consumer: Any, _partitions: list[Any]) -> None:
        self._drain(consumer)
        consumer.unassign()

    def _start_consumer(self) -> Any:
        from confluent_kafka import TopicPartition

        consumer = self._consumer()
        if self.options.stop_at is None:
            consumer.subscribe(
                [self.topic],
                on_assign=self._seek_to_stored,
                on_revoke=self._on_revoke,
            )
        else:
            self._done = {p for p, end in self.options.stop_at.items() if end <= 0}
            self._seek_to_stored(
                consumer, [TopicPartition(self.topic, p) for p in sorted(self.options.stop_at)]
            )
        return consumer

    def _publish_dead_letters(self, rejected: Sequence[Rejected]) -> None:
        self.stats.rejected += len(rejected)
        if self._producer is None:
            return
        now_ns = time.time_ns()
        for r in rejected:
            log.warning("dead-lettering %s[%d]@%d: %s", self.topic, r.partition, r.offset, r.error)
            value = registry().encode(
                "DeadLetter",
                dead_letter(
                    self.topic,
                    r.partition,
                    r.offset,
                    r.key,
                    r.value,
                    r.error,
                    self.options.group_id,
                    now_ns,
                ),
            )
            self._producer.produce(
                self.dlq_topic, value=value, key=r.key, on_delivery=self._on_delivery
            )
        remaining = self._producer.flush(DELIVERY_TIMEOUT_S)
        if remaining or self._delivery_errors:
            errors, self._delivery_errors = self._delivery_errors, []
            raise SinkError(f"dead letters not acknowledged in {DELIVERY_TIMEOUT_S} s: {errors}")

    def _on_delivery(self, error: Any, _message: Any) -> None:
        if error is not None:
            self._delivery_errors.append(str(error))

    def _refresh_due(self) -> bool:
        return self._producer is not None and time.monotonic() >= self._refresh_at

    def _publish_snapshots(self) -> None:
        if self._refresh_due():
            self._refresh_at = time.monotonic() + SNAPSHOT_REFRESH_S
            try:
                self._pending_snapshots.update(reads.member_accounts(self._connection()))
            except psycopg.Error as error:
                log.warning("snapshot refresh postponed: %s", error)
        if self._producer is None or not self._take_requested():
            return
        accounts = sorted(self._pending_snapshots)[: reads.ACCOUNTS_PER_READ_MAX]
        try:
            states, prices = reads.account_states(self._connection(), accounts, self.source)
        except psycopg.Error as error:
            log.warning("snapshots postponed (%d accounts): %s", len(accounts), error)
            if self._conn is not None and db.is_connection_error(error):
                self._conn.close()
            return
        now_ns = time.time_ns()
        for state in states:
            record = to_record(snapshot(state, prices, now_ns))
            self._producer.produce(
                self.balances_topic,
                key=state.account.encode(),
                value=registry().encode("AccountSnapshot", record),
            )
        self._pending_snapshots.difference_update(accounts)
        self._producer.poll(0)

    # -- the loop -------------------------------------------------------------------------

    def _items(self, messages: list[Any]) -> list[Item]:
        items = []
        stop_at = self.options.stop_at
        for m in messages:
            if m.error() is not None:
                log.warning("consumer error: %s", m.error())
                continue
            partition, offset = m.partition(), m.offset()
            if stop_at is not None:
                if offset >= stop_at.get(partition, 0):
                    self._done.add(partition)
                    continue
                if offset + 1 >= stop_at[partition]:
                    self._done.add(partition)
            items.append(make_item(partition, offset, m.key(), m.value(), self.options.schedule))
        return items

    def _job(self, items: list[Item]) -> bool:
        """The database half of a batch, run on the worker thread: post, then snapshots."""
        if not self._handle(items):
            return False
        self._publish_snapshots()
        return True

    def _drain(self, consumer: Any) -> bool:
        """Wait for the batch in flight; False when a stop interrupted its wait for PostgreSQL.
        Errors of the batch are raised here, on the consuming thread."""
        inflight, self._inflight = self._inflight, None
        if inflight is None:
            return True
        future, items = inflight
        timeout_s = self._job_timeout_s()
        try:
            done = future.result(timeout=timeout_s)
        except FutureTimeout:
            # The worker is stuck past every bound it has (statement and lock timeouts, TCP
            # timeouts, the reconnect deadline): stop rather than wait forever. The batch was
            # not committed by us, so a restart posts it again from the stored offsets.
            self._hung = True
            self.stop()
            raise SinkError(
                f"the database worker did not finish a batch of {len(items)} records in "
                f"{timeout_s:.0f} s (PostgreSQL or Kafka hung beyond their timeouts); exiting "
                "so that a restart resumes from the offsets stored in PostgreSQL"
            ) from None
        if not done:
            return False
        if self.options.stop_at is None:
            self._commit_kafka(consumer, items)
        return True

    def _handle(self, items: list[Item]) -> bool:
        """Post one batch; False when a stop interrupted the wait for PostgreSQL."""
        result: BatchResult | None = self._with_db_retry(
            "post batch",
            lambda conn: post_batch(
                conn,
                self.source,
                items,
                self._known_accounts,
                self._publish_dead_letters,
            ),
        )
        if result is None:
            return False
        s = self.stats
        s.posted += result.posted
        s.replayed += result.replayed
        s.transfers += result.transfers
        s.batches += 1
        s.commit_ms.append(result.commit_ms)
        s.last_commit_at = time.monotonic()
        self._pending_snapshots.update(result.touched_accounts)
        if self._on_batch is not None:
            self._on_batch(s)
        return True

    def _commit_kafka(self, consumer: Any, items: list[Item]) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        ends: dict[int, int] = {}
        for item in items:
            ends[item.partition] = max(ends.get(item.partition, 0), item.offset + 1)
        try:
            consumer.commit(
                offsets=[TopicPartition(self.topic, p, o) for p, o in ends.items()],
                asynchronous=True,
            )
        except KafkaException as error:  # monitoring only: the database holds the truth
            log.debug("kafka offset commit skipped: %s", error)

    def run(self) -> int:
        """Consume until stopped (or, in replay mode, until every partition is done).

        Two stages overlap: while the worker thread posts batch N to PostgreSQL (which
        releases the GIL while it waits on the server), this thread consumes and decodes
        batch N+1. At most one batch is in flight, so memory stays bounded by two batches."""
        if self.options.publish:
            self._pending_snapshots.update(
                self._with_db_retry("list accounts", reads.member_accounts) or ()
            )
        limits = self._start_limits()
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-db")
        try:
            with _collector_for_batches():
                consumer = self._start_consumer()
                try:
                    self._loop(consumer, pool)
                finally:
                    try:
                        if sys.exc_info()[0] is None:
                            self._drain(consumer)
                    finally:
                        self._close(consumer)
        finally:
            # A hung worker is not waited for here; it ends at its own timeouts (stop() makes
            # its reconnect loop give up), and the interpreter waits for it at exit.
            pool.shutdown(wait=not self._hung, cancel_futures=True)
            self._stopping = True
            if limits is not None:
                limits.join(LIMITS_JOIN_TIMEOUT_S)
        if self._limits_error is not None:
            raise SinkError(f"limits follower failed: {self._limits_error}")
        return 0

    def _start_limits(self) -> threading.Thread | None:
        """The limits follower's thread, in live mode (see the module docstring)."""
        if self.options.stop_at is not None or not self.options.follow_limits:
            return None
        follower = LimitsFollower(
            self.settings,
            self.options.schema,
            self.options.group_id,
            on_changed=self.request_snapshots,
            should_stop=lambda: self._stopping,
            publish=self.options.publish,
            db_wait_max_s=self.options.db_wait_max_s,
        )

        def follow() -> None:
            try:
                follower.run()
            except BaseException as error:
                log.exception("limits follower failed; stopping the sink")
                self._limits_error = error
                self.stop()

        thread = threading.Thread(target=follow, name="ledger-limits", daemon=True)
        thread.start()
        return thread

    def _loop(self, consumer: Any, pool: ThreadPoolExecutor) -> None:
        """Post what has arrived as soon as the previous batch is committed: a batch is
        whatever came while the worker was busy (at most `batch_max`), never held back to
        fill up. While the worker posts, this thread decodes what arrives meanwhile."""
        last_log = time.monotonic()
        stop_at = self.options.stop_at
        pending: list[Item] = []
        while not self._stopping:
            if stop_at is not None and self._done >= set(stop_at) and not pending:
                break
            busy = self._inflight is not None and not self._inflight[0].done()
            room = self.options.batch_max - len(pending)
            if room > 0:
                pending.extend(self._items(self._take(consumer, room, busy or bool(pending))))
            if pending and not self.stats.first_record_at:
                self.stats.first_record_at = time.monotonic()
            if busy and room > 0 and not self._inflight_done():
                continue  # keep decoding until the worker is free or the batch is full
            if not self._drain(consumer):
                break
            if pending:
                self._inflight = (pool.submit(self._job, pending), pending)
                pending = []
            elif self._pending_snapshots or self._requested or self._refresh_due():
                self._inflight = (pool.submit(self._publish_snapshots_ok), [])
            if time.monotonic() - last_log >= PROGRESS_EVERY_S:
                last_log = time.monotonic()
                s = self.stats
                log.info(
                    "posted %d fills (%d transfers), replayed %d, rejected %d, %d batches",
                    s.posted,
                    s.transfers,
                    s.replayed,
                    s.rejected,
                    s.batches,
                )

    def _inflight_done(self) -> bool:
        return self._inflight is None or self._inflight[0].done()

    def _take(self, consumer: Any, room: int, busy: bool) -> list[Any]:
        """Up to `room` records. Busy (a batch in flight or records in hand): what arrives
        within `BUSY_POLL_S`, so the loop notices the worker finishing. Idle: wait up to the
        poll timeout for the first record only, then take what is already there."""
        if busy:
            messages: list[Any] = consumer.consume(room, BUSY_POLL_S)
            return messages
        first = consumer.poll(self.options.poll_timeout_s)
        if first is None:
            return []
        return [first, *consumer.consume(room - 1, 0)] if room > 1 else [first]

    def _publish_snapshots_ok(self) -> bool:
        self._publish_snapshots()
        return True

    def _close(self, consumer: Any) -> None:
        try:
            consumer.close()
        finally:
            if self._producer is not None:
                self._producer.flush(CLOSE_TIMEOUT_S)
            # A hung worker may be inside a call on the connection: closing it from this
            # thread could free it under that call; the worker or the exit closes it.
            if self._conn is not None and not self._hung:
                self._conn.close()
        log.info(
            "stopped: posted %d fills, replayed %d, rejected %d",
            self.stats.posted,
            self.stats.replayed,
            self.stats.rejected,
        )
