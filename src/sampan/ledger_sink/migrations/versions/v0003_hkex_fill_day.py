"""HKEX fill identities carry the trading day: `HKEX:<YYYY-MM-DD>:<exec_id>`.

Revision ID: 0003
Revises: 0002
Create Date: 2025-01-03

HKEX ExecIDs are unique only within a trading day, so `HKEX:<exec_id>` (UNIQUE forever) made
the second day's fills conflict with the first day's. rules.Fill.ref now qualifies an HKEX
fill with the Hong Kong calendar day of its `ts_ns`; this revision rewrites the refs already
posted the same way (in `fills` and `last_prices`), so a replay of an old fill is still a
replay and `rebuild` compares like with like. The `journal` view derives its ids from
`fill_ref`, so it follows. `fills` is immutable: its trigger is disabled for this one
statement, inside the migration's transaction. INTERNAL refs are unchanged.
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# The Hong Kong day of ts_event_ns, in integer arithmetic as in
# sampan.market.calendar.trading_day_iso (UTC+8, no daylight saving time).
_DAY = (
    "to_char(date '1970-01-01' + "
    "floor((ts_event_ns + 28800000000000)::numeric / 86400000000000)::int, 'YYYY-MM-DD')"
)
_OLD_HKEX = "fill_ref LIKE 'HKEX:%' AND fill_ref !~ '^HKEX:[0-9]{4}-[0-9]{2}-[0-9]{2}:'"


def _rewrite(new_ref: str, where: str) -> None:
    # Both fragments are constants of this module, never input: nothing to inject.
    op.execute("ALTER TABLE fills DISABLE TRIGGER fills_immutable")
    op.execute(f"UPDATE fills SET fill_ref = {new_ref} WHERE {where}")  # noqa: S608
    op.execute("ALTER TABLE fills ENABLE TRIGGER fills_immutable")
    op.execute(f"UPDATE last_prices SET fill_ref = {new_ref} WHERE {where}")  # noqa: S608


def upgrade() -> None:
    _rewrite(f"'HKEX:' || {_DAY} || ':' || substr(fill_ref, 6)", _OLD_HKEX)


def downgrade() -> None:
    # Fails on the UNIQUE fill_ref if two days posted the same ExecID: the old identity
    # cannot hold both, which is why this revision exists.
    _rewrite(
        "'HKEX:' || substr(fill_ref, 17)",
        "fill_ref ~ '^HKEX:[0-9]{4}-[0-9]{2}-[0-9]{2}:'",
    )
