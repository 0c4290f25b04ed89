"""Account limits in the ledger, followed from `reference.accounts` (compacted, Account).

Where the ledger's limits come from: every Account record on `reference.accounts` sets its
account's member, credit line, cut-loss level, `allow_short` and `enabled` in the `accounts`
table (the account is created if the ledger has not seen it); snapshots (`ledger.balances`)
and `sampan ledger verify` read them there. An account never named on the topic keeps the
defaults it was created with on its first fill or deposit (no credit line, cut-loss 0,
short selling allowed, enabled) and a NULL `limits_offset`. A tombstone (no value) disables
the account; its history stays. The member from reference data wins over the one a fill named.

Guarantees:
- exactly once per record into PostgreSQL: a batch's upserts and the next offset of
  `reference.accounts` (in `consumer_offsets`, under the sink's group) commit in ONE
  transaction, and the follower starts from the stored offsets;
- monotonic: a row records the offset of the record that set it and is only updated by a
  newer one, so a second sink, or `rebuild` replaying into a scratch schema, ends in the
  same state, whatever the interleaving (one key is always on one partition);
- bad records (undecodable, an empty account or member, a negative credit line, a venue
  account) go to `reference.accounts.dlq` before the batch commits, never lost;
- bounded: at most `batch_max` records per transaction, every poll has a timeout, PostgreSQL
  is retried with bounded backoff for `db_wait_max_s`, then the follower fails (the sink then
  stops and exits non-zero).
The sink runs it on its own thread (`LedgerSink`), and publishes the snapshots of the accounts
it changed; `rebuild` runs it in replay mode up to the live ledger's stored offsets.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from sampan import topics
from sampan.config import Settings
from sampan.errors import SampanError
from sampan.ledger_sink import db, reads
from sampan.ledger_sink.rules import VENUE_ACCOUNT_PREFIXES
from sampan.ledger_sink.store import Conn, Source, store_next_offsets
from sampan.schemas import SchemaError, registry
from sampan.streams import profiles
from sampan.streams.letters import dead_letter

log = logging.getLogger(__name__)

TOPIC = "reference.accounts"
BATCH_MAX = 500
POLL_TIMEOUT_S = 0.5
METADATA_TIMEOUT_S = 10.0
TOPIC_RETRY_S = 10.0
DELIVERY_TIMEOUT_S = 30.0
NAMES_LOGGED_MAX = 5
REPLAY_IDLE_MAX_S = 30.0


class InvalidLimits(ValueError):
    """An Account record the ledger cannot apply."""


class LimitsError(SampanError):
    """The follower cannot go on (dead letters not acknowledged, PostgreSQL gone too long)."""


@dataclass(frozen=True, slots=True)
class AccountLimits:
    """The ledger's part of an Account record, and the offset that set it."""

    account: str
    member: str
    credit_line_cents: int
    cut_loss_cents: int
    allow_short: bool
    enabled: bool
    offset: int
    ts_ns: int


@dataclass(frozen=True, slots=True)
class Removed:
    """A tombstone: the account is no longer in reference data."""

    account: str
    offset: int


Change = AccountLimits | Removed


def limits_from_record(record: Mapping[str, Any], offset: int) -> AccountLimits:
    account, member = record["account"], record["member"]
    if not account or account.startswith(VENUE_ACCOUNT_PREFIXES):
        raise InvalidLimits(f"{account!r} cannot be a member account")
    if not member:
        raise InvalidLimits(f"{account}: empty member")
    if record["credit_line_cents"] < 0:
        raise InvalidLimits(f"{account}: negative credit line {record['credit_line_cents']}")
    return AccountLimits(
        account,
        member,
        record["credit_line_cents"],
        record["cut_loss_cents"],
        record["allow_short"],
        record["enabled"],
        offset,
        record["ts_ns"],
    )


def latest_per_account(changes: Sequence[Change]) -> list[Change]:
    """The newest change of each account, in account order (the order rows are locked in)."""
    latest: dict[str, Change] = {}
    for change in changes:
        seen = latest.get(change.account)
        if seen is None or change.offset > seen.offset:
            latest[change.account] = change
    return [latest[a] for a in sorted(latest)]


