"""Users, member firms, revoked sessions and the access audit trail in PostgreSQL.

The tables live in their own schema (env `SAMPAN_UI_SCHEMA`, default `ui`), created and
upgraded by Alembic (`migrate`). Every connection bounds its statements and lock waits, so a
stuck server is an error within seconds, never a hung request. Calls are synchronous; the web
server runs them in worker threads.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from sampan.config import Settings
from sampan.errors import ConfigError, SampanError
from sampan.ui_bridge.auth import Role, hash_password

DEFAULT_SCHEMA = "ui"
CONNECT_TIMEOUT_S = 5
STATEMENT_TIMEOUT_MS = 10_000
LOCK_TIMEOUT_MS = 5_000
AUDIT_READ_MAX = 1_000
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
USERNAME = re.compile(r"^[a-z0-9._-]{1,64}$")
MEMBER = re.compile(r"^[A-Za-z0-9._-]{1,40}$")
PACKAGE_DIR = Path(__file__).parent


class UserError(SampanError):
    """A users command cannot be done as asked (an unknown or duplicate user, a bad name)."""


@dataclass(frozen=True, slots=True)
class User:
    username: str
    password_hash: str
    role: Role
    member: str | None
    disabled: bool


def ui_schema() -> str:
    name = os.environ.get("SAMPAN_UI_SCHEMA") or DEFAULT_SCHEMA
    if not _SCHEMA_NAME.match(name):
        raise ConfigError(f"SAMPAN_UI_SCHEMA={name!r} must match {_SCHEMA_NAME.pattern}")
    return name


def connect(settings: Settings, schema: str) -> psycopg.Connection[tuple[Any, ...]]:
    assert _SCHEMA_NAME.match(schema), schema
    return psycopg.connect(
        settings.database_url,
        connect_timeout=CONNECT_TIMEOUT_S,
        options=(
            f"-c search_path={schema} -c statement_timeout={STATEMENT_TIMEOUT_MS} "
            f"-c lock_timeout={LOCK_TIMEOUT_MS}"
        ),
        application_name="sampan-ui",
    )


def migrate(settings: Settings, schema: str) -> str:
    """Create or upgrade the users schema to the newest revision; returns it."""
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    assert _SCHEMA_NAME.match(schema), schema
    url = settings.database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url, poolclass=NullPool)
    config = Config(str(PACKAGE_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(PACKAGE_DIR / "migrations"))
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            config.attributes["schema"] = schema
            command.upgrade(config, "head")
            context = MigrationContext.configure(connection, opts={"version_table_schema": schema})
            current = context.get_current_revision()
    finally:
        engine.dispose()
    return current or "none"


def drop_schema(settings: Settings, schema: str) -> None:
    assert _SCHEMA_NAME.match(schema), schema
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


class Store:
    def __init__(self, settings: Settings, schema: str) -> None:
        self.settings = settings
        self.schema = schema

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        return connect(self.settings, self.schema)

    def add_user(self, username: str, password: str, role: Role, member: str | None) -> None:
        if not USERNAME.match(username):
            raise UserError(f"user name {username!r} must match {USERNAME.pattern}")
        if (role is Role.TRADER) != (member is not None):
            raise UserError("a trader belongs to one member firm (--member); other roles to none")
        if member is not None and not MEMBER.match(member):
            raise UserError(f"member {member!r} must match {MEMBER.pattern}")
        password_hash = hash_password(password)
        now = time.time_ns()
        with self._connect() as conn:
            if member is not None:
                conn.execute(
                    "INSERT INTO members (member, name, created_ts_ns) VALUES (%s, %s, %s) "
                    "ON CONFLICT (member) DO NOTHING",
                    (member, member, now),
                )
            try:
                conn.execute(
                    "INSERT INTO users (username, password_hash, role, member, created_ts_ns) "
                    "VALUES (%s, %s, %s, %s, %s)",
                    (username, password_hash, str(role), member, now),
                )
            except psycopg.errors.UniqueViolation:
                raise UserError(f"user {username} exists") from None

    def set_disabled(self, username: str, disabled: bool) -> None:
        with self._connect() as conn:
            cursor = conn.execute(
                "UPDATE users SET disabled = %s WHERE username = %s", (disabled, username)
            )
            if cursor.rowcount != 1:
                raise UserError(f"no user {username}")

    def set_password(self, username: str, password: str) -> None:
        password_hash = hash_password(password)
        with self._connect() as conn:
            cursor = conn.execute(
                "UPDATE users SET password_hash = %s WHERE username = %s", (password_hash, username)
            )
            if cursor.rowcount != 1:
                raise UserError(f"no user {username}")

    def users(self) -> list[User]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT username, password_hash, role, member, disabled FROM users "
                "ORDER BY username"
            ).fetchall()
        return [User(r[0], r[1], Role(r[2]), r[3], r[4]) for r in rows]

    def user(self, username: str) -> User | None:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT username, password_hash, role, member, disabled FROM users "
                "WHERE username = %s",
                (username,),
            ).fetchone()
        return None if row is None else User(row[0], row[1], Role(row[2]), row[3], row[4])

    def disabled_users(self) -> frozenset[str]:
        with self._connect() as conn:
            rows = conn.execute("SELECT username FROM users WHERE disabled").fetchall()
        return frozenset(r[0] for r in rows)

    def revoke(self, sid: str, expires_ts_s: int) -> None:
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO revoked_sessions (sid, expires_ts_s) VALUES (%s, %s) "
                "ON CONFLICT DO NOTHING",
                (sid, expires_ts_s),
            )

    def revoked(self, now_s: int) -> set[str]:
        """Sessions ended by logout that have not expired yet (older ones are deleted)."""
        with self._connect() as conn:
            conn.execute("DELETE FROM revoked_sessions WHERE expires_ts_s < %s", (now_s,))
            rows = conn.execute("SELECT sid FROM revoked_sessions").fetchall()
        return {r[0] for r in rows}

    def audit(
        self,
        username: str | None,
        role: str | None,
        action: str,
        target: str,
        reason: str,
        remote: str,
    ) -> None:
        with self._connect() as conn:
            # One writer at a time, so ids commit in rising order and the relay to ui.access,
            # which resumes after the highest id it published, never passes a row committed
            # later with a smaller id. Readers are not blocked (EXCLUSIVE allows SELECT).
            conn.execute("LOCK TABLE access_audit IN EXCLUSIVE MODE")
            conn.execute(
                "INSERT INTO access_audit (ts_ns, username, role, action, target, reason, remote) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (
                    time.time_ns(),
                    username,
                    role,
                    action[:200],
                    target[:200],
                    reason[:500],
                    remote[:100],
                ),
            )

    def audit_trail(self, limit: int) -> list[dict[str, Any]]:
        limit = max(1, min(limit, AUDIT_READ_MAX))
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT id, ts_ns, username, role, action, target, reason, remote "
                "FROM access_audit ORDER BY id DESC LIMIT %s",
                (limit,),
            ).fetchall()
        names = ("id", "ts_ns", "username", "role", "action", "target", "reason", "remote")
        return [dict(zip(names, r, strict=True)) for r in rows]

    def audit_after(self, after_id: int, limit: int) -> list[dict[str, Any]]:
        """Access audit rows with an id above `after_id`, oldest first, at most `limit`."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT id, ts_ns, username, role, action, target, reason, remote "
                "FROM access_audit WHERE id > %s ORDER BY id LIMIT %s",
                (after_id, limit),
            ).fetchall()
        names = ("id", "ts_ns", "username", "role", "action", "target", "reason", "remote")
        return [dict(zip(names, r, strict=True)) for r in rows]
