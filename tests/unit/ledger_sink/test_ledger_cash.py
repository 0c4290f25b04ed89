"""Cash movements and account limits: the pure parts (transfers, validation, record mapping)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sampan.ledger_sink.cash import (
    FUNDING_ACCOUNT,
    CashMovement,
    CashReason,
    Direction,
    InvalidMovement,
    movement_transfer,
    opening_ref,
)
from sampan.ledger_sink.limits import (
    AccountLimits,
    InvalidLimits,
    Removed,
    latest_per_account,
    limits_from_record,
)
from sampan.ledger_sink.rules import LEG_DEPOSIT, LEG_WITHDRAWAL, LEGS, Reason, unbalanced_assets
from sampan.ledger_sink.snapshot import AccountState, snapshot
from sampan.schemas import registry
from sampan.tools.seed import AccountSeed, account_record


def movement(**overrides: object) -> CashMovement:
    fields: dict[str, object] = {
        "ref": "dep-1",
        "account": "ACC1",
        "direction": Direction.DEPOSIT,
        "amount_cents": 1_000_00,
        "reason": CashReason.TOP_UP,
        "ts_ns": 1,
    }
    fields.update(overrides)
    return CashMovement(**fields)  # type: ignore[arg-type]


def test_a_deposit_moves_cash_from_the_bank_and_a_withdrawal_back() -> None:
    deposit = movement_transfer(movement())
    assert deposit == (LEG_DEPOSIT, FUNDING_ACCOUNT, "ACC1", "HKD", 1_000_00)
    assert deposit.reason is Reason.DEPOSIT and LEGS[LEG_DEPOSIT][0] == "deposit"
    withdrawal = movement_transfer(movement(direction=Direction.WITHDRAWAL))
    assert withdrawal == (LEG_WITHDRAWAL, "ACC1", FUNDING_ACCOUNT, "HKD", 1_000_00)
    assert unbalanced_assets([deposit, withdrawal]) == {}


@given(st.integers(1, 10**15), st.sampled_from(list(Direction)))
def test_every_movement_is_balanced(amount: int, direction: Direction) -> None:
    transfer = movement_transfer(movement(amount_cents=amount, direction=direction))
    assert transfer.amount == amount and unbalanced_assets([transfer]) == {}


@pytest.mark.parametrize(
    "bad",
    [
        {"amount_cents": 0},
        {"amount_cents": -5},
        {"amount_cents": 10**15 + 1},
        {"ref": ""},
        {"ref": "has space"},
        {"ref": "-leading-dash"},
        {"ref": "x" * 129},
        {"account": ""},
        {"account": "FEE.SFC"},
        {"account": FUNDING_ACCOUNT},
    ],
)
def test_invalid_movements_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(InvalidMovement):
        movement_transfer(movement(**bad))


def test_a_replay_is_the_same_movement_whatever_its_time() -> None:
    assert movement().same_as(movement(ts_ns=99))
    assert not movement().same_as(movement(amount_cents=2))
    assert not movement().same_as(movement(reason=CashReason.CORRECTION))
    assert opening_ref("ACC1") == "seed:ACC1:opening"
    movement_transfer(movement(ref=opening_ref("ACC1")))  # a valid reference


def test_limits_from_an_account_record() -> None:
    seed = AccountSeed("ACC1", "M1", 5_000_00, 1_000_00, 500_00, 10**9, allow_short=False)
    record = registry().decode("Account", registry().encode("Account", account_record(seed, 7)))
    assert limits_from_record(record, offset=3) == AccountLimits(
        "ACC1", "M1", 1_000_00, 500_00, False, True, 3, 7
    )
    for bad in (
        {"account": ""},
        {"account": "FEE.X"},
        {"member": ""},
        {"credit_line_cents": -1},
    ):
        with pytest.raises(InvalidLimits):
            limits_from_record(record | bad, offset=3)


def test_the_newest_change_per_account_wins_in_account_order() -> None:
    def limits(account: str, offset: int) -> AccountLimits:
        return AccountLimits(account, "M", offset, 0, True, True, offset, 0)

    changes = [limits("B", 5), limits("A", 1), Removed("B", 6), limits("A", 4), limits("A", 2)]
    assert latest_per_account(changes) == [limits("A", 4), Removed("B", 6)]


def test_a_funded_account_is_not_under_cut_loss() -> None:
    """The problem this fixes: without a deposit a buyer's equity is negative."""
    bought = AccountState("A", "M", -380_000_00, 0, 1_000_000_00, 100_000_00, ((700, 1000),))
    prices = {700: 380_000}
    assert snapshot(bought, prices, 0).cut_loss_breached
    funded = AccountState("A", "M", 120_000_00, 0, 1_000_000_00, 100_000_00, ((700, 1000),))
    snap = snapshot(funded, prices, 0)
    assert (snap.cash_cents, snap.equity_cents, snap.credit_line_used_cents) == (
        120_000_00,
        500_000_00,
        0,
    )
    assert not snap.cut_loss_breached
