"""PostgreSQL's own guards: an unbalanced commit fails, the journal is immutable."""

from __future__ import annotations

import psycopg
import pytest

from sampan.config import Settings

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
