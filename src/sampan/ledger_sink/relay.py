"""The outbox relay: every journal entry of the ledger onto ledger.postings, exactly once.

The sink and the cash movements write one `outbox` row per journal entry in the database
transaction that writes the entry (migration 0004), carrying the journal's own id and the id
of that writing transaction (`txid`). The relay reads the outbox in `(txid, entry_id)` order and
publishes each entry whole (its fills or movement row, every transfer, the accounts they name)
as a `LedgerEntry` keyed by the entry's ref, in Kafka transactions.

Guarantees:
- No gap: the relay only reads rows whose transaction is older than every transaction still
  running (`txid < pg_snapshot_xmin(pg_current_snapshot())`), so a row can never commit later
  *behind* the relay's position; rows are published in position order.
- No duplicate a read_committed reader can see: the relay's progress is the position of the
  last entry on the topic itself. At start it fences any earlier relay with its transactional
  id (which aborts that relay's open transaction), then reads the tail of every partition of
  ledger.postings and resumes after the highest position there. A relay SIGKILLed between its
  Kafka commit and anything else loses nothing and repeats nothing: there is nothing else.
- Records are deterministic: the same entry always gives the same key and value, so even a
  second relay run against a restored database (which this design does not need) would write
  byte-identical copies that a reader de-duplicates by `entry_id`.
- Bounded: `batch_max` entries per transaction; every Kafka transaction call is bounded
  (`streams.txn`), a loop that commits nothing with entries waiting for `stall_s` exits.

Limits: one relay per ledger schema and topic prefix (its transactional id is fixed; a second
one fences the first). An entry reaches the topic after its transaction commits and every
older transaction ends: a long-running ledger transaction delays the relay, never reorders
it. The outbox rows are kept (one small row per entry).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from sampan.config import Settings
from sampan.ledger_sink import db
from sampan.ledger_sink.store import Conn
from sampan.schemas import registry
from sampan.streams import profiles
from sampan.streams.liveness import Liveness
from sampan.streams.reader import read_to_end
from sampan.streams.txn import Transactions

log = logging.getLogger(__name__)

TOPIC = "ledger.postings"
SCHEMA = "LedgerEntry"
NAME = "sampan-ledger-relay"
BATCH_MAX = 1_000
POLL_S = 0.2
TAIL_FIRST = 64  # records read back from a partition's end to find the last position
TAIL_GROWTH = 8
READ_TIMEOUT_S = 120.0
METADATA_TIMEOUT_S = 30.0
TXN_TIMEOUT_MS = 60_000
INIT_TIMEOUT_S = 120.0
MIGRATED_WAIT_S = 120.0


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """Where an entry stands in the relay's order."""

    txid: int
    entry_id: int


START = Position(0, 0)


def position_of(record: dict[str, Any]) -> Position:
    return Position(int(record["txid"]), int(record["entry_id"]))


def exec_id_of(fill_ref: str) -> str:
    """A fill ref's exec id: `INTERNAL:<exec_id>` or `HKEX:<YYYY-MM-DD>:<exec_id>`."""
    venue, _, rest = fill_ref.partition(":")
    return rest.partition(":")[2] if venue == "HKEX" else rest


# ---- the ledger side ----------------------------------------------------------------------


