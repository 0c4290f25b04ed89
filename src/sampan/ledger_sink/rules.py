"""Posting rules: a fill becomes balanced double-entry transfers. Pure: no I/O.

Units: prices are HK$0.001 integers (`price_e3`), quantities shares, cash HK cents. Rates are
integers in parts per 10^7 (`rate_e7`): 0.1% = 10_000, 0.00565% = 565, 0.0027% = 270,
0.00015% = 15, 1 basis point = 1_000.

Rounding rules (each tested against hand-computed examples):
- Consideration: `price_e3 * qty` is exact in HK$0.001. It becomes cents by rounding half to
  even (0.5 cent goes to the even cent), because it moves between two parties and half-even
  has no bias over many trades. Buyer and seller see the same cents, so cash balances.
- Charges are computed on the exact consideration (HK$0.001), not on the rounded cents:
  stamp duty is rounded UP to the whole dollar; SEHK trading fee, SFC levy, AFRC levy and
  commission to the nearest cent, half a cent rounding up (the levy tables' reading of
  "nearest cent"). A charge may have a minimum (commission does). A zero charge posts nothing.

Transfer semantics: a transfer moves `amount` of `asset` from `debit_account` to
`credit_account`; an account's balance is its credits less its debits. A transfer is a small
tuple named by its `leg`, a code unique within its fill (`LEGS` names every code): the journal
identifies a transfer by (fill, leg), and `transfer_id` spells it `<fill ref>:leg_name`. The buyer
pays the consideration to the seller, the seller delivers the shares to the buyer, and each member side
pays each charge to that charge's own account. The exchange side of an HKEX fill (member
`HKEX`, the clearing account) pays no charges here: HKEX settles its own.

Fill identity (`Fill.ref`, UNIQUE in the ledger forever): `INTERNAL:<exec_id>` for the internal
venue, whose exec ids never repeat; `HKEX:<YYYY-MM-DD>:<exec_id>` for HKEX, whose ExecIDs are
unique only within a trading day (they restart daily, see hkex_sim/ocg_ids.py), so the Hong Kong
calendar day of the fill's `ts_ns` (the venue's TransactTime) qualifies them.

Limits: one currency (HKD). Charges apply per member side on both venues alike.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from sampan.market.calendar import trading_day_iso
from sampan.market.parties import EXCHANGE_MEMBER, Venue

CASH_ASSET = "HKD"
RATE_SCALE = 10**7  # rates are parts per 10^7
E3_PER_CENT = 10
E3_PER_DOLLAR = 1_000
# The venue's own accounts: charges (`FEE.*`) and the bank account of cash movements
# (`BANK.*`); none of them may trade or be funded.
VENUE_ACCOUNT_PREFIXES = ("FEE.", "BANK.")
# Venues whose exec ids repeat from one trading day to the next: their fill identity carries
# the Hong Kong trading day.
DAILY_EXEC_ID_VENUES = frozenset({Venue.HKEX.value})


class InvalidFill(ValueError):
    """A fill that cannot be posted (non-positive price or quantity, self-trade account...)."""


class Rounding(enum.Enum):
    NEAREST_CENT = "nearest_cent"  # half a cent rounds up
    UP_TO_DOLLAR = "up_to_dollar"


class Reason(enum.Enum):
    """Reason code of a transfer; the value is stored in the journal."""

    CONSIDERATION = "consideration"
    DELIVERY = "delivery"
    STAMP_DUTY = "stamp_duty"
    TRADING_FEE = "trading_fee"
    SFC_LEVY = "sfc_levy"
    AFRC_LEVY = "afrc_levy"
    COMMISSION = "commission"
    DEPOSIT = "deposit"  # cash movements (cash.py), not fills
    WITHDRAWAL = "withdrawal"


@dataclass(frozen=True, slots=True)
class ChargeRule:
    reason: Reason
    account: str  # the account the charge is paid to
    rate_e7: int
    rounding: Rounding
    min_cents: int = 0
    # Derived once here, not per fill: the divisor of `consideration_e3 * rate_e7` that gives
    # the unit the charge rounds to, and whether it rounds up (to the dollar) or to nearest.
    divisor: int = field(init=False, repr=False, compare=False)
    rounds_up: bool = field(init=False, repr=False, compare=False)
    code: int = field(init=False, repr=False, compare=False)  # its legs: side base + code

    def __post_init__(self) -> None:
        assert self.reason in CHARGE_CODES, f"{self.reason} is not a charge"
        object.__setattr__(self, "code", CHARGE_CODES[self.reason])
        rounds_up = self.rounding is Rounding.UP_TO_DOLLAR
        unit = E3_PER_DOLLAR if rounds_up else E3_PER_CENT
        object.__setattr__(self, "rounds_up", rounds_up)
        object.__setattr__(self, "divisor", unit * RATE_SCALE)


def default_schedule(
    commission_rate_e7: int = 2_500, commission_min_cents: int = 5_000
) -> tuple[ChargeRule, ...]:
    """HKEX's statutory charges (reference/hkex.md) plus a broker commission (default 0.025%,
    minimum HK$50, both configurable)."""
    return (
        ChargeRule(Reason.STAMP_DUTY, "FEE.STAMP_DUTY", 10_000, Rounding.UP_TO_DOLLAR),
        ChargeRule(Reason.TRADING_FEE, "FEE.SEHK", 565, Rounding.NEAREST_CENT),
        ChargeRule(Reason.SFC_LEVY, "FEE.SFC", 270, Rounding.NEAREST_CENT),
        ChargeRule(Reason.AFRC_LEVY, "FEE.AFRC", 15, Rounding.NEAREST_CENT),
        ChargeRule(
            Reason.COMMISSION,
            "FEE.COMMISSION",
            commission_rate_e7,
            Rounding.NEAREST_CENT,
            commission_min_cents,
        ),
    )


@dataclass(frozen=True, slots=True)
class Fill:
    """The ledger's view of a Fill record (see schemas/avsc/Fill.avsc)."""

    exec_id: str
    venue: str
    security: int
    price_e3: int
    qty: int
    buy_account: str
    buy_member: str
    sell_account: str
    sell_member: str
    ts_ns: int
    # The fill's identity (see the module docstring); every transfer id starts with it. Built
    # once here: the sink reads it several times per fill.
    ref: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ref", fill_ref(self.venue, self.exec_id, self.ts_ns))


