"""One batch of fills into the ledger, in ONE PostgreSQL transaction with the Kafka offsets.

Guarantees, given a batch of decoded records from one consumer poll:
- every new fill's transfers, its `fills` row, its `outbox` row (relayed to ledger.postings by
  `relay.py`), the balance and position updates, the last prices and the next offset of every
  partition in the batch commit together, or nothing does;
- a fill whose identity (`Fill.ref`: venue, exec id and, for HKEX, trading day) is already posted with the same digest (a replay) posts
  nothing; one with a different digest is rejected, as is an undecodable or invalid record;
  rejected records go to `on_rejected` (the dead-letter producer) BEFORE the commit, so a
  crash can duplicate a dead letter but never lose one;
- a fill is checked against the ledger once (its unique `fill_ref`), not once per transfer;
  its transfers are written only in the transaction that inserts its `fills` row;
- writes are bulk: binary COPY for the journal and fills (no text escaping, so any account
  name is stored as it is), one `unnest` statement per table for the rest, balance and
  position changes summed per (account, asset) per batch, rows locked in sorted key order so
  two sinks sharing accounts cannot deadlock;
- offsets only move forward (GREATEST), so a late batch from a revoked partition cannot
  rewind a newer owner's position.
The Python side checks debits = credits per asset before commit; PostgreSQL checks again at
commit (the deferred `balances_sum_to_zero` trigger).

Cost (why it is shaped like this; figures from bench.py on 2 cores, see the commit log): a
batch is four exchanges with the server: one pipelined read (stored digests, fill ids,
positions locked), the two binary COPYs, one pipelined write of everything else ending in the
commit. The journal has no per-row unique index (see the migration): that, the compact
(fill_id, leg) key and binary COPY took the journal from ~50 to ~10 ms per 1,000 fills.
Limits: a replayed batch still locks the positions its fills name (and creates them flat if
they are missing); the positions of a batch
are read and written whole, so a batch's size bounds the rows it locks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from sampan.ledger_sink.positions import Position, apply_trade
from sampan.ledger_sink.rules import Fill, Transfer, deltas
from sampan.market.parties import EXCHANGE_MEMBER

OPERATOR_MEMBER = "SAMPAN"  # the venue itself: owns the charge accounts

Conn = psycopg.Connection[tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class Item:
    """One consumed record, decoded and posted in memory (no I/O yet)."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    fill: Fill | None  # None when the record could not be decoded or posted
    digest: bytes
    transfers: tuple[Transfer, ...]
    error: str


@dataclass(frozen=True, slots=True)
class Rejected:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    error: str


@dataclass(frozen=True, slots=True)
class BatchResult:
    posted: int
    replayed: int
    rejected: tuple[Rejected, ...]
    touched_accounts: tuple[str, ...]
    transfers: int
    commit_ms: float


DEFAULT_GROUP = "ledger_sink"  # the sink's consumer group (before SAMPAN_TOPIC_PREFIX)


@dataclass(frozen=True, slots=True)
class Source:
    group_id: str
    topic: str


@dataclass(frozen=True, slots=True)
class _Reads:
    """What a batch reads before it writes, in one round trip (`_read`)."""

    digests: dict[str, bytes]  # fill_ref -> digest of the fills already in the ledger
    fill_ids: list[int]  # reserved for the batch's new fills (one per distinct fill)
    positions: dict[tuple[str, int], Position]  # locked until commit


def _position_keys(items: Sequence[Item]) -> list[tuple[str, int]]:
    keys = set()
    for item in items:
        f = item.fill
        if f is None:
            continue
        if f.buy_member != EXCHANGE_MEMBER:
            keys.add((f.buy_account, f.security))
        if f.sell_member != EXCHANGE_MEMBER:
            keys.add((f.sell_account, f.security))
    return sorted(keys)