def fetch(conn: Conn, after: Position, limit: int) -> list[dict[str, Any]]:
    """The next entries after `after`, as LedgerEntry records, in position order (at most
    `limit`), in one read-only snapshot."""
    rows = conn.execute(
        "SELECT txid::text::bigint, entry_id, kind FROM outbox "
        "WHERE (txid, entry_id) > (%s::text::xid8, %s) "
        "AND txid < pg_snapshot_xmin(pg_current_snapshot()) "
        "ORDER BY txid, entry_id LIMIT %s",
        (str(after.txid), after.entry_id, limit),
    ).fetchall()
    if not rows:
        return []
    ids = [int(r[1]) for r in rows]
    low, high = min(ids), max(ids)
    fills = {
        int(r[0]): r
        for r in conn.execute(
            "SELECT fill_id, fill_ref, digest, security, price_e3, qty, ts_event_ns, "
            "source_partition, source_offset FROM fills WHERE fill_id = ANY(%s)",
            (ids,),
        )
    }
    movements = {
        int(r[0]): r
        for r in conn.execute(
            "SELECT movement_id, ref, account, member, kind, amount_cents, reason, "
            "funding_account, ts_ns FROM cash_movements WHERE movement_id = ANY(%s)",
            (ids,),
        )
    }
    transfers: dict[int, list[tuple[Any, ...]]] = {}
    for r in conn.execute(
        # The BRIN index on fill_id serves the range; ANY picks the batch's entries.
        "SELECT fill_id, leg, debit_account, credit_account, asset, amount FROM transfers "
        "WHERE fill_id BETWEEN %s AND %s AND fill_id = ANY(%s) ORDER BY fill_id, leg",
        (low, high, ids),
    ):
        transfers.setdefault(int(r[0]), []).append(r)
    names = sorted({a for rs in transfers.values() for r in rs for a in (r[2], r[3])})
    accounts = {
        str(r[0]): (str(r[1]), str(r[2]))
        for r in conn.execute(
            "SELECT account, member, kind FROM accounts WHERE account = ANY(%s)", (names,)
        )
    }
    entries = [
        entry(int(txid), int(entry_id), str(kind), fills, movements, transfers, accounts)
        for txid, entry_id, kind in rows
    ]
    conn.rollback()
    return entries


def entry(
    txid: int,
    entry_id: int,
    kind: str,
    fills: dict[int, tuple[Any, ...]],
    movements: dict[int, tuple[Any, ...]],
    transfers: dict[int, list[tuple[Any, ...]]],
    accounts: dict[str, tuple[str, str]],
) -> dict[str, Any]:
    """One LedgerEntry record from the rows of one journal entry. Pure."""
    postings = [
        {"leg": int(leg), "debit_account": d, "credit_account": c, "asset": a, "amount": int(n)}
        for _, leg, d, c, a, n in transfers.get(entry_id, [])
    ]
    assert postings, f"journal entry {entry_id} has no transfers"
    named = sorted({p["debit_account"] for p in postings} | {p["credit_account"] for p in postings})
    record: dict[str, Any] = {
        "entry_id": entry_id,
        "txid": txid,
        "postings": postings,
        "accounts": [
            {"account": a, "member": accounts[a][0], "kind": accounts[a][1]} for a in named
        ],
        "fill": None,
        "movement": None,
        "exec_id": None,
    }
    if kind == "fill":
        _, ref, digest, security, price_e3, qty, ts_ns, partition, offset = fills[entry_id]
        record.update(
            entry_ref=ref,
            kind="FILL",
            exec_id=exec_id_of(ref),
            ts_ns=int(ts_ns),
            fill={
                "digest": bytes(digest),
                "security": int(security),
                "price_e3": int(price_e3),
                "qty": int(qty),
                "source_partition": int(partition),
                "source_offset": int(offset),
            },
        )
    else:
        assert kind == "cash", kind
        _, ref, account, member, direction, amount, reason, funding, ts_ns = movements[entry_id]
        record.update(
            entry_ref=f"CASH:{ref}",
            kind="CASH",
            ts_ns=int(ts_ns),
            movement={
                "ref": ref,
                "account": account,
                "member": member,
                "direction": direction,
                "amount_cents": int(amount),
                "reason": reason,
                "funding_account": funding,
            },
        )
    return record


# ---- the topic side -----------------------------------------------------------------------


def _watermarks(settings: Settings) -> dict[int, tuple[int, int]]:
    name = settings.topic(TOPIC)
    # A throwaway reader group, as every table reader's (it joins nothing, commits nothing).
    consumer = Consumer(profiles.end_reader(settings, f"sampan-reader-{uuid.uuid4().hex[:8]}"))
    try:
        metadata = consumer.list_topics(name, timeout=METADATA_TIMEOUT_S)
        if name not in metadata.topics or metadata.topics[name].error is not None:
            raise RuntimeError(f"topic {name} does not exist: run `sampan topics apply`")
        return {
            p: consumer.get_watermark_offsets(
                TopicPartition(name, p), timeout=METADATA_TIMEOUT_S, cached=False
            )
            for p in sorted(metadata.topics[name].partitions)
        }
    finally:
        consumer.close()


