"""PostgreSQL's own guards: an unbalanced commit fails, the journal is immutable; the ledger's
commands on a schema that was never migrated say what to run."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from concurrent.futures import Future
from pathlib import Path

import psycopg
import pytest

from sampan.config import Settings
from sampan.ledger_sink import db
from sampan.ledger_sink import sink as sink_module

pytestmark = pytest.mark.integration


def _connect(settings: Settings, schema: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(settings.database_url, options=f"-c search_path={schema}")


def test_an_unbalanced_commit_fails(env_settings: Settings, schema: str) -> None:
    with _connect(env_settings, schema) as conn:
        conn.execute("INSERT INTO balances VALUES ('A', 'HKD', 100), ('B', 'HKD', -100)")
        conn.commit()  # balanced: accepted
        conn.execute("UPDATE balances SET balance = balance + 1 WHERE account = 'A'")
        with pytest.raises(psycopg.errors.CheckViolation, match="asset HKD sums to 1"):
            conn.commit()
        row = conn.execute("SELECT balance FROM balances WHERE account = 'A'").fetchone()
        assert row == (100,)


_FILL = (
    "INSERT INTO fills (fill_id, fill_ref, digest, security, price_e3, qty, ts_event_ns, "
    "source_partition, source_offset) VALUES (%s, %s, '\\x00', 700, 1, 1, 0, 0, 0)"
)


def test_the_journal_is_immutable(env_settings: Settings, schema: str) -> None:
    with _connect(env_settings, schema) as conn:
        conn.execute(_FILL, (1, "X:1"))
        conn.execute(
            "INSERT INTO transfers (fill_id, leg, debit_account, credit_account, asset, amount) "
            "VALUES (1, 1, 'A', 'B', 'HKD', 5)"
        )
        conn.commit()
        assert conn.execute("SELECT id, reason FROM journal").fetchall() == [
            ("X:1:cash", "consideration")
        ]
        for statement in (
            "UPDATE transfers SET amount = 6",
            "DELETE FROM transfers",
            "TRUNCATE transfers",
            "UPDATE fills SET qty = 2",
            "DELETE FROM fills",
            "UPDATE legs SET name = 'x'",
        ):
            with pytest.raises(psycopg.errors.RestrictViolation, match="immutable"):
                conn.execute(statement)
            conn.rollback()
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                "INSERT INTO transfers (fill_id, leg, debit_account, credit_account, asset, "
                "amount) VALUES (1, 2, 'A', 'B', '700', 0)"
            )
        conn.rollback()


def test_a_fill_ref_is_posted_once(env_settings: Settings, schema: str) -> None:
    """The idempotency key: a second fill under the same venue:exec_id cannot be inserted."""
    with _connect(env_settings, schema) as conn:
        conn.execute(_FILL, (1, "X:1"))
        conn.commit()
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(_FILL, (2, "X:1"))


def test_ledger_connections_bound_every_wait(env_settings: Settings, schema: str) -> None:
    """Statements, lock waits and a silent peer are all bounded; a lock wait past its bound
    is an error the sink retries on a new connection."""
    with db.connect(env_settings, schema) as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == ("30s",)
        assert conn.execute("SHOW lock_timeout").fetchone() == ("10s",)
        parameters = conn.info.get_parameters()
        assert parameters["keepalives"] == "1"
        assert parameters["tcp_user_timeout"] == str(db.TCP_USER_TIMEOUT_MS)
        conn.execute(_FILL, (1, "X:1"))
        conn.commit()
        conn.execute("SELECT 1 FROM fills FOR UPDATE")
        with db.connect(env_settings, schema, lock_timeout_ms=100) as other:
            with pytest.raises(psycopg.errors.LockNotAvailable) as waited:
                other.execute("SELECT 1 FROM fills FOR UPDATE")
            assert db.is_connection_error(waited.value)
        with db.connect(env_settings, schema, statement_timeout_ms=100) as other:
            with pytest.raises(psycopg.errors.QueryCanceled) as slow:
                other.execute("SELECT pg_sleep(5)")
            assert db.is_connection_error(slow.value)


@pytest.mark.timeout(60)
def test_a_hung_batch_stops_the_sink_with_a_clear_error(
    env_settings: Settings, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The consuming thread never waits for the database worker forever."""
    monkeypatch.setattr(sink_module, "JOB_MARGIN_S", 0.2)
    sink = sink_module.LedgerSink(
        env_settings, sink_module.SinkOptions(schema=schema, db_wait_max_s=0.1, publish=False)
    )
    never: Future[bool] = Future()
    sink._inflight = (never, [])
    with pytest.raises(sink_module.SinkError, match="did not finish a batch of 0 records in 0 s"):
        sink._drain(consumer=None)
    assert sink._stopping


@pytest.mark.parametrize(
    "command",
    [
        ("ledger", "verify"),
        ("ledger", "rebuild"),
        ("ledger", "deposit", "A1", "100", "--ref", "r1"),
    ],
)
def test_commands_on_a_schema_never_migrated_say_what_to_run(
    env_settings: Settings, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]
) -> None:
    name = f"ledger_t{uuid.uuid4().hex[:10]}"  # never migrated, so never created
    monkeypatch.setenv("SAMPAN_LEDGER_SCHEMA", name)
    result = subprocess.run(
        [str(Path(sys.executable).parent / "sampan"), *command],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "sampan ledger migrate" in result.stderr
    assert "Traceback" not in result.stderr and "relation" not in result.stderr
