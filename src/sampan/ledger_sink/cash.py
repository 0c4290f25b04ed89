"""Cash movements: deposits and withdrawals as balanced journal entries. Pure: no I/O.

A deposit moves `amount_cents` HKD from the venue's bank account (`BANK.HKD`, kind `funding`)
to a member account; a withdrawal moves it back. Each is ONE transfer (a debit and a credit of
the same amount), so debits = credits holds by construction, and PostgreSQL checks it again
at commit. A movement is identified by its operator-given `ref` (the idempotency key): posting
the same ref again with the same content is a no-op, with different content a conflict.

Why a command and not a topic (the choice, for now): movements are rare operator actions
whose source of truth is the bank's confirmation, and the operator needs an answer at once
(posted, replayed, refused for lack of cash). `sampan ledger deposit|withdraw` posts one in
one database transaction (movement row, journal row, balances) and then publishes the
account's snapshot; nothing else needs a catalog change, a second exactly-once consumer or a
new dead-letter path. The `cash_movements` table is immutable and is itself the movement log:
`rebuild` re-posts it, in id order, with this same code (movements and fills commute: a
movement changes only cash balances, never positions). Each movement also writes an outbox row
in its transaction, so it reaches `ledger.postings` exactly once (`relay.py`) and audit replays
of the topics see it.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from sampan.ledger_sink.rules import (
    CASH_ASSET,
    LEG_DEPOSIT,
    LEG_WITHDRAWAL,
    VENUE_ACCOUNT_PREFIXES,
    Transfer,
)

FUNDING_ACCOUNT = "BANK.HKD"
REF_PREFIX = "CASH:"  # a movement's entry ref in the journal view: CASH:<ref>
AMOUNT_MAX_CENTS = 10**15  # HK$10 trillion: far beyond any deposit, far below BIGINT
_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")


class InvalidMovement(ValueError):
    """A movement that cannot be posted (bad amount, reference or account)."""


class Direction(enum.Enum):
    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"


class CashReason(enum.Enum):
    """Why cash moved; stored with the movement."""

    OPENING = "OPENING"  # the opening deposit of a new account (`sampan seed`)
    TOP_UP = "TOP_UP"  # a member adds cash
    PAYOUT = "PAYOUT"  # a member takes cash out
    CORRECTION = "CORRECTION"  # an operator corrects an earlier movement (by a new one)


@dataclass(frozen=True, slots=True)
class CashMovement:
    ref: str
    account: str
    direction: Direction
    amount_cents: int
    reason: CashReason
    ts_ns: int  # when the operator asked; not part of its identity

    def same_as(self, other: CashMovement) -> bool:
        """Same movement (a replay), whatever the time it was asked."""
        return (self.ref, self.account, self.direction, self.amount_cents, self.reason) == (
            other.ref,
            other.account,
            other.direction,
            other.amount_cents,
            other.reason,
        )


def validate(movement: CashMovement) -> None:
    if not _REF.match(movement.ref):
        raise InvalidMovement(
            f"reference {movement.ref!r} must be 1-128 letters, digits or ._:/- "
            "and start with a letter or digit"
        )
    if not 0 < movement.amount_cents <= AMOUNT_MAX_CENTS:
        raise InvalidMovement(
            f"{movement.ref}: amount {movement.amount_cents} cents must be in 1..{AMOUNT_MAX_CENTS}"
        )
    if not movement.account or movement.account.startswith(VENUE_ACCOUNT_PREFIXES):
        raise InvalidMovement(f"{movement.ref}: {movement.account!r} is not a member account")


def movement_transfer(movement: CashMovement) -> Transfer:
    """The one balanced transfer of a movement (validated first)."""
    validate(movement)
    if movement.direction is Direction.DEPOSIT:
        return Transfer(
            LEG_DEPOSIT, FUNDING_ACCOUNT, movement.account, CASH_ASSET, movement.amount_cents
        )
    return Transfer(
        LEG_WITHDRAWAL, movement.account, FUNDING_ACCOUNT, CASH_ASSET, movement.amount_cents
    )


def opening_ref(account: str) -> str:
    """The reference of an account's opening deposit by `sampan seed`: one per account, so
    seeding twice posts it once."""
    return f"seed:{account}:opening"
