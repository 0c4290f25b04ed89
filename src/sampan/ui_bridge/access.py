"""Who may do what: the authorisation rules of every request and subscription. Pure.

Roles (issue 12): a trader sees and trades the accounts of their own member firm only; a risk
officer sees every account, sets limits, halts and re-enables accounts and sees reconciliation
breaks, but places no orders; an auditor reads everything and changes nothing; an admin manages
users and instruments and sees no account. Every rule answers `None` (allowed) or a `Refusal`
whose reason is shown to the user (403) and written to the access audit trail.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sampan.ui_bridge.auth import Role, Session


class Action(StrEnum):
    VIEW_ACCOUNT = "view_account"
    TRADE = "trade"
    SET_LIMITS = "set_limits"
    VIEW_RISK = "view_risk"
    VIEW_RECON = "view_recon"
    VIEW_AUDIT = "view_audit"
    MANAGE_USERS = "manage_users"
    VIEW_MARKET = "view_market"


@dataclass(frozen=True, slots=True)
class Refusal:
    code: str
    reason: str


_READ_ALL = frozenset({Role.RISK, Role.AUDITOR})
_ROLE_ACTIONS: dict[Action, frozenset[Role]] = {
    Action.SET_LIMITS: frozenset({Role.RISK}),
    Action.VIEW_RISK: _READ_ALL,
    Action.VIEW_RECON: _READ_ALL,
    Action.VIEW_AUDIT: _READ_ALL,
    Action.MANAGE_USERS: frozenset({Role.ADMIN}),
    Action.VIEW_MARKET: frozenset(Role),
}


def may(session: Session, action: Action) -> Refusal | None:
    """A rule that does not depend on an account."""
    assert action in _ROLE_ACTIONS, f"{action} needs an account; use may_on_account"
    if session.role in _ROLE_ACTIONS[action]:
        return None
    return Refusal("FORBIDDEN", f"the {session.role} role may not {action.replace('_', ' ')}")


def may_on_account(
    session: Session, action: Action, account: str, account_member: str | None
) -> Refusal | None:
    """A rule about one account; `account_member` is None when the account is unknown, which a
    trader is told in the same words as another firm's account, so names do not leak."""
    if action is Action.VIEW_ACCOUNT:
        if session.role in _READ_ALL:
            return None if account_member is not None else _unknown(account)
        if session.role is Role.TRADER:
            return _own_firm(session, account, account_member)
        return Refusal("FORBIDDEN", f"the {session.role} role sees no accounts")
    if action is Action.TRADE:
        if session.role is not Role.TRADER:
            return Refusal("FORBIDDEN", f"the {session.role} role places no orders")
        return _own_firm(session, account, account_member)
    if action is Action.SET_LIMITS:
        refusal = may(session, Action.SET_LIMITS)
        return (
            refusal
            if refusal is not None
            else (None if account_member is not None else _unknown(account))
        )
    raise AssertionError(f"{action} is not an account action")


def _own_firm(session: Session, account: str, account_member: str | None) -> Refusal | None:
    if (
        account_member is not None
        and session.member is not None
        and account_member == session.member
    ):
        return None
    return Refusal("FORBIDDEN", f"account {account} does not belong to member {session.member}")


def _unknown(account: str) -> Refusal:
    return Refusal("FORBIDDEN", f"account {account} is not known")


def visible_accounts(session: Session, members_by_account: dict[str, str]) -> list[str]:
    """The accounts the session may see, sorted."""
    if session.role in _READ_ALL:
        return sorted(members_by_account)
    if session.role is Role.TRADER and session.member is not None:
        return sorted(a for a, m in members_by_account.items() if m == session.member)
    return []
