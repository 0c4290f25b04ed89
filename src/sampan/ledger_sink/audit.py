"""`sampan ledger verify` and `sampan ledger rebuild`: the ledger's audit.

verify checks, inside one repeatable-read snapshot of the ledger:
  1. every asset's balances sum to zero (debits = credits per asset);
  2. every balance equals the credits less the debits of its journal;
  3. no forbidden negative balance: a charge account never goes negative nor holds shares,
     a member account without `allow_short` (from reference.accounts, limits.py) never holds
     negative shares, the funding account (`BANK.HKD`) never goes positive nor holds shares;
  4. every member position's quantity equals its share balance;
  5. every account in the journal exists, and every posted fill has its delivery transfer;
  6. every transfer belongs to a posted fill (or, on a cash leg, to a cash movement) and
     names a known leg, and no entry has two transfers on one leg (the journal has no unique
     index: the unique fill_ref or movement ref guards each entry, and its transfers are
     written in the same transaction as its `fills` or `cash_movements` row);
  7. every member account is within its limits: cash not below minus its credit line, and,
     where it has a cut-loss level, equity (cash plus holdings at the last prices, as in its
     snapshot) not below it.

rebuild replays into a scratch schema, with the live code paths, what the live ledger was
built from, up to what the live ledger had applied (all read in one snapshot of it):
  - the cash movements (`cash_movements` is immutable and is their log; each is posted again
    by `movements.post_movement`, in id order; they only move cash, so they commute with fills);
  - `reference.accounts`, up to the limits follower's stored offsets (limits.py);
  - `fills`, up to the sink's stored offsets;
and compares the journal, fills, movements, non-zero balances (a zero balance row exists or not
depending on batching), positions, last prices, accounts with their limits, and offsets. The journal is compared through the
`journal` view, by readable id: fill ids come from a sequence and so depend on the order in
which a sink posted fills, which a replay need not repeat. Positions compare quantity and
`cost_e3 - realised_pnl_e3` (the net amount paid), which do not depend on the order fills of
different partitions reach a sink; the split between cost and realised P&L does (see
positions.py), so it is not compared.

Both print progress on stderr and return a list of problems; empty means all is well. On a
schema that is not migrated to this code's revision both raise `db.NotMigrated`, which says
to run `sampan ledger migrate`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Sequence
from itertools import zip_longest
from typing import Any

from sampan.config import Settings
from sampan.ledger_sink import db, limits
from sampan.ledger_sink.cash import CashMovement, CashReason, Direction
from sampan.ledger_sink.intake import SinkStats
from sampan.ledger_sink.movements import post_movement
from sampan.ledger_sink.rules import CASH_ASSET, LEG_SHARES, MOVEMENT_LEGS
from sampan.ledger_sink.sink import LedgerSink, SinkOptions
from sampan.ledger_sink.snapshot import AccountState, snapshot
from sampan.ledger_sink.store import Conn, Source

PROBLEMS_SHOWN_MAX = 10
PROGRESS_EVERY_S = 2.0
STREAM_ROWS = 10_000  # rows fetched per round trip when comparing
PROGRESS_ROWS = 200_000
# verify's checks and rebuild's comparison scan whole tables: bounded, but far above the
# per-batch bound of db.connect.
AUDIT_STATEMENT_TIMEOUT_MS = 3_600_000

Progress = Callable[[str], None]


def print_progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# These run with psycopg parameters, so a literal % in format() is written %%.
_CHECKS: tuple[tuple[str, str], ...] = (
    (
        "balances sum to zero per asset",
        "SELECT 'asset ' || asset || ' balances sum to ' || sum(balance) FROM balances "
        "GROUP BY asset HAVING sum(balance) <> 0 ORDER BY asset",
    ),
    (
        "every balance equals its journal",
        "WITH j AS (SELECT account, asset, sum(delta) AS total FROM ("
        " SELECT credit_account AS account, asset, amount AS delta FROM transfers"
        " UNION ALL SELECT debit_account, asset, -amount FROM transfers) x"
        " GROUP BY account, asset) "
        "SELECT format('balance %%s/%%s is %%s but its journal sums to %%s', "
        " coalesce(j.account, b.account), coalesce(j.asset, b.asset), "
        " coalesce(b.balance, 0), coalesce(j.total, 0)) "
        "FROM j FULL JOIN balances b ON b.account = j.account AND b.asset = j.asset "
        "WHERE coalesce(j.total, 0) <> coalesce(b.balance, 0) "
        "ORDER BY coalesce(j.account, b.account), coalesce(j.asset, b.asset)",
    ),
    (
        "no forbidden negative balance",
        "SELECT format('%%s account %%s has %%s %%s%%s', a.kind, a.account, b.balance, b.asset, "
        " CASE WHEN a.kind = 'member' THEN ': short, and allow_short is false' ELSE '' END) "
        "FROM balances b JOIN accounts a USING (account) "
        "WHERE (a.kind = 'charge' AND (b.balance < 0 OR (b.asset <> %(cash)s AND b.balance <> 0)))"
        " OR (a.kind = 'member' AND NOT a.allow_short AND b.asset <> %(cash)s AND b.balance < 0)"
        " OR (a.kind = 'funding' AND (b.balance > 0 OR (b.asset <> %(cash)s AND b.balance <> 0)))"
        " ORDER BY a.account, b.asset",
    ),
    (
        "positions equal share balances",
        "SELECT format('position %%s/%%s is %%s shares but the balance is %%s', "
        " coalesce(p.account, b.account), coalesce(p.security::text, b.asset), "
        " coalesce(p.qty, 0), coalesce(b.balance, 0)) "
        "FROM (SELECT * FROM positions WHERE qty <> 0) p FULL JOIN "
        " (SELECT b.* FROM balances b JOIN accounts a USING (account) "
        "  WHERE a.kind = 'member' AND b.asset <> %(cash)s AND b.balance <> 0) b "
        " ON b.account = p.account AND b.asset = p.security::text "
        "WHERE coalesce(p.qty, 0) <> coalesce(b.balance, 0) ORDER BY 1",
    ),
    (
        "journal accounts exist and fills are delivered",
        "SELECT 'journal account ' || x.account || ' is not in accounts' FROM ("
        " SELECT DISTINCT debit_account AS account FROM transfers"
        " UNION SELECT DISTINCT credit_account FROM transfers) x "
        "LEFT JOIN accounts a USING (account) WHERE a.account IS NULL "
        "UNION ALL SELECT 'fill ' || f.fill_ref || ' has no delivery transfer' FROM fills f "
        "WHERE NOT EXISTS (SELECT 1 FROM transfers t WHERE t.fill_id = f.fill_id "
        " AND t.leg = %(shares)s)",
    ),
    (
        "transfers belong to fills or movements, one per leg",
        "SELECT format('transfer of fill id %%s leg %%s has no fill', t.fill_id, t.leg) "
        "FROM transfers t LEFT JOIN fills f USING (fill_id) "
        "WHERE f.fill_id IS NULL AND t.leg <> ALL(%(movement_legs)s) "
        "UNION ALL SELECT format('transfer of entry id %%s leg %%s has no cash movement', "
        " t.fill_id, t.leg) FROM transfers t "
        "LEFT JOIN cash_movements m ON m.movement_id = t.fill_id "
        "WHERE m.movement_id IS NULL AND t.leg = ANY(%(movement_legs)s) "
        "UNION ALL SELECT 'cash movement ' || m.ref || ' has no journal row' "
        "FROM cash_movements m WHERE NOT EXISTS (SELECT 1 FROM transfers t "
        " WHERE t.fill_id = m.movement_id AND t.leg = ANY(%(movement_legs)s)) "
        "UNION ALL SELECT format('transfer of fill id %%s has unknown leg %%s', t.fill_id, t.leg) "
        "FROM transfers t LEFT JOIN legs l USING (leg) WHERE l.leg IS NULL "
        "UNION ALL SELECT format('fill id %%s has %%s transfers on leg %%s', fill_id, count(*), "
        " leg) FROM transfers GROUP BY fill_id, leg HAVING count(*) > 1",
    ),
)


def _limit_breaches(conn: Conn) -> list[str]:
    """Member accounts beyond their limits (check 7), in account order."""
    found: list[str] = []
    for account, cash, credit in conn.execute(
        "SELECT a.account, coalesce(b.balance, 0), a.credit_line_cents FROM accounts a "
        "LEFT JOIN balances b ON b.account = a.account AND b.asset = %s "
        "WHERE a.kind = 'member' AND coalesce(b.balance, 0) < -a.credit_line_cents "
        "ORDER BY a.account LIMIT %s",
        (CASH_ASSET, PROBLEMS_SHOWN_MAX),
    ).fetchall():
        found.append(
            f"member account {account} has cash {cash} cents, beyond its credit line of "
            f"{credit} cents"
        )
    rows = conn.execute(
        "SELECT a.account, a.member, coalesce(b.balance, 0), a.credit_line_cents, "
        "a.cut_loss_cents FROM accounts a "
        "LEFT JOIN balances b ON b.account = a.account AND b.asset = %s "
        "WHERE a.kind = 'member' AND a.cut_loss_cents <> 0 ORDER BY a.account",
        (CASH_ASSET,),
    ).fetchall()
    holdings: dict[str, list[tuple[int, int]]] = {}
    for account, security, qty in conn.execute(
        "SELECT p.account, p.security, p.qty FROM positions p JOIN accounts a USING (account) "
        "WHERE a.kind = 'member' AND a.cut_loss_cents <> 0 AND p.qty <> 0"
    ).fetchall():
        holdings.setdefault(str(account), []).append((int(security), int(qty)))
    prices = {int(s): int(p) for s, p in conn.execute("SELECT security, price_e3 FROM last_prices")}
    for account, member, cash, credit, cut_loss in rows:
        state = AccountState(
            str(account), str(member), int(cash), 0, int(credit), int(cut_loss),
            tuple(holdings.get(str(account), ())),
        )  # fmt: skip
        snap = snapshot(state, prices, 0)
        if snap.cut_loss_breached:
            found.append(
                f"member account {account} has equity {snap.equity_cents} cents, below its "
                f"cut-loss level of {cut_loss} cents"
            )
    return found


def verify(settings: Settings, schema: str, progress: Progress = print_progress) -> list[str]:
    db.require_migrated(settings, schema)
    problems: list[str] = []
    with db.connect(settings, schema, statement_timeout_ms=AUDIT_STATEMENT_TIMEOUT_MS) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        transfers, balances = conn.execute(
            "SELECT (SELECT count(*) FROM transfers), (SELECT count(*) FROM balances)"
        ).fetchone() or (0, 0)
        progress(f"verify {schema}: {transfers} transfers, {balances} balances")
        checks = len(_CHECKS) + 1
        for number, (title, sql) in enumerate(_CHECKS, start=1):
            started = time.monotonic()
            params = {
                "cash": CASH_ASSET,
                "shares": LEG_SHARES,
                "movement_legs": list(MOVEMENT_LEGS),
            }
            found = [str(r[0]) for r in conn.execute(sql, params).fetchall()]
            _report(progress, number, checks, title, found, started)
            problems.extend(found[:PROBLEMS_SHOWN_MAX])
        started = time.monotonic()
        found = _limit_breaches(conn)
        _report(progress, checks, checks, "member accounts within their limits", found, started)
        problems.extend(found[:PROBLEMS_SHOWN_MAX])
        conn.rollback()
    return problems


def _report(
    progress: Progress, number: int, checks: int, title: str, found: list[str], started: float
) -> None:
    status = "ok" if not found else f"{len(found)} problem(s)"
    elapsed_s = time.monotonic() - started
    progress(f"  [{number}/{checks}] {title}: {status} ({elapsed_s:.2f} s)")


# -- rebuild ------------------------------------------------------------------------------

_COMPARED: tuple[tuple[str, str, str], ...] = (
    # table, compared columns (all but timestamps of posting), order
    (
        "journal",
        "id, debit_account, credit_account, asset, amount, reason, fill_ref, ts_event_ns",
        "fill_ref, leg",
    ),
    ("fills", "fill_ref, digest, security, price_e3, qty, ts_event_ns", "fill_ref"),
    (
        "cash_movements",
        "ref, account, member, kind, amount_cents, reason, funding_account, ts_ns",
        "ref",
    ),
    # A zero balance row exists or not depending on how fills fell into batches (a batch
    # that buys and sells the same shares nets to no change and writes no row): a zero
    # balance and no row mean the same, so only non-zero balances are compared.
    ("balances", "account, asset, balance", "account, asset"),
    (
        "positions",
        "account, security, qty, cost_e3 - realised_pnl_e3 AS net_paid_e3",
        "account, security",
    ),
    ("last_prices", "security, price_e3, ts_event_ns, fill_ref", "security"),
    (
        "accounts",
        "account, member, kind, credit_line_cents, cut_loss_cents, allow_short, enabled",
        "account",
    ),
    ("consumer_offsets", "topic, partition, next_offset", "topic, partition"),
)


# Only rows that mean something are compared. A zero balance row exists or not
# depending on how fills fell into batches (a batch that buys and sells the same shares nets to
# no change and writes no row; two batches write the row, then zero it): both mean "flat".
_COMPARED_WHERE = {"balances": "balance <> 0"}


def _rows(
    conn: Conn, schema: str, table: str, columns: str, order: str, where: str | None = None
) -> Iterator[tuple[Any, ...]]:
    """Stream a table in key order through a server-side cursor (bounded memory). `where`
    (a constant of this package, never input) filters it; by default `_COMPARED_WHERE`'s."""
    condition = _COMPARED_WHERE.get(table, "") if where is None else where
    where = f"WHERE {condition}" if condition else ""
    with conn.cursor(name=f"compare_{table}") as cur:
        cur.itersize = STREAM_ROWS
        cur.execute(f'SELECT {columns} FROM "{schema}".{table} {where} ORDER BY {order}')  # noqa: S608
        yield from cur


