"""Connections to the ledger's PostgreSQL schema, migrations, and waiting for the server.

Every connection puts the ledger schema (env `SAMPAN_LEDGER_SCHEMA`, default `ledger`) first
on its search path, so the same SQL serves the live ledger, a test's own schema and the
scratch schema of `rebuild`. Schema names are checked against a strict pattern because they
are spliced into SQL. Nothing waits on the server forever: every connection has a
`statement_timeout`, a `lock_timeout`, TCP keepalives and a `tcp_user_timeout`, so a hung or
vanished server becomes an error (which `is_connection_error` calls worth a retry) within
about half a minute; the audit, which scans whole tables, asks for a longer statement bound. `connect_waiting` retries a refused or lost server with bounded
exponential backoff and logs what it waits for; it gives up after `wait_max_s`.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from sampan.config import Settings
from sampan.errors import ConfigError, SampanError

log = logging.getLogger(__name__)

DEFAULT_SCHEMA = "ledger"
CONNECT_TIMEOUT_S = 5
BACKOFF_INITIAL_S = 0.1
BACKOFF_MAX_S = 2.0
DB_WAIT_MAX_S = 300.0
# A ledger batch takes tens of milliseconds; a statement running 30 s means a stuck server.
STATEMENT_TIMEOUT_MS = 30_000
LOCK_TIMEOUT_MS = 10_000  # another sink holding a batch's rows this long is stuck too
# A peer that vanished without closing (host down, network cut) is noticed by TCP: an idle
# connection is probed after 10 s, every 5 s, 3 times; unacknowledged data fails after 30 s.
KEEPALIVE_IDLE_S = 10
KEEPALIVE_INTERVAL_S = 5
KEEPALIVE_COUNT = 3
TCP_USER_TIMEOUT_MS = 30_000
_RETRIED_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "57014", "55P03"})
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
PACKAGE_DIR = Path(__file__).parent


class DatabaseUnavailable(SampanError):
    """PostgreSQL did not answer within the allowed wait."""


def checked_schema(name: str) -> str:
    if not _SCHEMA_NAME.match(name):
        raise ConfigError(f"ledger schema {name!r} must match {_SCHEMA_NAME.pattern}")
    return name


def ledger_schema() -> str:
    return checked_schema(os.environ.get("SAMPAN_LEDGER_SCHEMA") or DEFAULT_SCHEMA)


def connect(
    settings: Settings,
    schema: str,
    *,
    statement_timeout_ms: int = STATEMENT_TIMEOUT_MS,
    lock_timeout_ms: int = LOCK_TIMEOUT_MS,
) -> psycopg.Connection[tuple[Any, ...]]:
    """A new connection (not autocommit) with `schema` first on the search path, whose every
    statement, lock wait and unacknowledged send is bounded (see the module docstring)."""
    assert statement_timeout_ms > 0 and lock_timeout_ms > 0
    return psycopg.connect(
        settings.database_url,
        connect_timeout=CONNECT_TIMEOUT_S,
        options=(
            f"-c search_path={checked_schema(schema)} "
            f"-c statement_timeout={statement_timeout_ms} -c lock_timeout={lock_timeout_ms}"
        ),
        application_name="sampan-ledger",
        keepalives=1,
        keepalives_idle=KEEPALIVE_IDLE_S,
        keepalives_interval=KEEPALIVE_INTERVAL_S,
        keepalives_count=KEEPALIVE_COUNT,
        tcp_user_timeout=TCP_USER_TIMEOUT_MS,
    )


def is_connection_error(error: BaseException) -> bool:
    """True for errors worth a retry on a new connection: the server is gone or restarting,
    or a statement or lock wait ran past the bound this module sets."""
    if isinstance(error, psycopg.OperationalError):
        return True
    # 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now; 57014
    # query_canceled (statement_timeout), 55P03 lock_not_available (lock_timeout).
    sqlstate = getattr(error, "sqlstate", None)
    return isinstance(error, psycopg.Error) and sqlstate in _RETRIED_SQLSTATES


def wait_backoff(
    what: str,
    attempt: int,
    error: BaseException,
    deadline: float,
    should_stop: Callable[[], bool] = lambda: False,
) -> bool:
    """Sleep before reconnect attempt `attempt`; False when the deadline passed or a stop was
    asked (the caller then gives up)."""
    delay_s = min(BACKOFF_MAX_S, BACKOFF_INITIAL_S * 2 ** min(attempt, 16))
    remaining_s = deadline - time.monotonic()
    if remaining_s <= 0 or should_stop():
        return False
    log.warning(
        "waiting for PostgreSQL (%s): attempt %d failed: %s; retrying in %.1f s, giving up in "
        "%.0f s",
        what,
        attempt + 1,
        str(error).strip().splitlines()[0] if str(error) else error,
        delay_s,
        remaining_s,
    )
    end = time.monotonic() + min(delay_s, remaining_s)
    while time.monotonic() < end:
        if should_stop():
            return False
        time.sleep(min(0.1, max(0.0, end - time.monotonic())))
    return True


def connect_waiting(
    settings: Settings,
    schema: str,
    wait_max_s: float = DB_WAIT_MAX_S,
    should_stop: Callable[[], bool] = lambda: False,
) -> psycopg.Connection[tuple[Any, ...]]:
    """Connect, waiting up to `wait_max_s` for a server that is down or starting."""
    deadline = time.monotonic() + wait_max_s
    attempt = 0
    while True:
        try:
            return connect(settings, schema)
        except psycopg.Error as error:
            if not is_connection_error(error):
                raise
            if not wait_backoff("connect", attempt, error, deadline, should_stop):
                raise DatabaseUnavailable(
                    f"PostgreSQL unavailable after {wait_max_s:.0f} s: {error}"
                ) from None
            attempt += 1


class NotMigrated(SampanError):
    """The ledger schema is missing or older than this code (an operator's step to take)."""


def _alembic_config() -> Any:
    from alembic.config import Config

    config = Config(str(PACKAGE_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(PACKAGE_DIR / "migrations"))
    return config


def head_revision() -> str:
    """The newest migration this code knows."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None, "the ledger has no migrations"
    return str(head)


def require_migrated(settings: Settings, schema: str) -> None:
    """Raise `NotMigrated`, saying what to run, unless `schema` is at the newest revision."""
    with connect(settings, schema) as conn:
        table = conn.execute(
            "SELECT to_regclass(%s)", (f'"{checked_schema(schema)}".alembic_version',)
        ).fetchone()
        current = None
        if table is not None and table[0] is not None:
            row = conn.execute(
                f'SELECT version_num FROM "{schema}".alembic_version'  # noqa: S608
            ).fetchone()
            current = str(row[0]) if row else None
        conn.rollback()
    head = head_revision()
    if current is None:
        raise NotMigrated(
            f"ledger schema {schema!r} was never migrated (no ledger tables there); "
            f"run `sampan ledger migrate` (with SAMPAN_LEDGER_SCHEMA={schema}) first"
        )
    if current != head:
        raise NotMigrated(
            f"ledger schema {schema!r} is at revision {current}, this code needs {head}; "
            f"run `sampan ledger migrate` (with SAMPAN_LEDGER_SCHEMA={schema}) first"
        )


def migrate(settings: Settings, schema: str, revision: str = "head") -> str:
    """Create or upgrade `schema` to `revision` (default the newest); returns the revision."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    checked_schema(schema)
    url = settings.database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url, poolclass=NullPool)
    config = _alembic_config()
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            config.attributes["schema"] = schema
            command.upgrade(config, revision)
            context = MigrationContext.configure(connection, opts={"version_table_schema": schema})
            current = context.get_current_revision()
    finally:
        engine.dispose()
    return current or "none"


def drop_schema(settings: Settings, schema: str) -> None:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{checked_schema(schema)}" CASCADE')