def fill_ref(venue: str, exec_id: str, ts_ns: int) -> str:
    """A fill's identity: `venue:exec_id`, or `venue:YYYY-MM-DD:exec_id` for a venue whose exec
    ids restart every trading day (HKEX)."""
    if venue in DAILY_EXEC_ID_VENUES:
        return f"{venue}:{trading_day_iso(ts_ns)}:{exec_id}"
    return f"{venue}:{exec_id}"


# Leg codes, stored in the journal as a SMALLINT (and named in its `legs` table): the two
# movements of the trade, then each charge of the buying side and of the selling side.
LEG_CASH = 1
LEG_SHARES = 2
BUY_CHARGE_LEG_BASE = 10
SELL_CHARGE_LEG_BASE = 20
# The legs of a cash movement (cash.py): its journal rows share the `fill_id` column, an entry
# id from the same sequence as fills, and these codes tell a movement's rows from a fill's.
LEG_DEPOSIT = 31
LEG_WITHDRAWAL = 32
MOVEMENT_LEGS = (LEG_DEPOSIT, LEG_WITHDRAWAL)
CHARGE_CODES: dict[Reason, int] = {
    Reason.STAMP_DUTY: 1,
    Reason.TRADING_FEE: 2,
    Reason.SFC_LEVY: 3,
    Reason.AFRC_LEVY: 4,
    Reason.COMMISSION: 5,
}


def _all_legs() -> dict[int, tuple[str, Reason]]:
    legs = {LEG_CASH: ("cash", Reason.CONSIDERATION), LEG_SHARES: ("shares", Reason.DELIVERY)}
    for side, base in (("buy", BUY_CHARGE_LEG_BASE), ("sell", SELL_CHARGE_LEG_BASE)):
        for reason, code in CHARGE_CODES.items():
            legs[base + code] = (f"{side}.{reason.value}", reason)
    legs[LEG_DEPOSIT] = ("deposit", Reason.DEPOSIT)
    legs[LEG_WITHDRAWAL] = ("withdrawal", Reason.WITHDRAWAL)
    return legs


LEGS: dict[int, tuple[str, Reason]] = _all_legs()  # leg code -> (name, reason)


class Transfer(NamedTuple):
    """One journal row of a fill. A plain tuple: a fill makes about eleven, and the sink
    handles tens of thousands of fills a second (a frozen dataclass costs several times more
    to build). Its identity is (the fill, `leg`)."""

    leg: int
    debit_account: str
    credit_account: str
    asset: str
    amount: int  # cents for HKD, shares for a security; always > 0

    @property
    def reason(self) -> Reason:
        return LEGS[self.leg][1]

    @property
    def leg_name(self) -> str:
        return LEGS[self.leg][0]