def _first_difference(
    live: Conn,
    live_schema: str,
    scratch: Conn,
    scratch_schema: str,
    progress: Progress,
) -> str | None:
    """Compare table by table, row by row, in key order; the first difference or None."""
    compared = tuple((t, c, o, _COMPARED_WHERE.get(t, "")) for t, c, o in _COMPARED)
    return compare(live, live_schema, scratch, scratch_schema, compared, progress)


def compare(
    live: Conn,
    live_schema: str,
    scratch: Conn,
    scratch_schema: str,
    tables: Sequence[tuple[str, str, str, str]],
    progress: Progress,
) -> str | None:
    """Compare `tables` (table, columns, key order, row filter), row by row in key order;
    the first difference or None."""
    for table, columns, order, where in tables:
        compared = 0
        pairs = zip_longest(
            _rows(live, live_schema, table, columns, order, where),
            _rows(scratch, scratch_schema, table, columns, order, where),
        )
        for live_row, scratch_row in pairs:
            if live_row != scratch_row:
                return (
                    f"{table}: row {compared + 1} in key order differs: live "
                    f"{live_row} vs rebuild {scratch_row}"
                )
            compared += 1
            if compared % PROGRESS_ROWS == 0:
                progress(f"  compared {compared} rows of {table}")
        progress(f"  {table}: {compared} rows identical")
    return None


