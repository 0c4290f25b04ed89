"""Limits from reference.accounts, cash movements, and the audit with both present, on the
real stack with the sink as a process."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from conftest import SinkProcess, run_cli, wait_for

from sampan import topics
from sampan.config import Settings
from sampan.ledger_sink import db
from sampan.ledger_sink.cash import CashMovement, CashReason, Direction
from sampan.ledger_sink.limits import AccountLimits, apply_changes
from sampan.ledger_sink.movements import post_movement
from sampan.ledger_sink.store import Source
from sampan.schemas import registry
from sampan.tools.bench.ledger import produce_fills, synthetic_fills
from sampan.tools.seed import AccountSeed, account_record, fund_seed

pytestmark = pytest.mark.integration


def _publish_accounts(settings: Settings, seeds: Sequence[AccountSeed | tuple[str, None]]) -> None:
    producer = Producer(settings.kafka(**{"acks": "all", "enable.idempotence": True}))
    for seed in seeds:
        if isinstance(seed, AccountSeed):
            value = registry().encode("Account", account_record(seed, time.time_ns()))
            producer.produce(settings.topic("reference.accounts"), value, seed.account.encode())
        else:  # a tombstone
            producer.produce(settings.topic("reference.accounts"), None, seed[0].encode())
    assert producer.flush(30) == 0


def _query(settings: Settings, schema: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with db.connect(settings, schema) as conn:
        return conn.execute(sql, params).fetchall()


def _last_snapshots(settings: Settings) -> dict[str, dict[str, Any]]:
    consumer = Consumer(
        settings.kafka(
            **{
                "group.id": "test-balances",
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
            }
        )
    )
    topic = settings.topic("ledger.balances")
    ends = {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        for p in range(topics.topic("ledger.balances").partitions)
    }
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
    last: dict[str, dict[str, Any]] = {}
    seen = 0
    deadline = time.monotonic() + 30
    while seen < sum(ends.values()) and time.monotonic() < deadline:
        for message in consumer.consume(1000, 0.5):
            if message.error() is None:
                seen += 1
                snap = registry().decode("AccountSnapshot", message.value())
                last[snap["account"]] = snap
    consumer.close()
    return last


def _snapshot_shows(settings: Settings, account: str, **fields: Any) -> Callable[[], bool]:
    def check() -> bool:
        snap = _last_snapshots(settings).get(account)
        return snap is not None and all(snap[k] == v for k, v in fields.items())

    return check


def test_limits_and_deposits_appear_in_snapshots(
    env_settings: Settings, schema: str, sink_process: Callable[..., SinkProcess]
) -> None:
    s = env_settings
    sink = sink_process()
    _publish_accounts(s, [AccountSeed("LIM1", "MX", 0, 3_000_00, 1_500_00, 10**9)])
    wait_for(
        lambda: (
            _query(s, schema, "SELECT limits_offset FROM accounts WHERE account = 'LIM1'") == [(0,)]
        ),
        "the limits of LIM1 in the ledger",
    )
    assert _query(
        s,
        schema,
        "SELECT member, kind, credit_line_cents, cut_loss_cents, allow_short, enabled "
        "FROM accounts WHERE account = 'LIM1'",
    ) == [("MX", "member", 3_000_00, 1_500_00, False, True)]
    # Published by the sink when the limits arrived: no cash yet, so under cut-loss.
    wait_for(
        _snapshot_shows(s, "LIM1", cut_loss_equity_cents=1_500_00, cut_loss_breached=True),
        "the snapshot of LIM1 with its limits",
    )

    deposited = run_cli("ledger", "deposit", "LIM1", "10000", "--ref", "bank-0001")
    assert deposited.returncode == 0, deposited.stdout + deposited.stderr
    assert "cash now 10000 cents" in deposited.stdout
    snap = _last_snapshots(s)["LIM1"]
    assert (snap["cash_cents"], snap["equity_cents"], snap["available_cash_cents"]) == (
        10_000,
        10_000,
        10_000 + 3_000_00,
    )
    assert (snap["credit_line_used_cents"], snap["cut_loss_breached"]) == (0, True)

    # New limits: the sink publishes the account again; then a tombstone disables it.
    _publish_accounts(s, [AccountSeed("LIM1", "MX", 0, 5_000_00, 5_000, 10**9)])
    wait_for(
        _snapshot_shows(
            s,
            "LIM1",
            available_cash_cents=10_000 + 5_000_00,
            cut_loss_equity_cents=5_000,
            cut_loss_breached=False,
        ),
        "the snapshot of LIM1 with its new limits",
    )
    _publish_accounts(s, [("LIM1", None)])
    wait_for(
        lambda: (
            _query(s, schema, "SELECT enabled FROM accounts WHERE account = 'LIM1'") == [(False,)]
        ),
        "the tombstone to disable LIM1",
    )
    assert sink.terminate() == 0
    assert "limits from" in sink.output()


def test_limits_only_move_forward(env_settings: Settings, schema: str) -> None:
    """A late (older) record, e.g. from a second sink, does not roll limits back."""
    source = Source("test", "reference.accounts")
    with db.connect(env_settings, schema) as conn:
        newer = AccountLimits("A1", "M1", 500, 100, False, True, 9, 0)
        older = AccountLimits("A1", "M1", 1, 1, True, False, 4, 0)
        assert apply_changes(conn, source, [newer], {0: 10}) == ["A1"]
        assert apply_changes(conn, source, [older], {0: 5}) == []
        assert conn.execute(
            "SELECT credit_line_cents, allow_short, limits_offset FROM accounts"
        ).fetchall() == [(500, False, 9)]
        assert conn.execute("SELECT next_offset FROM consumer_offsets").fetchall() == [(10,)]


def test_deposits_are_posted_once(env_settings: Settings, schema: str) -> None:
    s = env_settings
    seeds = (
        AccountSeed("SEED1", "M1", 1_000_000_00, 0, 0, 10**9),
        AccountSeed("SEED2", "M2", 250, 0, 0, 10**9),
        AccountSeed("SEED3", "M2", 0, 0, 0, 10**9),  # nothing to fund
    )
    assert fund_seed(s, seeds) == (2, 0)
    assert fund_seed(s, seeds) == (0, 2)  # seeding twice changes nothing

    again = run_cli("ledger", "deposit", "SEED2", "100", "--ref", "x-1")
    assert again.returncode == 0, again.stdout + again.stderr
    replay = run_cli("ledger", "deposit", "SEED2", "100", "--ref", "x-1")
    assert replay.returncode == 0 and "already posted: nothing changed" in replay.stdout
    conflict = run_cli("ledger", "deposit", "SEED2", "101", "--ref", "x-1")
    assert conflict.returncode == 1 and "already used by a different movement" in conflict.stdout
    # A credit line does not make cash withdrawable: 351 cents exceed the 350 of cash.
    with db.connect(s, schema) as conn:
        conn.execute("UPDATE accounts SET credit_line_cents = 10000 WHERE account = 'SEED2'")
        conn.commit()
    too_much = run_cli("ledger", "withdraw", "SEED2", "351", "--ref", "out-1")
    assert too_much.returncode == 1 and "which has 350 cents of cash" in too_much.stdout
    unknown = run_cli("ledger", "deposit", "NEW9", "100", "--ref", "new-1")
    assert unknown.returncode == 1 and "--member" in unknown.stdout
    wrong_member = run_cli("ledger", "deposit", "SEED2", "5", "--ref", "w-1", "--member", "M9")
    assert wrong_member.returncode == 1 and "belongs to member M2" in wrong_member.stdout
    out = run_cli("ledger", "withdraw", "SEED2", "350", "--ref", "out-1")
    assert out.returncode == 0 and "cash now 0 cents" in out.stdout

    # The same ref posted concurrently: one post, one replay.
    def post(_: int) -> bool:
        with db.connect(s, schema) as conn:
            m = CashMovement("race-1", "SEED1", Direction.DEPOSIT, 7, CashReason.TOP_UP, 0)
            return post_movement(conn, m, None).posted

    with ThreadPoolExecutor(4) as pool:
        assert sorted(pool.map(post, range(4))) == [False, False, False, True]

    assert _query(
        s,
        schema,
        "SELECT id, debit_account, credit_account, amount, reason FROM journal ORDER BY id",
    ) == [
        ("CASH:out-1:withdrawal", "SEED2", "BANK.HKD", 350, "withdrawal"),
        ("CASH:race-1:deposit", "BANK.HKD", "SEED1", 7, "deposit"),
        ("CASH:seed:SEED1:opening:deposit", "BANK.HKD", "SEED1", 1_000_000_00, "deposit"),
        ("CASH:seed:SEED2:opening:deposit", "BANK.HKD", "SEED2", 250, "deposit"),
        ("CASH:x-1:deposit", "BANK.HKD", "SEED2", 100, "deposit"),
    ]
    assert _query(s, schema, "SELECT account, balance FROM balances ORDER BY account") == [
        ("BANK.HKD", -1_000_000_07),
        ("SEED1", 1_000_000_07),
        ("SEED2", 0),
    ]
    assert _last_snapshots(s)["SEED1"]["cash_cents"] == 1_000_000_00  # published by the seed
    verified = run_cli("ledger", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_verify_flags_a_forbidden_short_and_rebuild_agrees_with_deposits(
    env_settings: Settings, schema: str, sink_process: Callable[..., SinkProcess]
) -> None:
    s = env_settings
    fills = list(synthetic_fills(300, seed=5, accounts=6))
    # Every synthetic account gets limits and an opening deposit; ACC0001 may not short.
    seeds = tuple(
        AccountSeed(
            f"ACC{n:04d}",
            f"M{n % 10:02d}",
            10**9,
            10**8,
            0,
            10**12,
            allow_short=n != 1,
        )
        for n in range(6)
    )
    _publish_accounts(s, seeds)
    assert fund_seed(s, seeds) == (6, 0)
    produce_fills(s, iter(fills))
    first = sink_process("--batch-max", "50")
    wait_for(
        lambda: (
            _query(s, schema, "SELECT count(*) FROM fills") == [(300,)]
            and _query(s, schema, "SELECT count(*) FROM accounts WHERE limits_offset IS NOT NULL")
            == [(6,)]
        ),
        "the sink to post every fill and every limit",
    )
    first.kill()  # a restart must neither post a deposit again nor lose one
    starts = first.output().count("following ")
    second = sink_process("--batch-max", "50")  # the same log file
    wait_for(lambda: second.output().count("following ") > starts, "the restarted sink")
    assert fund_seed(s, seeds) == (0, 6)
    assert second.terminate() == 0
    assert _query(s, schema, "SELECT count(*), sum(amount_cents) FROM cash_movements") == [
        (6, 6 * 10**9)
    ]

    short = _query(
        s,
        schema,
        "SELECT asset, balance FROM balances WHERE account = 'ACC0001' AND asset <> 'HKD' "
        "AND balance < 0 ORDER BY asset",
    )
    assert short, "the synthetic fills should leave ACC0001 short of something"
    verified = run_cli("ledger", "verify")
    assert verified.returncode == 1
    expected = f"member account ACC0001 has {short[0][1]} {short[0][0]}: short, and allow_short"
    assert expected in verified.stdout, verified.stdout
    assert "ACC0002" not in verified.stdout  # may short

    rebuilt = run_cli("ledger", "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert "identical" in rebuilt.stdout
    assert "6 cash movement(s) posted again" in rebuilt.stderr
    assert "cash_movements: 6 rows identical" in rebuilt.stderr
    assert "limits applied to 6 account(s)" in rebuilt.stderr

    # A deposit the rebuild would not reproduce is a difference.
    with psycopg.connect(s.database_url, options=f"-c search_path={schema}") as conn:
        conn.execute("ALTER TABLE cash_movements DISABLE TRIGGER cash_movements_immutable")
        conn.execute("UPDATE cash_movements SET amount_cents = 1 WHERE account = 'ACC0003'")
    differs = run_cli("ledger", "rebuild")
    assert differs.returncode == 1 and "first difference" in differs.stdout
