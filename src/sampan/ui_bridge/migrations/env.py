"""Alembic environment of the users schema: migrates one schema on a connection given by the caller.

`sampan.ui_bridge.store.migrate` passes the connection and the schema name in
`config.attributes`; the schema is created if missing and put first on the search path, so the
migrations create unqualified tables inside it, and Alembic's version table lives there too.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

config = context.config
connection = config.attributes["connection"]
schema = config.attributes["schema"]

connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
connection.execute(text(f'SET search_path TO "{schema}"'))
context.configure(connection=connection, version_table_schema=schema, target_metadata=None)
with context.begin_transaction():
    context.run_migrations()
