"""Between the risk book and the records on its topics. Pure: plain functions both ways.

Guarantees: a cut-loss cancel is a MASS_CANCEL on orders.requests for every security of the
account, stamped with `RISK_AGENT_USER` so the router cancels only the orders that add risk
(buys and short sales; a sell of held shares reduces risk and stays); its command id and
ClOrdID are `CUTLOSS:<day>:<n>` (the account's n-th breach that day), so a replay sends the
same command, which the router refuses as a duplicate ClOrdID rather than act on twice.
"""

from __future__ import annotations

from typing import Any

from sampan.market.parties import RISK_AGENT_USER
from sampan.risk.book import Alert, Block, Level, Mark

CONTROL_BLOCKED = "CUT_LOSS_BREACHED"
CONTROL_ENABLED = "ENABLED"


def mark_record(mark: Mark) -> dict[str, Any]:
    return {
        "account": mark.account,
        "member": mark.member,
        "day": mark.day,
        "cash_cents": mark.cash_cents,
        "holdings_value_cents": mark.holdings_value_cents,
        "portfolio_value_cents": mark.portfolio_value_cents,
        "equity_cents": mark.equity_cents,
        "available_cash_cents": mark.available_cash_cents,
        "credit_line_cents": mark.credit_line_cents,
        "credit_line_used_cents": mark.credit_line_used_cents,
        "cut_loss_equity_cents": mark.cut_loss_equity_cents,
        "cut_loss_distance_cents": mark.cut_loss_distance_cents,
        "start_equity_cents": mark.start_equity_cents,
        "warning_equity_cents": mark.warning_equity_cents,
        "level": str(mark.level),
        "blocked": mark.blocked,
        "warnings": mark.warnings,
        "breaches": mark.breaches,
        "priced_ts_ns": mark.priced_ts_ns,
        "ts_ns": mark.ts_ns,
    }


def mark_from(record: dict[str, Any]) -> Mark:
    return Mark(**{**record, "level": Level(record["level"])})


def alert_record(alert: Alert) -> dict[str, Any]:
    return {
        "alert_id": alert.alert_id,
        "account": alert.account,
        "member": alert.member,
        "kind": str(alert.kind),
        "equity_cents": alert.equity_cents,
        "warning_equity_cents": alert.warning_equity_cents,
        "cut_loss_equity_cents": alert.cut_loss_equity_cents,
        "start_equity_cents": alert.start_equity_cents,
        "priced_ts_ns": alert.priced_ts_ns,
        "ts_ns": alert.ts_ns,
    }


def control_record(
    account: str, blocked: bool, user: str, ts_ns: int, alert_id: str | None = None
) -> dict[str, Any]:
    return {
        "account": account,
        "blocked": blocked,
        "reason": CONTROL_BLOCKED if blocked else CONTROL_ENABLED,
        "alert_id": alert_id,
        "user": user,
        "ts_ns": ts_ns,
    }


def cancel_command(block: Block, day: str, ts_ns: int) -> dict[str, Any]:
    """The MASS_CANCEL of the account's open orders that add risk."""
    cl_ord_id = f"CUTLOSS:{day}:{block.breach}"
    return {
        "command_id": f"{block.account}:{cl_ord_id}",
        "kind": "MASS_CANCEL",
        "account": block.account,
        "member": block.member,
        "security": 0,
        "cl_ord_id": cl_ord_id,
        "orig_cl_ord_id": None,
        "side": "BUY",
        "ord_type": "LIMIT",
        "time_in_force": "DAY",
        "price_e3": 0,
        "qty": 0,
        "route": "INTERNAL",
        "batch_id": None,
        "parent_id": None,
        "user": RISK_AGENT_USER,
        "ts_ns": ts_ns,
        "stp": None,
    }