def _read(conn: Conn, items: Sequence[Item]) -> _Reads:
    """Four statements pipelined into one round trip: the stored digests of the batch's fills,
    fill ids for them (a replayed fill wastes its id; ids need only be unique), flat rows for
    positions not yet in the ledger, and the positions its fills touch, locked in key order (a
    replay locks a few rows for nothing)."""
    refs = list({item.fill.ref for item in items if item.fill is not None})
    keys = _position_keys(items)
    with conn.pipeline():
        digests = conn.execute(
            "SELECT fill_ref, digest FROM fills WHERE fill_ref = ANY(%s)", (refs,)
        )
        ids = conn.execute("SELECT nextval('fill_ids') FROM generate_series(1, %s)", (len(refs),))
        # A missing row cannot be locked, and `_update_positions` writes absolute quantities:
        # without this, two sinks opening the same position would each write their own trades
        # only, and the later commit would erase the earlier's. Flat rows are inserted first
        # (a concurrent insert of the same key waits for the other transaction), so every key
        # has a row to lock below. Key order, as for the locks, so two sinks cannot deadlock.
        conn.execute(
            "INSERT INTO positions (account, security, qty, cost_e3, realised_pnl_e3) "
            "SELECT k.account, k.security, 0, 0, 0 "
            "FROM unnest(%s::text[], %s::int[]) AS k(account, security) "
            "ORDER BY k.account, k.security ON CONFLICT DO NOTHING",
            ([k[0] for k in keys], [k[1] for k in keys]),
        )
        positions = conn.execute(
            "SELECT p.account, p.security, p.qty, p.cost_e3, p.realised_pnl_e3 FROM positions p "
            "JOIN unnest(%s::text[], %s::int[]) AS k(account, security) "
            "USING (account, security) ORDER BY p.account, p.security FOR UPDATE OF p",
            ([k[0] for k in keys], [k[1] for k in keys]),
        )
    return _Reads(
        {str(ref): bytes(digest) for ref, digest in digests.fetchall()},
        [int(r[0]) for r in ids.fetchall()],
        {(str(r[0]), int(r[1])): Position(r[2], r[3], r[4]) for r in positions.fetchall()},
    )


def _classify(
    items: Sequence[Item], stored: dict[str, bytes]
) -> tuple[list[Item], int, list[Rejected]]:
    """Split a batch into new fills, replays (counted) and rejects."""
    rejected = [
        Rejected(i.partition, i.offset, i.key, i.value, i.error) for i in items if i.fill is None
    ]
    first: dict[str, Item] = {}
    replayed = 0
    for item in items:
        if item.fill is None:
            continue
        seen = first.get(item.fill.ref)
        if seen is None:
            first[item.fill.ref] = item
        elif seen.digest == item.digest:
            replayed += 1
        else:
            rejected.append(_conflict(item, "earlier in the same batch"))
    fresh: list[Item] = []
    for ref, item in first.items():
        digest = stored.get(ref)
        if digest is None:
            fresh.append(item)
        elif digest == item.digest:
            replayed += 1
        else:
            rejected.append(_conflict(item, "already in the ledger"))
    fresh.sort(key=lambda i: (i.partition, i.offset))
    return fresh, replayed, rejected


def _conflict(item: Item, where: str) -> Rejected:
    assert item.fill is not None
    return Rejected(
        item.partition,
        item.offset,
        item.key,
        item.value,
        f"fill {item.fill.ref} differs from the fill with the same identity {where}",
    )


def _ensure_accounts(
    conn: Conn,
    fresh: Sequence[Item],
    balance_deltas: dict[tuple[str, str], int],
    known: set[str],
) -> list[str]:
    """Create members and accounts seen for the first time; returns the accounts added."""
    new: dict[str, tuple[str, str]] = {}
    for item in fresh:
        f = item.fill
        assert f is not None
        for account, member in ((f.buy_account, f.buy_member), (f.sell_account, f.sell_member)):
            if account not in known:
                kind = "exchange" if member == EXCHANGE_MEMBER else "member"
                new[account] = (member, kind)
    # Every account a transfer names has a balance change; the ones no fill names are the
    # charge accounts.
    for account, _ in balance_deltas:
        if account not in known and account not in new:
            new[account] = (OPERATOR_MEMBER, "charge")
    if not new:
        return []
    accounts = sorted(new)
    members = [new[a][0] for a in accounts]
    conn.execute(
        "INSERT INTO members (member) SELECT DISTINCT m FROM unnest(%s::text[]) AS m "
        "ORDER BY m ON CONFLICT DO NOTHING",
        (members,),
    )
    conn.execute(
        "INSERT INTO accounts (account, member, kind) "
        "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]) ON CONFLICT DO NOTHING",
        (accounts, members, [new[a][1] for a in accounts]),
    )
    return accounts


