"""Posting rules: hand-computed rounding examples and property tests of conservation."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import replace
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from sampan.ledger_sink.rules import (
    CASH_ASSET,
    LEGS,
    ChargeRule,
    Fill,
    InvalidFill,
    Reason,
    Rounding,
    charge_cents,
    consideration_cents,
    default_schedule,
    deltas,
    post_fill,
    round_half_even,
    round_half_up,
    transfer_id,
    unbalanced_assets,
)
from sampan.market.calendar import trading_day_iso

SCHEDULE = default_schedule()
RULES = {rule.reason: rule for rule in SCHEDULE}


def fill(price_e3: int = 380_000, qty: int = 100, venue: str = "INTERNAL", **kw: str) -> Fill:
    fields = {
        "buy_account": "A",
        "buy_member": "M1",
        "sell_account": "B",
        "sell_member": "M2",
    } | kw
    return Fill(
        exec_id="E1", venue=venue, security=700, price_e3=price_e3, qty=qty, ts_ns=1, **fields
    )


# -- hand-computed rounding --------------------------------------------------------------


def test_consideration_rounds_half_even_to_the_cent() -> None:
    assert consideration_cents(380_000, 100) == 3_800_000  # HK$380.000 x 100 = HK$38,000.00
    assert consideration_cents(11, 5) == 6  # HK$0.055 -> 5.5 cents -> 6 (6 is even)
    assert consideration_cents(13, 5) == 6  # HK$0.065 -> 6.5 cents -> 6 (6 is even)
    assert consideration_cents(17, 5) == 8  # HK$0.085 -> 8.5 cents -> 8
    assert consideration_cents(1, 1) == 0  # HK$0.001 -> 0.1 cent -> 0
    assert consideration_cents(1, 6) == 1  # HK$0.006 -> 0.6 cent -> 1


def test_stamp_duty_rounds_up_to_the_dollar() -> None:
    stamp = RULES[Reason.STAMP_DUTY]
    assert charge_cents(stamp, 38_000_000) == 3_800  # 0.1% of HK$38,000 = HK$38 exactly
    assert charge_cents(stamp, 38_000_010) == 3_900  # HK$38.00001 -> HK$39
    assert charge_cents(stamp, 55) == 100  # 0.1% of HK$0.055 -> HK$1
    assert charge_cents(stamp, 999_999) == 100  # HK$0.999999 -> HK$1


def test_levies_and_fee_round_to_the_nearest_cent() -> None:
    fee, sfc, afrc = RULES[Reason.TRADING_FEE], RULES[Reason.SFC_LEVY], RULES[Reason.AFRC_LEVY]
    assert charge_cents(fee, 38_000_000) == 215  # 0.00565% of 38,000 = 2.147 -> 2.15
    assert charge_cents(sfc, 38_000_000) == 103  # 0.0027% of 38,000 = 1.026 -> 1.03
    assert charge_cents(afrc, 38_000_000) == 6  # 0.00015% of 38,000 = 0.057 -> 0.06
    assert charge_cents(afrc, 10_000_000) == 2  # 0.015 exactly: half a cent rounds up
    assert charge_cents(afrc, 3_000_000) == 0  # 0.0045 -> 0.00
    assert charge_cents(sfc, 1_000_000) == 3  # 0.027 -> 0.03


def test_commission_has_a_minimum() -> None:
    commission = RULES[Reason.COMMISSION]  # 0.025%, minimum HK$50
    assert charge_cents(commission, 38_000_000) == 5_000  # HK$9.50 -> the HK$50 minimum
    assert charge_cents(commission, 1_000_000_000) == 25_000  # HK$1m -> HK$250
    custom = ChargeRule(Reason.COMMISSION, "FEE.C", 1_000, Rounding.NEAREST_CENT, 0)  # 1 bp
    assert charge_cents(custom, 1_000_000_000) == 10_000


def test_rounding_helpers() -> None:
    assert [round_half_even(n, 10) for n in (-15, -5, 5, 15, 25, 26)] == [-2, 0, 0, 2, 2, 3]
    assert [round_half_up(n, 10) for n in (4, 5, 14, 15)] == [0, 1, 1, 2]


def test_a_member_trade_posts_every_leg() -> None:
    transfers = post_fill(fill(), SCHEDULE)
    by_id = {transfer_id("INTERNAL:E1", t): t for t in transfers}
    assert len(by_id) == len(transfers)  # one transfer per leg
    cash = by_id["INTERNAL:E1:cash"]
    assert (cash.debit_account, cash.credit_account, cash.amount) == ("A", "B", 3_800_000)
    shares = by_id["INTERNAL:E1:shares"]
    assert (shares.debit_account, shares.credit_account, shares.asset) == ("B", "A", "700")
    assert by_id["INTERNAL:E1:buy.stamp_duty"].credit_account == "FEE.STAMP_DUTY"
    assert by_id["INTERNAL:E1:sell.afrc_levy"].debit_account == "B"
    assert by_id["INTERNAL:E1:sell.afrc_levy"].reason is Reason.AFRC_LEVY
    assert len(transfers) == 2 + 2 * 5
    assert unbalanced_assets(transfers) == {}


def test_the_exchange_side_pays_no_charges() -> None:
    transfers = post_fill(
        fill(venue="HKEX", sell_account="HKEX.CLEARING", sell_member="HKEX"),
        SCHEDULE,
    )
    assert {t.debit_account for t in transfers if t.reason.value.endswith("levy")} == {"A"}
    assert len(transfers) == 2 + 5


def test_invalid_fills_are_refused() -> None:
    for bad in (
        fill(qty=0),
        fill(price_e3=-1),
        fill(sell_account="A"),
        fill(buy_account="FEE.SFC"),
        fill(sell_account="BANK.HKD"),
    ):
        try:
            post_fill(bad, SCHEDULE)
        except InvalidFill:
            continue
        raise AssertionError(f"{bad} was posted")


# -- properties -------------------------------------------------------------------------

ACCOUNTS = ("A", "B", "C", "D", "HKEX.CLEARING")
fills_strategy = st.builds(
    lambda n, price, qty, pair, security: Fill(
        exec_id=f"E{n}",
        venue="HKEX" if "HKEX.CLEARING" in pair else "INTERNAL",
        security=security,
        price_e3=price,
        qty=qty,
        buy_account=pair[0],
        buy_member="HKEX" if pair[0] == "HKEX.CLEARING" else "M",
        sell_account=pair[1],
        sell_member="HKEX" if pair[1] == "HKEX.CLEARING" else "M",
        ts_ns=n,
    ),
    st.integers(0, 10**6),
    st.integers(1, 10_000_000),
    st.integers(1, 3_000_000),
    st.permutations(ACCOUNTS).map(lambda p: (p[0], p[1])),
    st.sampled_from((5, 700, 9988)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(fills_strategy, max_size=30))
def test_any_sequence_of_fills_conserves_cash_and_shares(fills: list[Fill]) -> None:
    totals: dict[str, int] = defaultdict(int)
    for f in fills:
        transfers = post_fill(f, SCHEDULE)
        assert all(t.amount > 0 and t.debit_account != t.credit_account for t in transfers)
        assert unbalanced_assets(transfers) == {}
        for (_, asset), delta in deltas(transfers).items():
            totals[asset] += delta
        # Shares move exactly once, from seller to buyer.
        moved = deltas(transfers)
        assert moved[(f.buy_account, str(f.security))] == f.qty
        assert moved[(f.sell_account, str(f.security))] == -f.qty
    assert all(total == 0 for total in totals.values())


@settings(max_examples=500, deadline=None)
@given(st.integers(1, 10_000_000), st.integers(1, 3_000_000))
def test_every_charge_rounds_by_its_rule(price_e3: int, qty: int) -> None:
    consideration_e3 = price_e3 * qty
    exact_dollars = Fraction(consideration_e3, 1000)
    assert consideration_cents(price_e3, qty) == round(exact_dollars * 100)  # half-even
    for rule in SCHEDULE:
        exact_cents = exact_dollars * 100 * Fraction(rule.rate_e7, 10**7)
        if rule.rounding is Rounding.UP_TO_DOLLAR:
            expected = math.ceil(exact_cents / 100) * 100
        else:
            expected = math.floor(exact_cents + Fraction(1, 2))
        assert charge_cents(rule, consideration_e3) == max(expected, rule.min_cents)


@settings(max_examples=200, deadline=None)
@given(fills_strategy)
def test_a_buyer_pays_consideration_plus_charges(f: Fill) -> None:
    transfers = post_fill(f, SCHEDULE)
    paid = -deltas(transfers).get((f.buy_account, CASH_ASSET), 0)
    charges = 0
    if f.buy_member != "HKEX":
        charges = sum(charge_cents(rule, f.price_e3 * f.qty) for rule in SCHEDULE)
    assert paid == consideration_cents(f.price_e3, f.qty) + charges


def test_the_migration_names_every_leg_as_the_rules_do() -> None:
    """The migration freezes the leg codes in its `legs` table; they must match rules.LEGS."""
    from sampan.ledger_sink.migrations.versions.v0001_initial import LEGS as FIRST_LEGS
    from sampan.ledger_sink.migrations.versions.v0002_limits_and_cash import LEGS as CASH_LEGS

    migration_legs = FIRST_LEGS + CASH_LEGS
    assert {leg: (name, reason) for leg, name, reason in migration_legs} == {
        leg: (name, reason.value) for leg, (name, reason) in LEGS.items()
    }


@settings(max_examples=200, deadline=None)
@given(fills_strategy)
def test_a_fill_posts_at_most_one_transfer_per_leg(f: Fill) -> None:
    legs = [t.leg for t in post_fill(f, SCHEDULE)]
    assert len(legs) == len(set(legs)) and set(legs) <= set(LEGS)


# -- fill identity -----------------------------------------------------------------------

HK_MIDNIGHT_NS = 1_750_003_200 * 10**9  # 2025-06-16 00:00 in Hong Kong (15 June 16:00 UTC)


def test_an_hkex_fill_is_identified_by_its_hong_kong_trading_day() -> None:
    """HKEX ExecIDs restart every trading day: the same ExecID on two days is two fills."""
    hkex = fill(venue="HKEX", buy_account="HKEX.CLEARING", buy_member="HKEX")
    day1 = replace(hkex, ts_ns=HK_MIDNIGHT_NS - 1)
    day2 = replace(hkex, ts_ns=HK_MIDNIGHT_NS)
    assert day1.ref == "HKEX:2025-06-15:E1"
    assert day2.ref == "HKEX:2025-06-16:E1"
    assert transfer_id(day2.ref, post_fill(day2, SCHEDULE)[0]) == "HKEX:2025-06-16:E1:cash"
    assert (
        trading_day_iso(0) == "1970-01-01" and trading_day_iso(16 * 3_600 * 10**9) == "1970-01-02"
    )


def test_an_internal_fill_keeps_venue_and_exec_id() -> None:
    assert fill().ref == "INTERNAL:E1"
    assert replace(fill(), ts_ns=HK_MIDNIGHT_NS).ref == "INTERNAL:E1"
