"""Account limits from reference data, and cash movements (deposits, withdrawals).

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02

- `accounts` gains `enabled` and the origin of its limits: `limits_offset` / `limits_ts_ns`,
  the `reference.accounts` record that last set them (NULL: never set, the account was first
  seen on a fill or a deposit and keeps the defaults). The limits follower only applies a
  record newer than the stored one, so two sinks (or a late batch) cannot roll limits back.
- A new account kind, `funding`: the venue's bank account (`BANK.HKD`), the other side of
  every deposit and withdrawal. Its balance is minus the cash members hold net of trading,
  so it is never positive.
- `cash_movements`: one row per deposit or withdrawal, immutable, its `ref` UNIQUE (the
  idempotency key: posting the same ref again is a no-op). Its `movement_id` comes from the
  same sequence as `fills.fill_id`, so the journal's `fill_id` column names a fill or a cash
  movement unambiguously (it is an entry id); the leg tells which (31 and 32 are movements).
- The `journal` view shows movements too: `id` = `CASH:<ref>:deposit|withdrawal`,
  `fill_ref` = `CASH:<ref>` (fill refs are `venue:exec_id` and no venue is named CASH).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# The leg codes of cash movements in rules.py, frozen here; a unit test compares them.
LEGS: tuple[tuple[int, str, str], ...] = (
    (31, "deposit", "deposit"),
    (32, "withdrawal", "withdrawal"),
)

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_NOW = sa.text("now()")

_JOURNAL_FILLS = (
    "SELECT f.fill_ref || ':' || l.name AS id, t.debit_account, "
    "t.credit_account, t.asset, t.amount, l.reason, f.fill_ref, f.ts_event_ns, "
    "f.posted_at, t.fill_id, t.leg "
    "FROM transfers t JOIN fills f USING (fill_id) JOIN legs l USING (leg)"
)
_JOURNAL_MOVEMENTS = (
    "SELECT 'CASH:' || m.ref || ':' || l.name, t.debit_account, t.credit_account, t.asset, "
    "t.amount, l.reason, 'CASH:' || m.ref, m.ts_ns, m.posted_at, t.fill_id, t.leg "
    "FROM transfers t JOIN cash_movements m ON m.movement_id = t.fill_id "
    "JOIN legs l USING (leg)"
)


def upgrade() -> None:
    op.add_column(
        "accounts", sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true())
    )
    op.add_column("accounts", sa.Column("limits_offset", sa.BigInteger, nullable=True))
    op.add_column("accounts", sa.Column("limits_ts_ns", sa.BigInteger, nullable=True))
    op.drop_constraint("accounts_kind", "accounts", type_="check")
    op.create_check_constraint(
        "accounts_kind", "accounts", "kind IN ('member', 'exchange', 'charge', 'funding')"
    )
    op.create_table(
        "cash_movements",
        sa.Column("movement_id", sa.BigInteger, primary_key=True),  # from fill_ids
        sa.Column("ref", sa.Text(collation="C"), nullable=False, unique=True),
        sa.Column("account", sa.Text, nullable=False),
        sa.Column("member", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),  # deposit | withdrawal
        sa.Column("amount_cents", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),  # a CashReason code
        sa.Column("funding_account", sa.Text, nullable=False),
        sa.Column("ts_ns", sa.BigInteger, nullable=False),  # when the operator asked
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        sa.CheckConstraint("amount_cents > 0", name="cash_movements_amount_positive"),
        sa.CheckConstraint("kind IN ('deposit', 'withdrawal')", name="cash_movements_kind"),
    )
    op.bulk_insert(
        sa.table("legs", sa.column("leg"), sa.column("name"), sa.column("reason")),
        [{"leg": leg, "name": name, "reason": reason} for leg, name, reason in LEGS],
    )
    op.execute(
        "CREATE TRIGGER cash_movements_immutable BEFORE UPDATE OR DELETE OR TRUNCATE "
        "ON cash_movements FOR EACH STATEMENT EXECUTE FUNCTION refuse_change()"
    )
    op.execute(f"CREATE OR REPLACE VIEW journal AS {_JOURNAL_FILLS} UNION ALL {_JOURNAL_MOVEMENTS}")


def downgrade() -> None:
    # The legs table is immutable: codes 31 and 32 stay, named but unused.
    op.execute(f"CREATE OR REPLACE VIEW journal AS {_JOURNAL_FILLS}")
    op.drop_table("cash_movements")
    op.drop_constraint("accounts_kind", "accounts", type_="check")
    op.create_check_constraint(
        "accounts_kind", "accounts", "kind IN ('member', 'exchange', 'charge')"
    )
    for column in ("limits_ts_ns", "limits_offset", "enabled"):
        op.drop_column("accounts", column)
