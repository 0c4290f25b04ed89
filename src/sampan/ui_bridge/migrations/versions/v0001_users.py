"""Users and access: member firms, users with roles, sessions ended by logout, the access audit.

Revision ID: u0001
Revises:
Create Date: 2026-11-29

Passwords are stored only as Argon2id hashes. A trader belongs to exactly one member firm; the
other roles belong to none. The access audit trail is append-only: the database refuses UPDATE
and DELETE on it, so a refused attempt once written stays written.
"""

from __future__ import annotations

from alembic import op

revision = "u0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE members (
            member TEXT PRIMARY KEY CHECK (member ~ '^[A-Za-z0-9._-]{1,40}$'),
            name TEXT NOT NULL,
            created_ts_ns BIGINT NOT NULL
        );
        CREATE TABLE users (
            username TEXT PRIMARY KEY CHECK (username ~ '^[a-z0-9._-]{1,64}$'),
            password_hash TEXT NOT NULL CHECK (left(password_hash, 10) = '$argon2id$'),
            role TEXT NOT NULL CHECK (role IN ('trader', 'risk', 'auditor', 'admin')),
            member TEXT REFERENCES members (member),
            disabled BOOLEAN NOT NULL DEFAULT FALSE,
            created_ts_ns BIGINT NOT NULL,
            CHECK ((role = 'trader') = (member IS NOT NULL))
        );
        CREATE TABLE revoked_sessions (
            sid TEXT PRIMARY KEY,
            expires_ts_s BIGINT NOT NULL
        );
        CREATE TABLE access_audit (
            id BIGSERIAL PRIMARY KEY,
            ts_ns BIGINT NOT NULL,
            username TEXT,
            role TEXT,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            reason TEXT NOT NULL,
            remote TEXT NOT NULL
        );
        CREATE INDEX access_audit_ts ON access_audit (ts_ns DESC);
        CREATE FUNCTION access_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'the access audit trail is append-only';
        END $$;
        CREATE TRIGGER access_audit_append_only BEFORE UPDATE OR DELETE ON access_audit
            FOR EACH ROW EXECUTE FUNCTION access_audit_append_only();
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE access_audit;
        DROP FUNCTION access_audit_append_only();
        DROP TABLE revoked_sessions;
        DROP TABLE users;
        DROP TABLE members;
        """
    )
