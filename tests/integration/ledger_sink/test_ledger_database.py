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


def test_the_journal_is_immutable(env_settings: Settings, schema: str) -> None:
    with _connect(env_settings, schema) as conn:
        conn.execute(
            "INSERT INTO transfers (id, debit_account, credit_account, asset, amount, reason, "
            "fill_ref, ts_event_ns) VALUES ('X:1:cash', 'A', 'B', 'HKD', 5, 'consideration', "
            "'X:1', 0)"
        )
        conn.commit()
        for statement in (
            "UPDATE transfers SET amount = 6",
            "DELETE FROM transfers",
            "TRUNCATE transfers",
        ):
            with pytest.raises(psycopg.errors.RestrictViolation, match="immutable"):
                conn.execute(statement)
            conn.rollback()
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                "INSERT INTO transfers (id, debit_account, credit_account, asset, amount, "
                "reason, fill_ref, ts_event_ns) VALUES ('X:2:cash', 'A', 'B', 'HKD', 0, "
                "'consideration', 'X:2', 0)"
            )