def rebuild(
    settings: Settings,
    live_schema: str,
    scratch_schema: str,
    group_id: str,
    batch_max: int,
    keep: bool = False,
    progress: Progress = print_progress,
) -> list[str]:
    """Replay movements, limits and `fills` into `scratch_schema` and compare it with
    `live_schema` (see the module docstring).

    The live side is read in one repeatable-read snapshot taken before the replay, so a sink
    that keeps posting meanwhile does not disturb the comparison."""
    assert live_schema != scratch_schema, "the scratch schema must differ from the live one"
    db.require_migrated(settings, live_schema)
    db.drop_schema(settings, scratch_schema)
    db.migrate(settings, scratch_schema)
    try:
        with db.connect(
            settings, live_schema, statement_timeout_ms=AUDIT_STATEMENT_TIMEOUT_MS
        ) as live:
            live.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            live_offsets = _stored(live, Source(group_id, settings.topic("fills")))
            limits_offsets = _stored(live, Source(group_id, settings.topic(limits.TOPIC)))
            _replay_movements(settings, live, live_schema, scratch_schema, progress)
            if limits_offsets:
                progress(f"rebuild: replaying {limits.TOPIC} up to offsets {limits_offsets}")
                follower = limits.LimitsFollower(
                    settings, scratch_schema, group_id, stop_at=limits_offsets, publish=False
                )
                follower.run()
                progress(f"  limits applied to {follower.applied} account(s)")
            _replay(settings, scratch_schema, group_id, batch_max, live_offsets, progress)
            with db.connect(
                settings, scratch_schema, statement_timeout_ms=AUDIT_STATEMENT_TIMEOUT_MS
            ) as scratch:
                difference = _first_difference(live, live_schema, scratch, scratch_schema, progress)
            live.rollback()
    finally:
        if not keep:
            db.drop_schema(settings, scratch_schema)
    return [difference] if difference else []