def relayed_up_to(settings: Settings) -> Position:
    """The highest position committed on ledger.postings (START when it holds none): the last
    data record of each partition's committed tail, read back until one is found."""
    best = START
    for partition, (low, high) in _watermarks(settings).items():
        tail = TAIL_FIRST
        while high > low:
            start = max(low, high - tail)
            found = [
                position_of(registry().decode(SCHEMA, m.value()))
                for m in read_to_end(
                    settings, TOPIC, READ_TIMEOUT_S, {partition: start}, {partition: high}
                )
                if m.value() is not None
            ]
            if found:
                best = max(best, *found)
                break
            if start == low:
                break  # only aborted records and transaction markers
            tail *= TAIL_GROWTH
    return best


def read_entries(settings: Settings) -> Iterable[tuple[int, int, dict[str, Any]]]:
    """Every committed entry on ledger.postings: (partition, offset, record)."""
    for m in read_to_end(settings, TOPIC, READ_TIMEOUT_S):
        if m.value() is not None:
            yield m.partition(), m.offset(), registry().decode(SCHEMA, m.value())


class Relay:
    """One relay for one ledger schema. `run(stop)` until `stop` is set (or, with
    `until_idle`, until the outbox holds nothing more to relay)."""

    def __init__(
        self,
        settings: Settings,
        schema: str,
        *,
        batch_max: int = BATCH_MAX,
        poll_s: float = POLL_S,
        stall_s: float = 300.0,
    ) -> None:
        assert 0 < batch_max <= 100_000 and poll_s > 0
        self.settings = settings
        self.schema = schema
        self.batch_max = batch_max
        self.poll_s = poll_s
        self.stall_s = stall_s
        self.relayed = 0
        self.position = START

    def run(self, stop: threading.Event, until_idle: bool = False) -> int:
        """Relay; returns the number of entries this run published."""
        settings = self.settings
        transactional_id = settings.topic(f"{NAME}-{self.schema}")
        producer = Producer(
            profiles.transactional_producer(
                settings, transactional_id, transaction_timeout_ms=TXN_TIMEOUT_MS
            )
        )
        liveness = Liveness(NAME, self.stall_s)
        liveness.start()
        txns = Transactions(producer, NAME, liveness)
        try:
            # Fence an earlier relay first (aborting its open transaction), so the tail read
            # next is final.
            txns.init(INIT_TIMEOUT_S)
            self._wait_migrated(stop)
            self.position = relayed_up_to(settings)
            log.info("ledger relay: resuming after %s", self.position)
            with db.connect_waiting(settings, self.schema, should_stop=stop.is_set) as conn:
                conn.execute("SET default_transaction_read_only = on")
                conn.commit()
                while not stop.is_set():
                    entries = fetch(conn, self.position, self.batch_max)
                    if not entries:
                        liveness.beat()
                        if until_idle:
                            break
                        stop.wait(self.poll_s)
                        continue
                    if self._publish(producer, txns, entries):
                        liveness.beat()
        finally:
            liveness.close()
            producer.flush(5.0)
        return self.relayed

    def _wait_migrated(self, stop: threading.Event) -> None:
        """The sink migrates the schema at its start; a relay started beside it waits for
        that (bounded), then raises `db.NotMigrated` saying what to run."""
        deadline = time.monotonic() + MIGRATED_WAIT_S
        while True:
            try:
                db.require_migrated(self.settings, self.schema)
                return
            except db.NotMigrated:
                if time.monotonic() > deadline or stop.is_set():
                    raise
                log.info("ledger relay: waiting for schema %s to be migrated", self.schema)
                stop.wait(1.0)

    def _publish(
        self, producer: Producer, txns: Transactions, entries: Sequence[dict[str, Any]]
    ) -> bool:
        """One transaction; True when committed (False: aborted, the batch is read again)."""
        name = self.settings.topic(TOPIC)
        txns.begin()
        for record in entries:
            producer.produce(
                name,
                key=str(record["entry_ref"]).encode(),
                value=registry().encode(SCHEMA, record),
            )
        if not txns.commit():
            return False
        self.position = position_of(entries[-1])
        self.relayed += len(entries)
        return True