_FILL_TYPES = ("int8", "text", "bytea", "int4", "int8", "int8", "int8", "int4", "int8")
_TRANSFER_TYPES = ("int8", "int2", "text", "text", "text", "int8")


def _copy_rows(conn: Conn, fresh: Sequence[Item], fill_ids: Sequence[int]) -> int:
    """COPY the fills and their transfers, in binary: no escaping, and cheaper for the server
    to parse than text. Returns the number of transfers."""
    count = 0
    with conn.cursor() as cur:
        with cur.copy(
            "COPY fills (fill_id, fill_ref, digest, security, price_e3, qty, ts_event_ns, "
            "source_partition, source_offset) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(_FILL_TYPES)
            for fill_id, item in zip(fill_ids, fresh, strict=True):
                f = item.fill
                assert f is not None
                copy.write_row(
                    (
                        fill_id,
                        f.ref,
                        item.digest,
                        f.security,
                        f.price_e3,
                        f.qty,
                        f.ts_ns,
                        item.partition,
                        item.offset,
                    )
                )
        with cur.copy(
            "COPY transfers (fill_id, leg, debit_account, credit_account, asset, amount) "
            "FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(_TRANSFER_TYPES)
            write_row = copy.write_row
            for fill_id, item in zip(fill_ids, fresh, strict=True):
                for leg, debit_account, credit_account, asset, amount in item.transfers:
                    write_row((fill_id, leg, debit_account, credit_account, asset, amount))
                count += len(item.transfers)
    return count


def _check_balanced(changes: dict[tuple[str, str], int]) -> None:
    """Debits = credits per asset, in Python, before PostgreSQL checks it again at commit."""
    per_asset: dict[str, int] = {}
    for (_, asset), delta in changes.items():
        per_asset[asset] = per_asset.get(asset, 0) + delta
    unbalanced = {asset: total for asset, total in per_asset.items() if total}
    assert not unbalanced, f"posting rules produced unbalanced transfers: {unbalanced}"


def _update_balances(conn: Conn, balance_deltas: dict[tuple[str, str], int]) -> None:
    changes = sorted((k, v) for k, v in balance_deltas.items() if v)
    if not changes:
        return
    conn.execute(
        "INSERT INTO balances (account, asset, balance) "
        "SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[]) "
        "ON CONFLICT (account, asset) DO UPDATE SET balance = balances.balance + "
        "excluded.balance",
        ([k[0] for k, _ in changes], [k[1] for k, _ in changes], [v for _, v in changes]),
    )


def _update_positions(
    conn: Conn, fresh: Sequence[Item], book: dict[tuple[str, int], Position]
) -> None:
    """Apply the batch's trades to the positions read (and locked) by `_read`."""
    changed: set[tuple[str, int]] = set()
    for item in fresh:
        f = item.fill
        assert f is not None
        for account, member, signed_qty in (
            (f.buy_account, f.buy_member, f.qty),
            (f.sell_account, f.sell_member, -f.qty),
        ):
            if member != EXCHANGE_MEMBER:
                key = (account, f.security)
                book[key] = apply_trade(book.get(key, _FLAT), signed_qty, f.price_e3)
                changed.add(key)
    if not changed:
        return
    keys = sorted(changed)
    conn.execute(
        "INSERT INTO positions (account, security, qty, cost_e3, realised_pnl_e3) "
        "SELECT * FROM unnest(%s::text[], %s::int[], %s::bigint[], %s::bigint[], %s::bigint[]) "
        "ON CONFLICT (account, security) DO UPDATE SET qty = excluded.qty, "
        "cost_e3 = excluded.cost_e3, realised_pnl_e3 = excluded.realised_pnl_e3",
        (
            [k[0] for k in keys],
            [k[1] for k in keys],
            [book[k].qty for k in keys],
            [book[k].cost_e3 for k in keys],
            [book[k].realised_pnl_e3 for k in keys],
        ),
    )


_FLAT = Position()


def _update_last_prices(conn: Conn, fresh: Sequence[Item]) -> None:
    newest: dict[int, Fill] = {}
    for item in fresh:
        f = item.fill
        assert f is not None
        seen = newest.get(f.security)
        if seen is None or (f.ts_ns, f.ref) > (seen.ts_ns, seen.ref):
            newest[f.security] = f
    securities = sorted(newest)
    conn.execute(
        "INSERT INTO last_prices (security, price_e3, ts_event_ns, fill_ref) "
        "SELECT * FROM unnest(%s::int[], %s::bigint[], %s::bigint[], %s::text[]) "
        "ON CONFLICT (security) DO UPDATE SET price_e3 = excluded.price_e3, "
        "ts_event_ns = excluded.ts_event_ns, fill_ref = excluded.fill_ref "
        "WHERE (excluded.ts_event_ns, excluded.fill_ref) > "
        "(last_prices.ts_event_ns, last_prices.fill_ref)",
        (
            securities,
            [newest[s].price_e3 for s in securities],
            [newest[s].ts_ns for s in securities],
            [newest[s].ref for s in securities],
        ),
    )


def _store_offsets(conn: Conn, source: Source, items: Sequence[Item]) -> None:
    next_offsets: dict[int, int] = {}
    for item in items:
        next_offsets[item.partition] = max(next_offsets.get(item.partition, 0), item.offset + 1)
    store_next_offsets(conn, source, next_offsets)


def store_next_offsets(conn: Conn, source: Source, next_offsets: dict[int, int]) -> None:
    """Store the next offset to read per partition, in the caller's transaction; an offset
    only moves forward (GREATEST)."""
    partitions = sorted(next_offsets)
    conn.execute(
        "INSERT INTO consumer_offsets (group_id, topic, partition, next_offset) "
        "SELECT %s, %s, * FROM unnest(%s::int[], %s::bigint[]) "
        "ON CONFLICT (group_id, topic, partition) DO UPDATE SET "
        "next_offset = GREATEST(consumer_offsets.next_offset, excluded.next_offset), "
        "updated_at = now()",
        (source.group_id, source.topic, partitions, [next_offsets[p] for p in partitions]),
    )


def _rollback_quietly(conn: Conn) -> None:
    """Roll back after a failure; a connection that is already gone has nothing to undo."""
    if conn.closed:
        return
    try:
        conn.rollback()
    except psycopg.Error:
        conn.close()


def post_batch(
    conn: Conn,
    source: Source,
    items: Sequence[Item],
    known_accounts: set[str],
    on_rejected: Callable[[Sequence[Rejected]], None],
) -> BatchResult:
    """Post one batch and commit. On any error the transaction is rolled back and the error
    raised; the caller may retry the same batch (the outcome depends only on the ledger)."""
    assert items
    started = time.perf_counter()
    try:
        reads = _read(conn, items)
        fresh, replayed, rejected = _classify(items, reads.digests)
        if rejected:
            rejected.sort(key=lambda r: (r.partition, r.offset))
            on_rejected(rejected)
        transfers = [t for item in fresh for t in item.transfers]
        balance_deltas = deltas(transfers)
        _check_balanced(balance_deltas)
        fill_ids = reads.fill_ids[: len(fresh)]
        if fresh:
            _copy_rows(conn, fresh, fill_ids)
        # The rest needs no answer until the commit: one more round trip.
        with conn.pipeline():
            added = _ensure_accounts(conn, fresh, balance_deltas, known_accounts) if fresh else []
            if fresh:
                # The outbox rows, in this transaction: the relay publishes them once it commits.
                conn.execute(
                    "INSERT INTO outbox (entry_id, kind) SELECT unnest(%s::bigint[]), 'fill'",
                    (fill_ids,),
                )
                _update_balances(conn, balance_deltas)
                _update_positions(conn, fresh, reads.positions)
                _update_last_prices(conn, fresh)
            _store_offsets(conn, source, items)
            conn.commit()
    except BaseException:
        _rollback_quietly(conn)
        raise
    known_accounts.update(added)
    touched = sorted(
        {
            account
            for item in fresh
            if item.fill is not None
            for account, member in (
                (item.fill.buy_account, item.fill.buy_member),
                (item.fill.sell_account, item.fill.sell_member),
            )
            if member != EXCHANGE_MEMBER
        }
    )
    return BatchResult(
        posted=len(fresh),
        replayed=replayed,
        rejected=tuple(rejected),
        touched_accounts=tuple(touched),
        transfers=len(transfers),
        commit_ms=(time.perf_counter() - started) * 1000.0,
    )
