"""`sampan ledger rebuild --from-topics`: the ledger rebuilt from ledger.postings alone.

Reads every committed `LedgerEntry` on ledger.postings (read_committed, to the end the broker
reports) and writes, into a fresh scratch schema, the journal exactly as the topic carries it:
each entry's `fills` or `cash_movements` row under its own entry id, its transfers, the
accounts they name; then the state the journal implies: balances (credits less debits), member
positions (each delivery applied in the order read), last prices (the newest fill of each
security). Nothing is read from PostgreSQL's live schema to build it, and no posting rule runs:
what is compared is what the topic holds.

It then compares with the live ledger, in one repeatable-read snapshot: first that the topic
holds every entry the live outbox holds, each once (an entry repeated on the topic is a
problem: readers must never see one twice); then table by table, row by row in key order
(`audit.compare`), the journal, fills, cash movements, non-zero balances, positions (quantity
and net amount paid, as the replay rebuild compares them), last prices and the accounts the
journal names (account, member, kind; limits come from reference.accounts, not the ledger).

Limits: the live ledger must not move while it is compared (stop the sink and the relay, or
let the relay catch up and nothing post): a live ledger ahead of the topic is reported as
BEHIND with the number of entries the topic lacks. Memory holds the ids of the entries read
and the balances and positions (bounded by accounts x assets), never the journal itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sampan.config import Settings
from sampan.ledger_sink import db, relay
from sampan.ledger_sink.positions import Position, apply_trade
from sampan.ledger_sink.rules import LEG_SHARES
from sampan.ledger_sink.store import Conn

BATCH_ENTRIES = 2_000
Progress = Callable[[str], None]

# What is compared, as `audit.compare` takes it: (table, columns, order, filter).
COMPARED: tuple[tuple[str, str, str, str], ...] = (
    (
        "journal",
        "id, debit_account, credit_account, asset, amount, reason, fill_ref, ts_event_ns",
        "fill_ref, leg",
        "",
    ),
    ("fills", "fill_ref, digest, security, price_e3, qty, ts_event_ns", "fill_ref", ""),
    (
        "cash_movements",
        "ref, account, member, kind, amount_cents, reason, funding_account, ts_ns",
        "ref",
        "",
    ),
    ("balances", "account, asset, balance", "account, asset", "balance <> 0"),
    (
        "positions",
        "account, security, qty, cost_e3 - realised_pnl_e3 AS net_paid_e3",
        "account, security",
        "",
    ),
    ("last_prices", "security, price_e3, ts_event_ns, fill_ref", "security", ""),
    (
        "accounts",
        "account, member, kind",
        "account",
        "account IN (SELECT debit_account FROM transfers UNION SELECT credit_account "
        "FROM transfers)",
    ),
)


class _Rebuilt:
    """The state the journal implies, accumulated entry by entry."""

    def __init__(self) -> None:
        self.balances: dict[tuple[str, str], int] = {}
        self.positions: dict[tuple[str, int], Position] = {}
        self.last: dict[int, tuple[int, str, int]] = {}  # security → (ts_ns, ref, price_e3)
        self.kinds: dict[str, str] = {}

    def apply(self, record: dict[str, Any]) -> None:
        for a in record["accounts"]:
            self.kinds[a["account"]] = a["kind"]
        for p in record["postings"]:
            for account, sign in ((p["credit_account"], 1), (p["debit_account"], -1)):
                key = (account, p["asset"])
                self.balances[key] = self.balances.get(key, 0) + sign * p["amount"]
        fill = record["fill"]
        if fill is None:
            return
        for p in record["postings"]:
            if p["leg"] != LEG_SHARES:
                continue
            for account, signed in (
                (p["credit_account"], p["amount"]),
                (p["debit_account"], -p["amount"]),
            ):
                if self.kinds[account] == "member":
                    key = (account, fill["security"])
                    position = self.positions.get(key, Position())
                    self.positions[key] = apply_trade(position, signed, fill["price_e3"])
        newest = (record["ts_ns"], record["entry_ref"], fill["price_e3"])
        seen = self.last.get(fill["security"])
        if seen is None or newest[:2] > seen[:2]:
            self.last[fill["security"]] = newest


def _write_entries(conn: Conn, records: Sequence[dict[str, Any]]) -> None:
    """The journal rows of `records`, in the caller's transaction."""
    accounts = {(a["account"], a["member"], a["kind"]) for r in records for a in r["accounts"]}
    rows = sorted(accounts)
    conn.execute(
        "INSERT INTO members (member) SELECT DISTINCT m FROM unnest(%s::text[]) AS m "
        "ON CONFLICT DO NOTHING",
        ([r[1] for r in rows],),
    )
    conn.execute(
        "INSERT INTO accounts (account, member, kind) "
        "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]) ON CONFLICT DO NOTHING",
        ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]),
    )
    with conn.cursor() as cur:
        fills = [r for r in records if r["fill"] is not None]
        cur.executemany(
            "INSERT INTO fills (fill_id, fill_ref, digest, security, price_e3, qty, ts_event_ns, "
            "source_partition, source_offset) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    r["entry_id"], r["entry_ref"], r["fill"]["digest"], r["fill"]["security"],
                    r["fill"]["price_e3"], r["fill"]["qty"], r["ts_ns"],
                    r["fill"]["source_partition"], r["fill"]["source_offset"],
                )
                for r in fills
            ],
        )  # fmt: skip
        movements = [r for r in records if r["movement"] is not None]
        cur.executemany(
            "INSERT INTO cash_movements (movement_id, ref, account, member, kind, amount_cents, "
            "reason, funding_account, ts_ns) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    r["entry_id"], m["ref"], m["account"], m["member"], m["direction"],
                    m["amount_cents"], m["reason"], m["funding_account"], r["ts_ns"],
                )
                for r in movements
                for m in (r["movement"],)
            ],
        )  # fmt: skip
        cur.executemany(
            "INSERT INTO transfers (fill_id, leg, debit_account, credit_account, asset, amount) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            [
                (r["entry_id"], p["leg"], p["debit_account"], p["credit_account"], p["asset"],
                 p["amount"])
                for r in records
                for p in r["postings"]
            ],
        )  # fmt: skip


