"""`post_batch` on a real schema: any account name survives binary COPY, a replay posts
nothing, a changed fill is rejected, and verify finds the ledger sound after each batch."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import psycopg
import pytest

from sampan.config import Settings
from sampan.ledger_sink import db
from sampan.ledger_sink.audit import verify
from sampan.ledger_sink.intake import make_item
from sampan.ledger_sink.rules import default_schedule
from sampan.ledger_sink.store import Item, Rejected, Source, post_batch
from sampan.schemas import registry
from sampan.tools.bench.ledger import synthetic_fills

pytestmark = pytest.mark.integration


def assert_sound(env_settings: Settings, schema: str) -> None:
    """`verify` finds the journal sound; the synthetic fills are unfunded, so accounts beyond
    their credit line are the only problems it may report."""
    problems = verify(env_settings, schema, lambda _: None)
    assert [p for p in problems if "beyond its credit line" not in p] == []


SOURCE = Source("test", "fills")
AWKWARD = "ACC\t\\N\n\r\\x"  # COPY text's separators, escapes and NULL marker


def _items(records: Sequence[dict[str, object]], first_offset: int = 0) -> list[Item]:
    return [
        make_item(0, first_offset + n, b"k", registry().encode("Fill", r), default_schedule())
        for n, r in enumerate(records)
    ]


def test_post_replay_and_conflict(env_settings: Settings, schema: str) -> None:
    records = list(synthetic_fills(50, seed=11))
    records[0] = records[0] | {"buy_account": AWKWARD, "venue": "INTERNAL"}
    rejected: list[Rejected] = []
    known: set[str] = set()
    with db.connect(env_settings, schema) as conn:
        first = post_batch(conn, SOURCE, _items(records), known, rejected.extend)
        assert (first.posted, first.replayed, rejected) == (50, 0, [])
        assert_sound(env_settings, schema)

        changed = records[1] | {"qty": int(str(records[1]["qty"])) + 100}
        again = post_batch(conn, SOURCE, _items(records, first_offset=50), known, rejected.extend)
        assert (again.posted, again.replayed, again.transfers, rejected) == (0, 50, 0, [])
        post_batch(conn, SOURCE, _items([changed], first_offset=100), known, rejected.extend)
        assert [r.offset for r in rejected] == [100]
        assert "already in the ledger" in rejected[0].error

        ref = f"INTERNAL:{records[0]['exec_id']}"
        rows = conn.execute(
            "SELECT id, debit_account FROM journal WHERE fill_ref = %s AND reason = %s",
            (ref, "consideration"),
        ).fetchall()
        assert rows == [(f"{ref}:cash", AWKWARD)]
        offsets = conn.execute("SELECT next_offset FROM consumer_offsets").fetchall()
        assert offsets == [(101,)]
    assert_sound(env_settings, schema)


HK_MIDNIGHT_NS = 1_750_003_200 * 10**9  # 2025-06-16 00:00 in Hong Kong


def _hkex_fill(exec_id: str, ts_ns: int) -> dict[str, object]:
    record = next(synthetic_fills(1, seed=5))
    return record | {
        "venue": "HKEX",
        "exec_id": exec_id,
        "buy_account": "HKEX.CLEARING",
        "buy_member": "HKEX",
        "sell_account": "ACC0001",
        "sell_member": "M01",
        "ts_ns": ts_ns,
    }


def test_the_same_hkex_exec_id_on_two_trading_days_posts_twice(
    env_settings: Settings, schema: str
) -> None:
    """HKEX restarts ExecIDs every day: day 2's first ExecID equals day 1's, and both post."""
    day1 = _hkex_fill("10000000001", HK_MIDNIGHT_NS - 10**9)
    day2 = _hkex_fill("10000000001", HK_MIDNIGHT_NS + 3_600 * 10**9)
    rejected: list[Rejected] = []
    known: set[str] = set()
    with db.connect(env_settings, schema) as conn:
        first = post_batch(conn, SOURCE, _items([day1]), known, rejected.extend)
        second = post_batch(conn, SOURCE, _items([day2], first_offset=1), known, rejected.extend)
        assert (first.posted, second.posted, rejected) == (1, 1, [])
        again = post_batch(conn, SOURCE, _items([day1, day2], 2), known, rejected.extend)
        assert (again.posted, again.replayed, rejected) == (0, 2, [])
        refs = conn.execute("SELECT fill_ref FROM fills ORDER BY 1").fetchall()
        assert refs == [("HKEX:2025-06-15:10000000001",), ("HKEX:2025-06-16:10000000001",)]
        ids = conn.execute("SELECT id FROM journal WHERE leg = 2 ORDER BY 1").fetchall()
        assert ids == [(f"{ref}:shares",) for (ref,) in refs]
    assert_sound(env_settings, schema)


def test_the_migration_adds_the_day_to_hkex_refs_posted_before(
    env_settings: Settings, schema: str
) -> None:
    """A ledger posted under `HKEX:<exec_id>` is rewritten to the new identity, so replaying
    its old fills is still a replay; INTERNAL refs stay."""
    old = f"{schema}_old"
    db.drop_schema(env_settings, old)
    db.migrate(env_settings, old, "0002")
    try:
        hkex = _hkex_fill("10000000007", HK_MIDNIGHT_NS + 10**9)
        internal = next(synthetic_fills(1, seed=6, hkex_every=0))
        with db.connect(env_settings, old) as conn:
            for fill_id, (record, ref) in enumerate(
                ((hkex, "HKEX:10000000007"), (internal, f"INTERNAL:{internal['exec_id']}")), 1
            ):
                item = _items([record])[0]
                conn.execute(
                    "INSERT INTO fills (fill_id, fill_ref, digest, security, price_e3, qty, "
                    "ts_event_ns, source_partition, source_offset) "
                    "VALUES (%s, %s, %s, 1, 1, 1, %s, 0, 0)",
                    (fill_id, ref, item.digest, record["ts_ns"]),
                )
            conn.execute(
                "INSERT INTO last_prices VALUES (1, 1, %s, 'HKEX:10000000007')", (hkex["ts_ns"],)
            )
            conn.commit()
        assert db.migrate(env_settings, old, "0003") == "0003"
        with db.connect(env_settings, old) as conn:
            refs = conn.execute("SELECT fill_ref FROM fills ORDER BY fill_id").fetchall()
            assert refs == [
                ("HKEX:2025-06-16:10000000007",),
                (f"INTERNAL:{internal['exec_id']}",),
            ]
            assert conn.execute("SELECT fill_ref FROM last_prices").fetchall() == [refs[0]]
        # 0004 puts the entries already posted in the outbox, so the relay publishes them too.
        assert db.migrate(env_settings, old) == db.head_revision()
        with db.connect(env_settings, old) as conn:
            backfilled = conn.execute("SELECT entry_id, kind FROM outbox ORDER BY entry_id")
            assert backfilled.fetchall() == [(1, "fill"), (2, "fill")]
            replay = post_batch(conn, SOURCE, _items([hkex, internal]), set(), lambda r: None)
            assert (replay.posted, replay.replayed) == (0, 2)
            with pytest.raises(psycopg.errors.RestrictViolation, match="immutable"):
                conn.execute("UPDATE fills SET qty = 2")  # still immutable
    finally:
        db.drop_schema(env_settings, old)


def test_two_sinks_opening_one_position_both_count(env_settings: Settings, schema: str) -> None:
    """Sink A has read (and not found) ACC0001's position when sink B posts a trade on it;
    A's commit must not erase B's quantity. B runs while A is between its read and its writes
    (A's dead letter callback); with the position row locked, B waits for A instead."""
    buy_a = _hkex_fill("1", HK_MIDNIGHT_NS) | {
        "buy_account": "ACC0001",
        "buy_member": "M01",
        "sell_account": "HKEX.CLEARING",
        "sell_member": "HKEX",
        "qty": 100,
    }
    buy_b = buy_a | {"exec_id": "2", "qty": 300}
    undecodable = make_item(0, 0, b"k", b"\x00garbage", default_schedule())
    results: list[int] = []

    def sink_b() -> None:
        with db.connect(env_settings, schema) as conn_b:
            result = post_batch(conn_b, SOURCE, _items([buy_b], 10), set(), lambda r: None)
            results.append(result.posted)

    thread = threading.Thread(target=sink_b)

    def between_read_and_write(_rejected: Sequence[Rejected]) -> None:
        thread.start()
        thread.join(2.0)  # without the fix B finishes here; with it, B waits for A's commit

    with db.connect(env_settings, schema) as conn:
        items = [undecodable, *_items([buy_a], 1)]
        assert post_batch(conn, SOURCE, items, set(), between_read_and_write).posted == 1
    thread.join(30.0)
    assert results == [1]
    with db.connect(env_settings, schema) as conn:
        qty = conn.execute("SELECT qty FROM positions WHERE account = 'ACC0001'").fetchall()
    assert qty == [(400,)]
    assert_sound(env_settings, schema)
