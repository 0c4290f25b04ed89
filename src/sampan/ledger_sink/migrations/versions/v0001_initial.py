"""The ledger's first schema: reference data, the journal, balances, positions, offsets.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Money columns are BIGINT with the unit in the name (`_cents`, `_e3`); there is no float or
numeric column. The journal (`transfers`), `fills` and `legs` refuse UPDATE, DELETE and
TRUNCATE. A deferred constraint trigger on `balances` makes a commit fail when any asset's
balances do not sum to zero (every transfer debits one account and credits another by the same
amount, so a correct ledger always sums to zero per asset).

The journal is lean because it is most of the rows written (about eleven per fill):
- a fill is identified by `fills.fill_ref` (`venue:exec_id`, UNIQUE: the idempotency key,
  checked once per fill) and numbered by `fills.fill_id`, a BIGINT the sink takes from the
  `fill_ids` sequence;
- a transfer is identified by (`fill_id`, `leg`), a SMALLINT named in `legs`; what the fill
  already says (event time, posting time) is not repeated per transfer;
- the journal has no unique index (a fill's transfers are written only in the transaction
  that inserts its `fills` row, so the unique fill_ref covers them; `sampan ledger verify`
  checks that no (fill_id, leg) repeats and every transfer has its fill), only a BRIN index on
  `fill_id`, which costs little to maintain because fill ids grow;
- the `journal` view shows transfers as readable rows (`id` = `venue:exec_id:leg_name`).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# The leg codes of rules.py, frozen here as a migration must be; a unit test compares them.
LEGS: tuple[tuple[int, str, str], ...] = (
    (1, "cash", "consideration"),
    (2, "shares", "delivery"),
    (11, "buy.stamp_duty", "stamp_duty"),
    (12, "buy.trading_fee", "trading_fee"),
    (13, "buy.sfc_levy", "sfc_levy"),
    (14, "buy.afrc_levy", "afrc_levy"),
    (15, "buy.commission", "commission"),
    (21, "sell.stamp_duty", "stamp_duty"),
    (22, "sell.trading_fee", "trading_fee"),
    (23, "sell.sfc_levy", "sfc_levy"),
    (24, "sell.afrc_levy", "afrc_levy"),
    (25, "sell.commission", "commission"),
)

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_NOW = sa.text("now()")


def _tables() -> None:
    op.create_table(
        "members",
        sa.Column("member", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
    )
    op.create_table(
        "users",
        sa.Column("user_id", sa.Text, primary_key=True),
        sa.Column("member", sa.Text, sa.ForeignKey("members.member"), nullable=False),
        sa.Column("name", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
    )
    op.create_table(
        "accounts",
        sa.Column("account", sa.Text, primary_key=True),
        sa.Column("member", sa.Text, sa.ForeignKey("members.member"), nullable=False),
        # member: a trading account; exchange: HKEX clearing; charge: receives one charge.
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("credit_line_cents", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("cut_loss_cents", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("allow_short", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        sa.CheckConstraint("kind IN ('member', 'exchange', 'charge')", name="accounts_kind"),
        sa.CheckConstraint("credit_line_cents >= 0", name="accounts_credit_line"),
    )
    op.create_table(
        "instruments",
        sa.Column("security", sa.Integer, primary_key=True),
        sa.Column("name", sa.Text, nullable=False, server_default=""),
        sa.Column("board_lot", sa.Integer, nullable=False, server_default="0"),
    )
    op.execute("CREATE SEQUENCE fill_ids")
    op.create_table(
        "fills",
        sa.Column("fill_id", sa.BigInteger, primary_key=True),  # from the fill_ids sequence
        # venue:exec_id; "C" collation: compared bytewise, cheaper to index than the default.
        sa.Column("fill_ref", sa.Text(collation="C"), nullable=False, unique=True),
        sa.Column("digest", sa.LargeBinary, nullable=False),
        sa.Column("security", sa.Integer, nullable=False),
        sa.Column("price_e3", sa.BigInteger, nullable=False),
        sa.Column("qty", sa.BigInteger, nullable=False),
        sa.Column("ts_event_ns", sa.BigInteger, nullable=False),
        sa.Column("source_partition", sa.Integer, nullable=False),
        sa.Column("source_offset", sa.BigInteger, nullable=False),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
    )
    op.create_table(
        "legs",
        sa.Column("leg", sa.SmallInteger, primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("reason", sa.Text, nullable=False),
    )
    op.bulk_insert(
        sa.table("legs", sa.column("leg"), sa.column("name"), sa.column("reason")),
        [{"leg": leg, "name": name, "reason": reason} for leg, name, reason in LEGS],
    )
    op.create_table(
        "transfers",
        sa.Column("fill_id", sa.BigInteger, nullable=False),
        sa.Column("leg", sa.SmallInteger, nullable=False),
        sa.Column("debit_account", sa.Text, nullable=False),
        sa.Column("credit_account", sa.Text, nullable=False),
        sa.Column("asset", sa.Text, nullable=False),  # HKD or a security code
        sa.Column("amount", sa.BigInteger, nullable=False),  # cents for HKD, shares otherwise
        sa.CheckConstraint("amount > 0", name="transfers_amount_positive"),
        sa.CheckConstraint("debit_account <> credit_account", name="transfers_two_accounts"),
    )
    op.execute("CREATE INDEX transfers_fill_id ON transfers USING brin (fill_id)")
    op.execute(
        "CREATE VIEW journal AS SELECT f.fill_ref || ':' || l.name AS id, t.debit_account, "
        "t.credit_account, t.asset, t.amount, l.reason, f.fill_ref, f.ts_event_ns, "
        "f.posted_at, t.fill_id, t.leg "
        "FROM transfers t JOIN fills f USING (fill_id) JOIN legs l USING (leg)"
    )
    op.create_table(
        "balances",
        sa.Column("account", sa.Text, primary_key=True),
        sa.Column("asset", sa.Text, primary_key=True),
        sa.Column("balance", sa.BigInteger, nullable=False),  # credits less debits
    )
    op.create_table(
        "positions",
        sa.Column("account", sa.Text, primary_key=True),
        sa.Column("security", sa.Integer, primary_key=True),
        sa.Column("qty", sa.BigInteger, nullable=False),
        sa.Column("cost_e3", sa.BigInteger, nullable=False),
        sa.Column("realised_pnl_e3", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "last_prices",
        sa.Column("security", sa.Integer, primary_key=True),
        sa.Column("price_e3", sa.BigInteger, nullable=False),
        sa.Column("ts_event_ns", sa.BigInteger, nullable=False),
        sa.Column("fill_ref", sa.Text, nullable=False),
    )
    # The router will maintain open-order holds here; until then every hold is zero.
    op.create_table(
        "holds",
        sa.Column("account", sa.Text, primary_key=True),
        sa.Column("holds_cents", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_table(
        "consumer_offsets",
        sa.Column("group_id", sa.Text, primary_key=True),
        sa.Column("topic", sa.Text, primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True),
        sa.Column("next_offset", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
    )


_TRIGGERS = """
CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is immutable: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END $$;