def _write_state(conn: Conn, state: _Rebuilt) -> None:
    balances = sorted(state.balances.items())
    conn.execute(
        "INSERT INTO balances (account, asset, balance) "
        "SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[])",
        ([k[0] for k, _ in balances], [k[1] for k, _ in balances], [v for _, v in balances]),
    )
    positions = sorted(state.positions.items())
    conn.execute(
        "INSERT INTO positions (account, security, qty, cost_e3, realised_pnl_e3) "
        "SELECT * FROM unnest(%s::text[], %s::int[], %s::bigint[], %s::bigint[], %s::bigint[])",
        (
            [k[0] for k, _ in positions],
            [k[1] for k, _ in positions],
            [p.qty for _, p in positions],
            [p.cost_e3 for _, p in positions],
            [p.realised_pnl_e3 for _, p in positions],
        ),
    )
    last = sorted(state.last.items())
    conn.execute(
        "INSERT INTO last_prices (security, price_e3, ts_event_ns, fill_ref) "
        "SELECT * FROM unnest(%s::int[], %s::bigint[], %s::bigint[], %s::text[])",
        (
            [s for s, _ in last],
            [v[2] for _, v in last],
            [v[0] for _, v in last],
            [v[1] for _, v in last],
        ),
    )


def _load(settings: Settings, scratch: str, progress: Progress) -> tuple[set[int], list[str]]:
    """Write every entry on the topic into `scratch`; the ids read and the repeats found."""
    seen: set[int] = set()
    repeats: list[str] = []
    state = _Rebuilt()
    batch: list[dict[str, Any]] = []
    with db.connect(settings, scratch) as conn:
        for partition, offset, record in relay.read_entries(settings):
            if record["entry_id"] in seen:
                repeats.append(
                    f"entry {record['entry_id']} ({record['entry_ref']}) is on "
                    f"{relay.TOPIC} more than once (again at [{partition}]@{offset})"
                )
                continue
            seen.add(record["entry_id"])
            state.apply(record)
            batch.append(record)
            if len(batch) >= BATCH_ENTRIES:
                _write_entries(conn, batch)
                batch = []
        if batch:
            _write_entries(conn, batch)
        _write_state(conn, state)
        conn.commit()
    progress(f"rebuild: {len(seen)} entries from {settings.topic(relay.TOPIC)} into {scratch}")
    return seen, repeats


def rebuild_from_topics(
    settings: Settings,
    live_schema: str,
    scratch_schema: str,
    keep: bool = False,
    progress: Progress | None = None,
) -> list[str]:
    """Rebuild `scratch_schema` from ledger.postings and compare it with `live_schema`; the
    problems found (empty: identical)."""
    from sampan.ledger_sink.audit import AUDIT_STATEMENT_TIMEOUT_MS, compare, print_progress

    say = progress or print_progress
    assert live_schema != scratch_schema, "the scratch schema must differ from the live one"
    db.require_migrated(settings, live_schema)
    db.drop_schema(settings, scratch_schema)
    db.migrate(settings, scratch_schema)
    try:
        seen, problems = _load(settings, scratch_schema, say)
        with db.connect(
            settings, live_schema, statement_timeout_ms=AUDIT_STATEMENT_TIMEOUT_MS
        ) as live:
            live.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            row = live.execute(
                "SELECT count(*), count(*) FILTER (WHERE NOT entry_id = ANY(%s)) FROM outbox",
                (sorted(seen),),
            ).fetchone()
            total, missing = (int(row[0]), int(row[1])) if row else (0, 0)
            if missing:
                problems.append(
                    f"BEHIND: {missing} of the live ledger's {total} entries are not on "
                    f"{settings.topic(relay.TOPIC)} yet (is the relay running?)"
                )
            elif len(seen) > total:
                problems.append(
                    f"{len(seen) - total} entries on {settings.topic(relay.TOPIC)} are not in "
                    "the live ledger"
                )
            if not problems:
                with db.connect(
                    settings, scratch_schema, statement_timeout_ms=AUDIT_STATEMENT_TIMEOUT_MS
                ) as scratch:
                    difference = compare(live, live_schema, scratch, scratch_schema, COMPARED, say)
                if difference:
                    problems.append(difference)
            live.rollback()
    finally:
        if not keep:
            db.drop_schema(settings, scratch_schema)
    return problems
