"""Pre-trade risk: every reject reason, the order of the checks, and the money rounding."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sampan.market.rules import SPREAD_TABLE_PART_A
from sampan.router.risk import (
    AccountLimits,
    Approved,
    Balance,
    Exposure,
    InstrumentRef,
    OrderTerms,
    Rejected,
    RejectReason,
    RiskConfig,
    Side,
    cents_up,
    check,
    hold_cents,
)

LIMITS = AccountLimits("A1", "M1", 1_000_000_00, 0, 2_000_000_00, False, "CANCEL_RESTING", True)
TENCENT = InstrumentRef(700, 100, SPREAD_TABLE_PART_A, 512_000, True)
CASH = Balance(cash_cents=0, equity_cents=0, positions={700: 1_000})
CONFIG = RiskConfig()


def decide(
    terms: OrderTerms,
    limits: AccountLimits | None = LIMITS,
    instrument: InstrumentRef | None = TENCENT,
    balance: Balance | None = CASH,
    exposure: Exposure | None = None,
    last_e3: int | None = None,
    member: str = "M1",
) -> Approved | Rejected:
    terms = replace(terms, member=member)
    return check(terms, limits, instrument, balance, exposure or Exposure(), last_e3, CONFIG)


def buy(qty: int = 100, price_e3: int = 512_000, side: Side = Side.BUY) -> OrderTerms:
    return OrderTerms("M1", side, 700, False, price_e3, qty)


def reason(decision: Approved | Rejected) -> RejectReason:
    assert isinstance(decision, Rejected), decision
    return decision.reason


def test_a_sound_buy_is_approved_with_its_hold() -> None:
    decision = decide(buy())
    assert decision == Approved(512_000, hold_cents(512_000, 100, CONFIG))
    # HK$51,200.000 = 5,120,000 cents, plus 20 bps (10,240 cents), both rounded up.
    assert hold_cents(512_000, 100, CONFIG) == 5_120_000 + 10_240


@pytest.mark.parametrize(
    ("kwargs", "terms", "expected"),
    [
        ({"limits": None}, buy(), RejectReason.ACCOUNT_UNKNOWN),
        ({"limits": replace(LIMITS, enabled=False)}, buy(), RejectReason.ACCOUNT_DISABLED),
        ({"member": "M2"}, buy(), RejectReason.MEMBER_MISMATCH),
        ({"instrument": None}, buy(), RejectReason.INSTRUMENT_UNKNOWN),
        (
            {"instrument": replace(TENCENT, enabled=False)},
            buy(),
            RejectReason.INSTRUMENT_DISABLED,
        ),
        ({}, buy(qty=0), RejectReason.INVALID_QTY),
        ({}, buy(qty=150), RejectReason.NOT_BOARD_LOT),
        ({}, buy(qty=300_100), RejectReason.TOO_MANY_LOTS),
        ({}, buy(price_e3=5), RejectReason.INVALID_PRICE),
        ({}, buy(price_e3=512_100), RejectReason.OFF_TICK),
        ({"instrument": replace(TENCENT, prev_close_e3=0)}, buy(), RejectReason.NO_REFERENCE_PRICE),
        ({}, buy(price_e3=600_000), RejectReason.PRICE_COLLAR),
        ({}, buy(qty=10_000), RejectReason.MAX_NOTIONAL),
        ({"balance": Balance(0, -1, {})}, buy(), RejectReason.CUT_LOSS),
        ({}, buy(qty=2_000, side=Side.SELL), RejectReason.INSUFFICIENT_INVENTORY),
        ({}, buy(side=Side.SELL_SHORT), RejectReason.SHORT_NOT_ALLOWED),
        (
            {"exposure": Exposure(holds_cents=1_000_000_00 - 5_000_000)},
            buy(),
            RejectReason.INSUFFICIENT_BUYING_POWER,
        ),
    ],
)
def test_each_reject_reason(kwargs: dict, terms: OrderTerms, expected: RejectReason) -> None:
    assert reason(decide(terms, **kwargs)) == expected


def test_collar_is_exact_at_its_edge() -> None:
    # 10% of 512.000 is 51.200: 563.000 is inside (on the 0.500 tick), 563.500 outside.
    assert isinstance(decide(buy(price_e3=563_000)), Approved)
    assert reason(decide(buy(price_e3=563_500))) == RejectReason.PRICE_COLLAR


def test_collar_follows_the_last_trade() -> None:
    assert isinstance(decide(buy(price_e3=600_000), last_e3=590_000), Approved)


def test_buying_power_counts_cash_credit_and_holds() -> None:
    cost = hold_cents(512_000, 100, CONFIG)
    limits = replace(LIMITS, credit_line_cents=0)
    assert reason(decide(buy(), limits=limits)) == RejectReason.INSUFFICIENT_BUYING_POWER
    rich = Balance(cost, cost, {})
    assert isinstance(decide(buy(), limits=limits, balance=rich), Approved)
    held = Exposure(holds_cents=1)
    assert reason(decide(buy(), limits=limits, balance=rich, exposure=held)) == (
        RejectReason.INSUFFICIENT_BUYING_POWER
    )


def test_sells_are_limited_by_free_inventory() -> None:
    assert isinstance(decide(buy(qty=1_000, side=Side.SELL)), Approved)
    committed = Exposure(sells_committed={700: 100})
    assert reason(decide(buy(qty=1_000, side=Side.SELL), exposure=committed)) == (
        RejectReason.INSUFFICIENT_INVENTORY
    )
    shorting = replace(LIMITS, allow_short=True)
    assert isinstance(decide(buy(qty=2_000, side=Side.SELL_SHORT), limits=shorting), Approved)


def test_cut_loss_blocks_new_risk_but_not_selling_inventory() -> None:
    breached = Balance(0, -1, {700: 1_000})
    assert reason(decide(buy(), balance=breached)) == RejectReason.CUT_LOSS
    assert isinstance(decide(buy(side=Side.SELL), balance=breached), Approved)
    shorting = replace(LIMITS, allow_short=True)
    assert reason(decide(buy(qty=2_000, side=Side.SELL), limits=shorting, balance=breached)) == (
        RejectReason.CUT_LOSS
    )


def test_market_orders_are_held_above_the_reference() -> None:
    decision = decide(OrderTerms("M1", Side.BUY, 700, True, 0, 100))
    assert decision == Approved(537_600, hold_cents(537_600, 100, CONFIG))
    assert (
        reason(decide(OrderTerms("M1", Side.BUY, 700, True, 1, 100))) == RejectReason.INVALID_PRICE
    )


def test_money_rounds_up_to_the_cent() -> None:
    assert cents_up(0) == 0 and cents_up(1) == 1 and cents_up(10) == 1 and cents_up(11) == 2
    # 1 share at HK$0.011: 11 e3 → 2 cents, margin 0.0022 e3 → 1 cent.
    assert hold_cents(11, 1, CONFIG) == 3


def test_check_takes_the_typed_request_as_it_entered_the_router() -> None:
    from sampan.router.mapping import NewOrder
    from sampan.router.orders import Route

    request = NewOrder(
        command_id="c1",
        account="A1",
        member="M1",
        security=700,
        cl_ord_id="C1",
        side=Side.BUY,
        ord_type="LIMIT",
        time_in_force="DAY",
        price_e3=512_000,
        qty=100,
        route=Route.INTERNAL,
        ts_ns=1,
    )
    assert check(request, LIMITS, TENCENT, CASH, Exposure(), None, CONFIG) == decide(buy())
    other_firm = replace(request, member="M2")
    decision = check(other_firm, LIMITS, TENCENT, CASH, Exposure(), None, CONFIG)
    assert reason(decision) == RejectReason.MEMBER_MISMATCH