CREATE TRIGGER transfers_immutable BEFORE UPDATE OR DELETE OR TRUNCATE ON transfers
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER fills_immutable BEFORE UPDATE OR DELETE OR TRUNCATE ON fills
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER legs_immutable BEFORE UPDATE OR DELETE OR TRUNCATE ON legs
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- Runs at commit for every changed balance row; the first run of a transaction checks every
-- asset and marks the transaction done, so the rest return at once.
CREATE FUNCTION check_balanced() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
    bad record;
BEGIN
    IF current_setting('sampan.ledger_balanced_tx', true) = txid_current()::text THEN
        RETURN NULL;
    END IF;
    PERFORM set_config('sampan.ledger_balanced_tx', txid_current()::text, true);
    SELECT asset, sum(balance) AS total INTO bad
        FROM balances GROUP BY asset HAVING sum(balance) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger unbalanced: asset % sums to %', bad.asset, bad.total
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER balances_sum_to_zero AFTER INSERT OR UPDATE OR DELETE ON balances
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION check_balanced();
"""


def upgrade() -> None:
    _tables()
    op.execute(_TRIGGERS)


def downgrade() -> None:
    op.execute("DROP VIEW journal")
    for table in (
        "consumer_offsets",
        "holds",
        "last_prices",
        "positions",
        "balances",
        "transfers",
        "legs",
        "fills",
        "instruments",
        "accounts",
        "users",
        "members",
    ):
        op.drop_table(table)
    op.execute(
        "DROP SEQUENCE fill_ids; DROP FUNCTION check_balanced(); DROP FUNCTION refuse_change();"
    )
