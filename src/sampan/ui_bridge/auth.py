"""Passwords, session tokens, CSRF and login throttling: the pure part of logging in.

Guarantees: passwords are stored only as Argon2id hashes (argon2-cffi's defaults, which follow
RFC 9106's second recommended option); a session token is a signed, timestamped payload
(itsdangerous, HMAC-SHA256 over the server's secret) holding the session id, the user and the
CSRF value, and `SessionCodec.load` refuses a token that is forged, altered, expired or whose
session was revoked by logout. The CSRF value lives inside the signed token, so a page must
echo the value it got at login (the double-submit cookie alone cannot be forged into matching).
`Throttle` bounds failed logins per user name and per client address in a sliding window.

Limits: the secret is per server; tokens signed by one `sampan ui` are only valid on another
started with the same `SAMPAN_UI_SECRET`. Revocations live in the caller's set (the server
persists them); a token cannot outlive `SESSION_TTL_S`.
"""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

SESSION_TTL_S = 8 * 60 * 60  # one trading day and a margin
PASSWORD_LEN_MIN = 8
PASSWORD_LEN_MAX = 1024  # hashing a megabyte of password is a denial of service, not a login
USERNAME_MAX = 64
THROTTLE_FAILURES_MAX = 5
THROTTLE_WINDOW_S = 300.0
THROTTLE_KEYS_MAX = 100_000  # distinct names and addresses remembered at once

_hasher = PasswordHasher()
# Verifying against this when the user does not exist keeps an unknown name as slow as a
# wrong password, so timing does not tell which names exist.
_DUMMY_HASH = _hasher.hash("not-a-password-of-anyone")


class Role(StrEnum):
    TRADER = "trader"
    RISK = "risk"
    AUDITOR = "auditor"
    ADMIN = "admin"


class BadPassword(ValueError):
    """A new password does not meet the rules."""


def check_new_password(password: str) -> None:
    if len(password) < PASSWORD_LEN_MIN:
        raise BadPassword(f"a password has at least {PASSWORD_LEN_MIN} characters")
    if len(password) > PASSWORD_LEN_MAX:
        raise BadPassword(f"a password has at most {PASSWORD_LEN_MAX} characters")


def hash_password(password: str) -> str:
    check_new_password(password)
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when `password` matches; a missing user (None) costs one verification too."""
    if len(password) > PASSWORD_LEN_MAX:
        return False
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True, slots=True)
class Session:
    """What a valid token says: who, in which role and firm, and the session's CSRF value."""

    sid: str
    username: str
    role: Role
    member: str | None
    csrf: str
    issued_ts_s: int

    @property
    def expires_ts_s(self) -> int:
        return self.issued_ts_s + SESSION_TTL_S


class TokenRefused(Exception):
    """The token is not valid; `reason` says why, for the access audit."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SessionCodec:
    def __init__(self, secret: str, ttl_s: int = SESSION_TTL_S) -> None:
        assert len(secret) >= 16, "the session secret is too short to sign with"
        self._serializer = URLSafeTimedSerializer(secret, salt="sampan-session")
        self.ttl_s = ttl_s

    def issue(
        self, username: str, role: Role, member: str | None, now_s: int
    ) -> tuple[str, Session]:
        session = Session(
            sid=secrets.token_urlsafe(16),
            username=username,
            role=role,
            member=member,
            csrf=secrets.token_urlsafe(24),
            issued_ts_s=now_s,
        )
        payload = [session.sid, username, str(role), member, session.csrf, now_s]
        return self._serializer.dumps(payload), session

    def load(self, token: str, now_s: int, revoked: set[str] | frozenset[str]) -> Session:
        if not token or len(token) > 2048:
            raise TokenRefused("no session token")
        try:
            payload = self._serializer.loads(token, max_age=self.ttl_s)
        except SignatureExpired:
            raise TokenRefused("session expired; log in again") from None
        except BadSignature:
            raise TokenRefused("session token is not valid") from None
        try:
            sid, username, role, member, csrf, issued = payload
            session = Session(str(sid), str(username), Role(role), member, str(csrf), int(issued))
        except (TypeError, ValueError):
            raise TokenRefused("session token is not valid") from None
        if session.issued_ts_s + self.ttl_s < now_s:
            raise TokenRefused("session expired; log in again")
        if session.sid in revoked:
            raise TokenRefused("session ended by logout")
        return session


@dataclass
class Throttle:
    """Failed logins per key (a user name, a client address) in a sliding window.

    `blocked` answers how many seconds a key must still wait (0: may try). Pure: time is passed
    in. Bounded: at most `keys_max` keys; when full, the key with the oldest failure goes."""

    failures_max: int = THROTTLE_FAILURES_MAX
    window_s: float = THROTTLE_WINDOW_S
    keys_max: int = THROTTLE_KEYS_MAX
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def _expire(self, key: str, now_s: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now_s - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def blocked_s(self, key: str, now_s: float) -> float:
        times = self._expire(key, now_s)
        if times is None or len(times) < self.failures_max:
            return 0.0
        return max(0.0, times[0] + self.window_s - now_s)

    def failed(self, key: str, now_s: float) -> None:
        times = self._expire(key, now_s)
        if times is None:
            if len(self._failures) >= self.keys_max:
                oldest = min(self._failures, key=lambda k: self._failures[k][-1])
                del self._failures[oldest]
            times = self._failures[key] = deque(maxlen=self.failures_max)
        times.append(now_s)

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)


def csrf_ok(session: Session, header_value: str | None) -> bool:
    return header_value is not None and secrets.compare_digest(session.csrf, header_value)
