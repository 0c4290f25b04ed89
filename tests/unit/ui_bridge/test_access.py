"""Authorisation rules per role."""

from __future__ import annotations

from sampan.ui_bridge.access import Action, may, may_on_account, visible_accounts
from sampan.ui_bridge.auth import Role, Session

MEMBERS = {"A1": "M1", "A2": "M2", "A3": "M1"}


def session(role: Role, member: str | None = None) -> Session:
    return Session("sid", "u", role, member, "csrf", 0)


def test_trader_sees_and_trades_only_own_firm() -> None:
    trader = session(Role.TRADER, "M1")
    assert visible_accounts(trader, MEMBERS) == ["A1", "A3"]
    assert may_on_account(trader, Action.VIEW_ACCOUNT, "A1", "M1") is None
    assert may_on_account(trader, Action.TRADE, "A1", "M1") is None
    refusal = may_on_account(trader, Action.VIEW_ACCOUNT, "A2", "M2")
    assert refusal is not None and "M1" in refusal.reason
    assert may_on_account(trader, Action.TRADE, "A2", "M2") is not None


def test_unknown_account_reads_like_another_firms() -> None:
    trader = session(Role.TRADER, "M1")
    unknown = may_on_account(trader, Action.VIEW_ACCOUNT, "ZZ", None)
    other = may_on_account(trader, Action.VIEW_ACCOUNT, "ZZ", "M2")
    assert unknown == other


def test_risk_sees_all_sets_limits_and_does_not_trade() -> None:
    risk = session(Role.RISK)
    assert visible_accounts(risk, MEMBERS) == ["A1", "A2", "A3"]
    assert may_on_account(risk, Action.VIEW_ACCOUNT, "A2", "M2") is None
    assert may_on_account(risk, Action.SET_LIMITS, "A2", "M2") is None
    assert may_on_account(risk, Action.SET_LIMITS, "ZZ", None) is not None
    assert may_on_account(risk, Action.TRADE, "A2", "M2") is not None
    assert may(risk, Action.VIEW_RECON) is None and may(risk, Action.VIEW_AUDIT) is None


def test_auditor_reads_everything_and_changes_nothing() -> None:
    auditor = session(Role.AUDITOR)
    assert may_on_account(auditor, Action.VIEW_ACCOUNT, "A2", "M2") is None
    assert may(auditor, Action.VIEW_AUDIT) is None
    assert may_on_account(auditor, Action.SET_LIMITS, "A2", "M2") is not None
    assert may_on_account(auditor, Action.TRADE, "A2", "M2") is not None


def test_admin_manages_users_and_sees_no_account() -> None:
    admin = session(Role.ADMIN)
    assert visible_accounts(admin, MEMBERS) == []
    assert may(admin, Action.MANAGE_USERS) is None
    assert may_on_account(admin, Action.VIEW_ACCOUNT, "A1", "M1") is not None
    assert may(admin, Action.VIEW_AUDIT) is not None
    trader = session(Role.TRADER, "M1")
    assert may(trader, Action.MANAGE_USERS) is not None
    assert may(trader, Action.VIEW_RISK) is not None


def test_websocket_origin_must_be_this_server() -> None:
    from sampan.ui_bridge.app import same_origin

    assert same_origin("http://127.0.0.1:8080", "127.0.0.1:8080")
    assert same_origin(None, "127.0.0.1:8080")  # not a browser: no ambient cookie to abuse
    assert not same_origin("https://evil.example", "127.0.0.1:8080")
    assert not same_origin("http://127.0.0.1:9999", "127.0.0.1:8080")
