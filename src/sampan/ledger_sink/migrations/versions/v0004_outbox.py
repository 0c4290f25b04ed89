"""The transactional outbox: every journal entry is relayed to `ledger.postings` exactly once.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29

- `outbox`: one row per journal entry (a posted fill or a cash movement), written in the
  database transaction that writes the entry, carrying the journal's own id (`entry_id`: the
  `fill_id` or `movement_id`, both from the `fill_ids` sequence) and the id of that writing
  transaction (`txid`, `pg_current_xact_id()`). The relay (`relay.py`) publishes entries in
  `(txid, entry_id)` order, and only those whose transaction is older than every transaction
  still running (`pg_snapshot_xmin`), so the order never has a gap that a late commit fills
  later: the position of the last entry on the topic is the relay's whole progress.
- Rows are immutable (a trigger refuses changes) and kept: one small row per entry.
- The entries posted before this revision are backfilled, in entry id order, as written by
  this migration's transaction, so the topic holds the whole ledger.
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE TABLE outbox ("
        " entry_id bigint PRIMARY KEY,"
        " kind text NOT NULL CONSTRAINT outbox_kind CHECK (kind IN ('fill', 'cash')),"
        " txid xid8 NOT NULL DEFAULT pg_current_xact_id())"
    )
    op.execute("CREATE INDEX outbox_order ON outbox (txid, entry_id)")
    op.execute(
        "INSERT INTO outbox (entry_id, kind) SELECT fill_id, 'fill' FROM fills "
        "UNION ALL SELECT movement_id, 'cash' FROM cash_movements ORDER BY 1"
    )
    op.execute(
        "CREATE TRIGGER outbox_immutable BEFORE UPDATE OR DELETE OR TRUNCATE "
        "ON outbox FOR EACH STATEMENT EXECUTE FUNCTION refuse_change()"
    )


def downgrade() -> None:
    op.execute("DROP TABLE outbox")