def apply_changes(
    conn: Conn, source: Source, changes: Sequence[Change], next_offsets: dict[int, int]
) -> list[str]:
    """Apply a batch and store its offsets in ONE transaction; the accounts changed."""
    newest = latest_per_account(changes)
    limits = [c for c in newest if isinstance(c, AccountLimits)]
    removed = [c for c in newest if isinstance(c, Removed)]
    changed: list[str] = []
    try:
        if limits:
            conn.execute(
                "INSERT INTO members (member) SELECT DISTINCT m FROM unnest(%s::text[]) AS m "
                "ORDER BY m ON CONFLICT DO NOTHING",
                ([c.member for c in limits],),
            )
            rows = conn.execute(
                "INSERT INTO accounts AS a (account, member, kind, credit_line_cents, "
                "cut_loss_cents, allow_short, enabled, limits_offset, limits_ts_ns) "
                "SELECT x.account, x.member, 'member', x.credit, x.cut_loss, x.short, x.enabled, "
                "x.off, x.ts FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::bigint[], "
                "%s::bool[], %s::bool[], %s::bigint[], %s::bigint[]) "
                "AS x(account, member, credit, cut_loss, short, enabled, off, ts) "
                "ORDER BY x.account "
                "ON CONFLICT (account) DO UPDATE SET member = excluded.member, "
                "credit_line_cents = excluded.credit_line_cents, "
                "cut_loss_cents = excluded.cut_loss_cents, allow_short = excluded.allow_short, "
                "enabled = excluded.enabled, limits_offset = excluded.limits_offset, "
                "limits_ts_ns = excluded.limits_ts_ns "
                "WHERE a.kind = 'member' AND (a.limits_offset IS NULL "
                "OR a.limits_offset < excluded.limits_offset) RETURNING a.account",
                (
                    [c.account for c in limits],
                    [c.member for c in limits],
                    [c.credit_line_cents for c in limits],
                    [c.cut_loss_cents for c in limits],
                    [c.allow_short for c in limits],
                    [c.enabled for c in limits],
                    [c.offset for c in limits],
                    [c.ts_ns for c in limits],
                ),
            ).fetchall()
            changed.extend(str(r[0]) for r in rows)
        if removed:
            rows = conn.execute(
                "UPDATE accounts a SET enabled = false, limits_offset = x.off "
                "FROM unnest(%s::text[], %s::bigint[]) AS x(account, off) "
                "WHERE a.account = x.account AND a.kind = 'member' "
                "AND (a.limits_offset IS NULL OR a.limits_offset < x.off) RETURNING a.account",
                ([c.account for c in removed], [c.offset for c in removed]),
            ).fetchall()
            changed.extend(str(r[0]) for r in rows)
        if next_offsets:
            store_next_offsets(conn, source, next_offsets)
        conn.commit()
    except BaseException:
        if not conn.closed:
            conn.rollback()
        raise
    return sorted(changed)