def _stored(live: Conn, source: Source) -> dict[int, int]:
    rows = live.execute(
        "SELECT partition, next_offset FROM consumer_offsets WHERE group_id = %s AND topic = %s",
        (source.group_id, source.topic),
    ).fetchall()
    return {int(p): int(o) for p, o in rows}


def _replay_movements(
    settings: Settings, live: Conn, live_schema: str, scratch_schema: str, progress: Progress
) -> None:
    """Post the live ledger's cash movements again, in id order, with the live code."""
    columns = "ref, account, member, kind, amount_cents, reason, ts_ns"
    count = 0
    with db.connect(settings, scratch_schema) as scratch:
        for ref, account, member, kind, amount, reason, ts_ns in _rows(
            live, live_schema, "cash_movements", columns, "movement_id"
        ):
            movement = CashMovement(
                ref, account, Direction(kind), amount, CashReason(reason), ts_ns
            )
            result = post_movement(scratch, movement, member)
            assert result.posted, f"movement {ref} posted twice by the rebuild"
            count += 1
    progress(f"rebuild: {count} cash movement(s) posted again")


def _replay(
    settings: Settings,
    schema: str,
    group_id: str,
    batch_max: int,
    live_offsets: dict[int, int],
    progress: Progress,
) -> None:
    total = sum(live_offsets.values())
    progress(
        f"rebuild: replaying {settings.topic('fills')} up to offsets "
        f"{live_offsets or '{}'} ({total} records) into schema {schema}"
    )
    started = last = time.monotonic()

    def on_batch(stats: SinkStats) -> None:
        nonlocal last
        if time.monotonic() - last >= PROGRESS_EVERY_S:
            last = time.monotonic()
            done = stats.posted + stats.replayed + stats.rejected
            progress(f"  {done}/{total} records, {stats.posted} fills posted")

    sink = LedgerSink(
        settings,
        SinkOptions(
            schema=schema,
            group_id=group_id,
            batch_max=batch_max,
            publish=False,
            stop_at=dict(live_offsets),
        ),
        on_batch=on_batch,
    )
    if live_offsets:
        sink.run()
    stats = sink.stats
    progress(
        f"  replayed {stats.posted} fills ({stats.replayed} replays, {stats.rejected} "
        f"rejected) in {time.monotonic() - started:.1f} s; comparing"
    )
