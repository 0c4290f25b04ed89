"""Passwords, session tokens and login throttling."""

from __future__ import annotations

import pytest

from sampan.ui_bridge.auth import (
    SESSION_TTL_S,
    BadPassword,
    Role,
    SessionCodec,
    Throttle,
    TokenRefused,
    csrf_ok,
    hash_password,
    verify_password,
)

SECRET = "s" * 32


def test_password_is_stored_as_argon2id_and_verifies() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("$argon2id$")
    assert "correct horse" not in stored
    assert verify_password(stored, "correct horse")
    assert not verify_password(stored, "correct horsE")


def test_unknown_user_never_verifies() -> None:
    assert not verify_password(None, "anything at all")


def test_password_rules() -> None:
    with pytest.raises(BadPassword):
        hash_password("short")
    with pytest.raises(BadPassword):
        hash_password("x" * 5000)
    assert not verify_password(hash_password("long enough"), "x" * 5000)


def test_token_round_trip() -> None:
    codec = SessionCodec(SECRET)
    token, session = codec.issue("alice", Role.TRADER, "M1", now_s=1_000)
    loaded = codec.load(token, now_s=1_010, revoked=set())
    assert loaded == session
    assert loaded.member == "M1" and loaded.role is Role.TRADER


def test_token_forged_with_another_secret_is_refused() -> None:
    token, _ = SessionCodec("other" * 8).issue("alice", Role.RISK, None, now_s=1_000)
    with pytest.raises(TokenRefused, match="not valid"):
        SessionCodec(SECRET).load(token, now_s=1_000, revoked=set())


def test_token_altered_is_refused() -> None:
    codec = SessionCodec(SECRET)
    token, _ = codec.issue("alice", Role.TRADER, "M1", now_s=1_000)
    altered = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    with pytest.raises(TokenRefused):
        codec.load(altered, now_s=1_000, revoked=set())


def test_token_expires() -> None:
    codec = SessionCodec(SECRET)
    token, _ = codec.issue("alice", Role.TRADER, "M1", now_s=1_000)
    with pytest.raises(TokenRefused, match="expired"):
        codec.load(token, now_s=1_000 + SESSION_TTL_S + 1, revoked=set())


def test_revoked_session_is_refused() -> None:
    codec = SessionCodec(SECRET)
    token, session = codec.issue("alice", Role.TRADER, "M1", now_s=1_000)
    with pytest.raises(TokenRefused, match="logout"):
        codec.load(token, now_s=1_000, revoked={session.sid})


def test_csrf_must_match_the_session() -> None:
    _, session = SessionCodec(SECRET).issue("alice", Role.TRADER, "M1", now_s=1)
    assert csrf_ok(session, session.csrf)
    assert not csrf_ok(session, None)
    assert not csrf_ok(session, session.csrf + "x")


def test_throttle_blocks_after_failures_and_forgets_after_the_window() -> None:
    throttle = Throttle(failures_max=3, window_s=60.0)
    for t in (0.0, 1.0, 2.0):
        assert throttle.blocked_s("user:a", t) == 0
        throttle.failed("user:a", t)
    assert throttle.blocked_s("user:a", 3.0) == pytest.approx(57.0)
    assert throttle.blocked_s("user:b", 3.0) == 0
    assert throttle.blocked_s("user:a", 60.5) == 0


def test_throttle_success_clears_and_keys_are_bounded() -> None:
    throttle = Throttle(failures_max=2, window_s=60.0, keys_max=10)
    throttle.failed("a", 0.0)
    throttle.succeeded("a")
    throttle.failed("a", 1.0)
    assert throttle.blocked_s("a", 1.0) == 0
    for i in range(100):
        throttle.failed(f"k{i}", 2.0 + i)
    assert len(throttle._failures) <= 10


def test_cli_roles_are_the_roles() -> None:
    from sampan.ui_bridge.cli import ROLES

    assert tuple(str(r) for r in Role) == ROLES
