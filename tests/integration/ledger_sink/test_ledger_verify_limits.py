"""`sampan ledger verify` reports every member account beyond its limits: cash below minus its
credit line, or equity below its cut-loss level."""

from __future__ import annotations

import psycopg
import pytest
from conftest import run_cli

from sampan.config import Settings
from sampan.ledger_sink import db
from sampan.ledger_sink.cash import CashMovement, CashReason, Direction
from sampan.ledger_sink.intake import make_item
from sampan.ledger_sink.movements import post_movement
from sampan.ledger_sink.rules import default_schedule
from sampan.ledger_sink.store import Source, post_batch
from sampan.schemas import registry
from sampan.tools.bench.ledger import synthetic_fills

pytestmark = pytest.mark.integration

# (account, deposit, credit line, cut-loss level), cents
ACCOUNTS = (
    ("OVER", 1_000_000, 0, 0),  # HK$10,000 buys HK$50,000 of shares: beyond its credit line
    ("CUT", 10**9, 0, 10**9),  # HK$10m less the charges on a buy: below its cut-loss level
    ("FINE", 10**9, 10**6, 0),  # sells what it does not hold, and may
)


def test_verify_reports_accounts_beyond_their_limits(env_settings: Settings, schema: str) -> None:
    with db.connect(env_settings, schema) as conn:
        for account, cash, _, _ in ACCOUNTS:
            movement = CashMovement(
                f"open-{account}", account, Direction.DEPOSIT, cash, CashReason.OPENING, 1
            )
            assert post_movement(conn, movement, "M1").posted
        for account, _, credit, cut_loss in ACCOUNTS:
            conn.execute(
                "UPDATE accounts SET credit_line_cents = %s, cut_loss_cents = %s, "
                "allow_short = true WHERE account = %s",
                (credit, cut_loss, account),
            )
        conn.commit()
        base = next(synthetic_fills(1, seed=9, hkex_every=0))
        items = []
        for offset, buyer in enumerate(("OVER", "CUT")):
            record = base | {
                "exec_id": f"L{offset}",
                "security": 700,
                "price_e3": 500_000,
                "qty": 100,
                "buy_account": buyer,
                "buy_member": "M1",
                "sell_account": "FINE",
                "sell_member": "M1",
            }
            value = registry().encode("Fill", record)
            items.append(make_item(0, offset, buyer.encode(), value, default_schedule()))
        source = Source("ledger_sink", env_settings.topic("fills"))
        assert post_batch(conn, source, items, set(), lambda rejected: None).posted == 2

    verified = run_cli("ledger", "verify")
    assert verified.returncode == 1, verified.stdout + verified.stderr
    with psycopg.connect(env_settings.database_url, options=f"-c search_path={schema}") as conn:
        row = conn.execute(
            "SELECT balance FROM balances WHERE account = 'OVER' AND asset = 'HKD'"
        ).fetchone()
    assert row is not None and row[0] < 0
    assert (
        f"member account OVER has cash {row[0]} cents, beyond its credit line of 0 cents"
        in verified.stdout
    ), verified.stdout
    assert "member account CUT has equity" in verified.stdout
    assert "below its cut-loss level of 1000000000 cents" in verified.stdout
    assert "FINE" not in verified.stdout
    assert "[7/7] member accounts within their limits: 2 problem(s)" in verified.stderr