class LimitsFollower:
    """Follows `reference.accounts` into the ledger's `accounts` table (module docstring)."""

    def __init__(
        self,
        settings: Settings,
        schema: str,
        group_id: str,
        on_changed: Callable[[Sequence[str]], None] = lambda _: None,
        should_stop: Callable[[], bool] = lambda: False,
        stop_at: dict[int, int] | None = None,
        publish: bool = True,
        batch_max: int = BATCH_MAX,
        db_wait_max_s: float = db.DB_WAIT_MAX_S,
    ) -> None:
        self.settings = settings
        self.schema = schema
        self.topic = settings.topic(TOPIC)
        self.source = Source(group_id, self.topic)
        self.on_changed = on_changed
        self.should_stop = should_stop
        self.stop_at = stop_at  # replay mode: stop at these next offsets (exclusive ends)
        self.publish = publish
        self.batch_max = batch_max
        self.db_wait_max_s = db_wait_max_s
        self.applied = 0  # accounts whose limits changed
        self.rejected = 0
        self._conn: Conn | None = None
        self._producer: Any = None
        self._beyond: set[int] = set()  # replay mode: partitions seen past their end
        self._idle_since: float | None = None

    # -- Kafka ----------------------------------------------------------------------------

    def _consumer(self) -> Any:
        from confluent_kafka import Consumer

        # Partitions are assigned, never subscribed: the group id only names the client;
        # positions live in PostgreSQL with the rows.
        return Consumer(
            profiles.follower(
                self.settings,
                self.settings.topic(f"{self.source.group_id}.limits"),
                **{"queued.max.messages.kbytes": 16_384},
            )
        )

    def _partitions(self, consumer: Any) -> list[int] | None:
        if self.stop_at is not None:
            return sorted(self.stop_at)
        from confluent_kafka import KafkaException

        try:
            metadata = consumer.list_topics(self.topic, timeout=METADATA_TIMEOUT_S)
        except KafkaException as error:
            # The broker is down or restarting: wait for it as for a missing topic. Stopping
            # the sink instead would only have its supervisor start one that meets the same
            # broker (and it stopped the sink whenever it started during a broker restart).
            log.warning("metadata of %s not available: %s", self.topic, error.args[0])
            return None
        found = metadata.topics.get(self.topic)
        if found is None or found.error is not None or not found.partitions:
            return None
        return sorted(found.partitions)

    def _assign(self, consumer: Any) -> bool:
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        while not self.should_stop():
            partitions = self._partitions(consumer)
            if partitions is not None:
                break
            log.warning(
                "topic %s not found or no broker; limits not followed yet, retrying in %.0f s",
                self.topic,
                TOPIC_RETRY_S,
            )
            end = time.monotonic() + TOPIC_RETRY_S
            while time.monotonic() < end and not self.should_stop():
                time.sleep(0.2)
        else:
            return False
        stored = self._with_db(
            "read stored offsets", lambda c: reads.stored_offsets(c, self.source)
        )
        if stored is None:
            return False
        assigned = [
            TopicPartition(self.topic, p, stored.get(p, OFFSET_BEGINNING)) for p in partitions
        ]
        consumer.assign(assigned)
        log.info(
            "following %s into schema %s from %s",
            self.topic,
            self.schema,
            ", ".join(f"{tp.partition}@{stored.get(tp.partition, 'beginning')}" for tp in assigned),
        )
        return True

    def _dead_letter(self, message: Any, error: str) -> None:
        self.rejected += 1
        log.warning(
            "dead-lettering %s[%d]@%d: %s", self.topic, message.partition(), message.offset(), error
        )
        if not self.publish:
            return
        if self._producer is None:
            from confluent_kafka import Producer

            self._producer = Producer(profiles.producer(self.settings))
        record = dead_letter(
            self.topic,
            message.partition(),
            message.offset(),
            message.key(),
            message.value(),
            error,
            self.source.group_id,
            time.time_ns(),
        )
        self._producer.produce(
            self.settings.topic(topics.dead_letter_of(TOPIC)),
            key=message.key(),
            value=registry().encode("DeadLetter", record),
        )

    def _changes(self, messages: list[Any], next_offsets: dict[int, int]) -> list[Change]:
        changes: list[Change] = []
        for m in messages:
            if m.error() is not None:
                log.warning("consumer error on %s: %s", self.topic, m.error())
                continue
            partition, offset = m.partition(), m.offset()
            if self.stop_at is not None and offset >= self.stop_at.get(partition, 0):
                # Past the end of the replay. Compaction may have removed the records just
                # before it, so seeing a later one is also how a replay knows it is done.
                self._beyond.add(partition)
                continue
            next_offsets[partition] = max(next_offsets.get(partition, 0), offset + 1)
            if m.value() is None:
                key = m.key()
                if key:
                    changes.append(Removed(key.decode(errors="replace"), offset))
                else:
                    self._dead_letter(m, "tombstone without a key")
                continue
            try:
                changes.append(limits_from_record(registry().decode("Account", m.value()), offset))
            except (SchemaError, InvalidLimits, KeyError, TypeError) as error:
                self._dead_letter(m, f"{type(error).__name__}: {error}")
        if self._producer is not None and self._producer.flush(DELIVERY_TIMEOUT_S):
            raise LimitsError(f"dead letters not acknowledged in {DELIVERY_TIMEOUT_S} s")
        return changes

    # -- PostgreSQL -----------------------------------------------------------------------

    def _with_db(self, what: str, action: Callable[[Conn], Any]) -> Any:
        deadline = time.monotonic() + self.db_wait_max_s
        attempt = 0
        while True:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = db.connect(self.settings, self.schema)
                return action(self._conn)
            except psycopg.Error as error:
                if not db.is_connection_error(error):
                    raise
                if self._conn is not None:
                    self._conn.close()
                if not db.wait_backoff(
                    f"limits: {what}", attempt, error, deadline, self.should_stop
                ):
                    if self.should_stop():
                        return None
                    raise LimitsError(
                        f"PostgreSQL unavailable for {self.db_wait_max_s:.0f} s: {error}"
                    ) from None
                attempt += 1

    # -- the loop -------------------------------------------------------------------------

    def _done(self, positions: dict[int, int]) -> bool:
        assert self.stop_at is not None
        return all(
            p in self._beyond or positions.get(p, 0) >= end for p, end in self.stop_at.items()
        )

    def _apply(self, changes: list[Change], next_offsets: dict[int, int]) -> list[str] | None:
        def action(conn: Conn) -> list[str]:
            return apply_changes(conn, self.source, changes, next_offsets)

        changed: list[str] | None = self._with_db("apply limits", action)
        return changed

    def _idle_done(self, consumer: Any) -> bool:
        """Replay mode, nothing received: done if every partition's position is at its end;
        a replay idle for `REPLAY_IDLE_MAX_S` short of its end fails."""
        from confluent_kafka import TopicPartition

        assert self.stop_at is not None
        positions = consumer.position([TopicPartition(self.topic, p) for p in self.stop_at])
        if all(tp.offset >= self.stop_at[tp.partition] for tp in positions):
            return True
        if self._idle_since is None:
            self._idle_since = time.monotonic()
        elif time.monotonic() - self._idle_since > REPLAY_IDLE_MAX_S:
            raise LimitsError(
                f"replay of {self.topic} stalled short of {self.stop_at}: at "
                f"{ {tp.partition: tp.offset for tp in positions} }"
            )
        return False

    def run(self) -> None:
        """Follow until `should_stop()` (or, in replay mode, until every partition is done)."""
        if self.stop_at is not None and all(end <= 0 for end in self.stop_at.values()):
            return
        consumer = self._consumer()
        try:
            if not self._assign(consumer):
                return
            positions: dict[int, int] = {}
            while not self.should_stop():
                if self.stop_at is not None and self._done(positions):
                    break
                messages = consumer.consume(self.batch_max, POLL_TIMEOUT_S)
                next_offsets: dict[int, int] = {}
                changes = self._changes(messages, next_offsets)
                if not next_offsets:
                    if self.stop_at is not None and not messages and self._idle_done(consumer):
                        break
                    continue
                for p, o in next_offsets.items():
                    positions[p] = max(positions.get(p, 0), o)
                changed = self._apply(changes, next_offsets)
                if changed is None:
                    break
                self.applied += len(changed)
                if changed:
                    shown = ", ".join(changed[:NAMES_LOGGED_MAX])
                    more = len(changed) - NAMES_LOGGED_MAX
                    log.info(
                        "limits from %s applied to %d account(s): %s%s",
                        self.topic,
                        len(changed),
                        shown,
                        f" and {more} more" if more > 0 else "",
                    )
                    self.on_changed(changed)
        finally:
            consumer.close()
            if self._producer is not None:
                self._producer.flush(DELIVERY_TIMEOUT_S)
            if self._conn is not None:
                self._conn.close()