def transfer_id(fill_ref: str, transfer: Transfer) -> str:
    """A transfer's readable identity, `<fill ref>:leg_name` (the journal view's `id`)."""
    return f"{fill_ref}:{transfer.leg_name}"


def round_half_even(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded to the nearest integer, ties to even."""
    assert denominator > 0
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        quotient += 1
    return quotient


def round_half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded to the nearest integer, ties away from zero (n >= 0)."""
    assert denominator > 0 and numerator >= 0
    return (2 * numerator + denominator) // (2 * denominator)


def ceil_div(numerator: int, denominator: int) -> int:
    assert denominator > 0
    return -(-numerator // denominator)


def consideration_cents(price_e3: int, qty: int) -> int:
    return round_half_even(price_e3 * qty, E3_PER_CENT)


def charge_cents(rule: ChargeRule, consideration_e3: int) -> int:
    """One side's charge on an exact consideration in HK$0.001."""
    exact_e3_e7 = consideration_e3 * rule.rate_e7  # HK$0.001 x 10^7
    if rule.rounds_up:
        cents = 100 * ceil_div(exact_e3_e7, rule.divisor)  # whole dollars, in cents
    else:
        cents = round_half_up(exact_e3_e7, rule.divisor)
    return max(cents, rule.min_cents)


def validate(fill: Fill) -> None:
    if fill.qty <= 0:
        raise InvalidFill(f"{fill.ref}: quantity {fill.qty} is not positive")
    if fill.price_e3 <= 0:
        raise InvalidFill(f"{fill.ref}: price_e3 {fill.price_e3} is not positive")
    if not fill.buy_account or not fill.sell_account or not fill.exec_id:
        raise InvalidFill(f"{fill.ref}: empty account or exec id")
    if fill.buy_account == fill.sell_account:
        raise InvalidFill(f"{fill.ref}: buyer and seller are the same account {fill.buy_account}")
    if fill.buy_account.startswith(VENUE_ACCOUNT_PREFIXES) or fill.sell_account.startswith(
        VENUE_ACCOUNT_PREFIXES
    ):
        raise InvalidFill(f"{fill.ref}: a charge or funding account cannot trade")


def post_fill(fill: Fill, schedule: tuple[ChargeRule, ...]) -> tuple[Transfer, ...]:
    """The balanced transfers of one fill. Raises InvalidFill for a fill that cannot be posted."""
    validate(fill)
    consideration_e3 = fill.price_e3 * fill.qty
    buyer, seller = fill.buy_account, fill.sell_account
    transfers: list[Transfer] = []
    cash_cents = round_half_even(consideration_e3, E3_PER_CENT)
    if cash_cents:
        transfers.append(Transfer(LEG_CASH, buyer, seller, CASH_ASSET, cash_cents))
    transfers.append(Transfer(LEG_SHARES, seller, buyer, str(fill.security), fill.qty))
    buyer_pays = fill.buy_member != EXCHANGE_MEMBER
    seller_pays = fill.sell_member != EXCHANGE_MEMBER
    if not (buyer_pays or seller_pays):
        return tuple(transfers)
    # Both sides pay the same charges on the same consideration: compute them once.
    for rule in schedule:
        amount = charge_cents(rule, consideration_e3)
        if not amount:
            continue
        code = rule.code
        if buyer_pays:
            transfers.append(
                Transfer(BUY_CHARGE_LEG_BASE + code, buyer, rule.account, CASH_ASSET, amount)
            )
        if seller_pays:
            transfers.append(
                Transfer(SELL_CHARGE_LEG_BASE + code, seller, rule.account, CASH_ASSET, amount)
            )
    return tuple(transfers)


def deltas(transfers: Iterable[Transfer]) -> dict[tuple[str, str], int]:
    """Net change of each (account, asset) balance: credits less debits."""
    result: dict[tuple[str, str], int] = defaultdict(int)
    for _, debit_account, credit_account, asset, amount in transfers:
        result[(credit_account, asset)] += amount
        result[(debit_account, asset)] -= amount
    return dict(result)


def unbalanced_assets(transfers: Iterable[Transfer]) -> dict[str, int]:
    """Assets whose debits and credits differ, with the difference; empty when balanced.

    Every transfer debits and credits the same amount, so this is a check on the code that
    builds transfers (and on `deltas`), run after every batch as house style rule 6 asks."""
    per_asset: dict[str, int] = defaultdict(int)
    for (_, asset), delta in deltas(transfers).items():
        per_asset[asset] += delta
    return {asset: total for asset, total in per_asset.items() if total}
