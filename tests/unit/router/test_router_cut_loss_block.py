"""Live risk's cut-loss block (risk.controls): while an account is blocked the router refuses
its orders that add risk with CUT_LOSS_BREACHED and accepts sells of held shares; live risk's
MASS_CANCEL cancels only the orders that add risk; a re-enable lifts the block."""

from __future__ import annotations

from typing import Any

from test_router_core import PRICE_E3, account_record, command

from sampan.market.parties import RISK_AGENT_USER
from sampan.router.core import CoreConfig, RouterCore
from sampan.router.tables import Tables


def router() -> RouterCore:
    tables = Tables()
    tables.apply("reference.accounts", account_record())
    balance = {
        "account": "A1", "member": "M1", "cash_cents": 10**9, "available_cash_cents": 10**9,
        "holdings_value_cents": 0, "portfolio_value_cents": 0, "equity_cents": 10**9,
        "credit_line_used_cents": 0, "cut_loss_equity_cents": 0, "cut_loss_breached": False,
        "positions": [{"security": 700, "qty": 1_000, "last_e3": PRICE_E3, "value_cents": 0}],
        "ts_ns": 0, "fills_offsets": [],
    }  # fmt: skip
    tables.apply("ledger.balances", balance)
    return RouterCore(CoreConfig(), tables)


def control(blocked: bool) -> dict[str, Any]:
    return {
        "account": "A1", "blocked": blocked, "reason": "X", "alert_id": None, "user": "u",
        "ts_ns": 0,
    }  # fmt: skip


def outcomes(core: RouterCore) -> list[tuple[str, str, str | None]]:
    out, _, _ = core.take()
    return [
        (o.value["cl_ord_id"], o.value.get("exec_type", o.topic), o.value.get("reject_reason"))
        for o in out
        if o.topic == "orders.events"
    ]


def new(core: RouterCore, offset: int, cl: str, side: str, qty: int = 100) -> None:
    core.request(0, offset, command(route="INTERNAL", cl_ord_id=cl, side=side, qty=qty))


def test_a_blocked_account_may_only_reduce_risk_until_re_enabled() -> None:
    core = router()
    new(core, 1, "b1", "BUY")
    assert not [o for o in outcomes(core) if o[1] == "REJECTED"]
    core.tables.apply("risk.controls", control(True))
    new(core, 2, "b2", "BUY")
    new(core, 3, "s1", "SELL", 500)  # held: 1,000 shares
    new(core, 4, "s2", "SELL", 600)  # 500 already committed: only 500 free
    new(core, 5, "ss", "SELL_SHORT")
    rejected = {cl: reason for cl, kind, reason in outcomes(core) if kind == "REJECTED"}
    assert rejected == {
        "b2": "CUT_LOSS_BREACHED",
        "s2": "CUT_LOSS_BREACHED",
        "ss": "CUT_LOSS_BREACHED",
    }
    amend = command(
        "AMEND", route="INTERNAL", cl_ord_id="a1", orig_cl_ord_id="b1", qty=200, price_e3=PRICE_E3
    )
    core.request(0, 6, amend)
    assert outcomes(core) == [("a1", "CANCEL_REJECTED", "CUT_LOSS_BREACHED")]
    core.tables.apply("risk.controls", control(False))
    new(core, 7, "b3", "BUY")
    assert not [o for o in outcomes(core) if o[1] == "REJECTED"]


def test_the_cut_loss_mass_cancel_leaves_reducing_sells_open() -> None:
    core = router()
    new(core, 1, "b1", "BUY")
    new(core, 2, "s1", "SELL", 500)
    core.take()
    cancel = command("MASS_CANCEL", route="INTERNAL", cl_ord_id="CUTLOSS:1", security=0)
    core.request(0, 3, {**cancel, "user": RISK_AGENT_USER})
    out, _, _ = core.take()
    cancels = [o.value for o in out if o.topic == "orders.internal"]
    assert [c["orig_cl_ord_id"] for c in cancels] == ["b1"]
    # Anyone else's MASS_CANCEL still cancels everything open.
    core.request(0, 4, command("MASS_CANCEL", route="INTERNAL", cl_ord_id="m2", security=0))
    out, _, _ = core.take()
    assert [o.value["orig_cl_ord_id"] for o in out if o.topic == "orders.internal"] == ["s1"]
