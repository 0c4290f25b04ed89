"""Pre-trade risk for one order of one account. Pure: no I/O, no clock, no state of its own.

`check` answers one question: may this new order (or this amend's new terms) go to a venue,
and if so, how much cash must be held for it while it is open. Checks, in this order (the
first failure is the reject reason): account known and enabled; instrument known and enabled;
quantity positive, whole board lots, at most `lots_max` lots; price on the instrument's spread
table and on tick (limit orders); price within the collar around the reference price (the last
trade, else the previous close); notional at most the account's fat-finger limit; no new risk
while equity is below the cut-loss level (sells of held inventory still pass); sells covered by
inventory unless the account may short; buys within buying power.

Money (all integers, house style rule 1):
- a price times a quantity is exact in HK$0.001: `notional_e3 = price_e3 * qty`;
- cash is HK cents; a hold converts HK$0.001 to cents rounding UP (`-(-x // 10)`), and adds
  `charges_margin_bps` of the notional (also rounded up), so a hold never understates what a
  fill will cost;
- the fat-finger limit compares `notional_e3` with `max_order_notional_cents * 10` exactly;
- the collar compares `|price - reference| * 10_000` with `reference * collar_bps` exactly.
Buying power = cash (latest ledger snapshot; 0 without one) + credit line - holds of open
orders and of fills the ledger has not yet reported.

Limits: an account without a ledger snapshot is not subject to cut-loss (its equity is not
known yet, not negative); a market order is held at the reference price plus
`market_hold_bps`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from sampan.market.rules import PRICE_MAX_E3, PRICE_MIN_E3, SPREAD_TABLES

E3_PER_CENT = 10
BPS = 10_000


class RejectReason(enum.StrEnum):
    """Reason codes of router rejects; they travel as `reject_reason` on orders.events."""

    ACCOUNT_UNKNOWN = "ACCOUNT_UNKNOWN"
    ACCOUNT_DISABLED = "ACCOUNT_DISABLED"
    MEMBER_MISMATCH = "MEMBER_MISMATCH"
    INSTRUMENT_UNKNOWN = "INSTRUMENT_UNKNOWN"
    INSTRUMENT_DISABLED = "INSTRUMENT_DISABLED"
    INVALID_QTY = "INVALID_QTY"
    NOT_BOARD_LOT = "NOT_BOARD_LOT"
    TOO_MANY_LOTS = "TOO_MANY_LOTS"
    INVALID_PRICE = "INVALID_PRICE"
    OFF_TICK = "OFF_TICK"
    NO_REFERENCE_PRICE = "NO_REFERENCE_PRICE"
    PRICE_COLLAR = "PRICE_COLLAR"
    MAX_NOTIONAL = "MAX_NOTIONAL"
    CUT_LOSS = "CUT_LOSS"
    SHORT_NOT_ALLOWED = "SHORT_NOT_ALLOWED"
    INSUFFICIENT_INVENTORY = "INSUFFICIENT_INVENTORY"
    INSUFFICIENT_BUYING_POWER = "INSUFFICIENT_BUYING_POWER"
    # Routing rejects, decided outside `check` but reported the same way.
    INVALID_FIELD = "INVALID_FIELD"  # a string too long, a number out of range (`mapping`)
    INVALID_TIMESTAMP = "INVALID_TIMESTAMP"  # ts_ns not a plausible time of the request
    DUPLICATE_CL_ORD_ID = "DUPLICATE_CL_ORD_ID"  # used by the account today already
    UNKNOWN_ORDER = "UNKNOWN_ORDER"
    NOTHING_TO_CANCEL = "NOTHING_TO_CANCEL"  # a MASS_CANCEL that matches no open order
    CANCEL_PENDING = "CANCEL_PENDING"  # a CANCEL of an order whose cancel is already pending
    TOO_LATE_TO_CANCEL = "TOO_LATE_TO_CANCEL"  # the order ended otherwise before the cancel
    UNSUPPORTED = "UNSUPPORTED"
    OPEN_ORDERS_LIMIT = "OPEN_ORDERS_LIMIT"
    VENUE_REJECTED = "VENUE_REJECTED"


class Side(enum.StrEnum):
    BUY = "BUY"
    SELL = "SELL"
    SELL_SHORT = "SELL_SHORT"


@dataclass(frozen=True, slots=True)
class AccountLimits:
    """An `Account` record of reference.accounts."""

    account: str
    member: str
    credit_line_cents: int
    cut_loss_cents: int
    max_order_notional_cents: int
    allow_short: bool
    stp: str
    enabled: bool


@dataclass(frozen=True, slots=True)
class InstrumentRef:
    """An `Instrument` record, with the spread table already resolved to the matcher's code."""

    security: int
    board_lot: int
    spread_table: int
    prev_close_e3: int
    enabled: bool


@dataclass(frozen=True, slots=True)
class Balance:
    """The latest `AccountSnapshot` of an account on ledger.balances."""

    cash_cents: int
    equity_cents: int
    positions: Mapping[int, int] = field(default_factory=dict)  # security → shares


@dataclass(frozen=True, slots=True)
class Exposure:
    """What the router itself has committed for the account and not yet seen in the ledger."""

    holds_cents: int = 0  # open buy orders plus buy fills the ledger has not reported
    sells_committed: Mapping[int, int] = field(default_factory=dict)  # security → shares


@dataclass(frozen=True, slots=True)
class OrderTerms:
    side: Side
    security: int
    market: bool  # MARKET order: no limit price
    price_e3: int  # 0 for a market order
    qty: int


@dataclass(frozen=True, slots=True)
class RiskConfig:
    collar_bps: int = 1_000  # a limit price more than 10% from the reference is a fat finger
    market_hold_bps: int = 500  # a market buy is held at the reference price plus 5%
    charges_margin_bps: int = 20  # stamp duty, levies, fees and commission, rounded up
    lots_max: int = 3_000  # HKEX's maximum order size in board lots

    def __post_init__(self) -> None:
        assert 0 < self.collar_bps < BPS and 0 <= self.market_hold_bps < BPS
        assert 0 <= self.charges_margin_bps < BPS and self.lots_max > 0


@dataclass(frozen=True, slots=True)
class Approved:
    hold_price_e3: int  # the price holds are computed at (the limit, or the market hold price)
    hold_cents: int  # cash held for the whole order (0 for sells)


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: RejectReason
    text: str


Decision = Approved | Rejected


def cents_up(amount_e3: int) -> int:
    """HK$0.001 → HK cents, rounding up (a hold must never understate a cost)."""
    return -(-amount_e3 // E3_PER_CENT)


def hold_cents(price_e3: int, qty: int, config: RiskConfig) -> int:
    """Cash held for `qty` shares bought at `price_e3`: the notional plus the charges margin."""
    notional_e3 = price_e3 * qty
    return cents_up(notional_e3) + cents_up(-(-notional_e3 * config.charges_margin_bps // BPS))


def reference_price_e3(last_e3: int | None, instrument: InstrumentRef) -> int:
    """The collar's anchor: the last trade, else the previous close (0 when neither)."""
    return last_e3 if last_e3 else instrument.prev_close_e3


def check(
    terms: OrderTerms,
    member: str,
    limits: AccountLimits | None,
    instrument: InstrumentRef | None,
    balance: Balance | None,
    exposure: Exposure,
    last_e3: int | None,
    config: RiskConfig,
) -> Decision:
    """May this order go to a venue? See the module docstring for the order of checks."""
    if limits is None:
        return Rejected(RejectReason.ACCOUNT_UNKNOWN, "account has no limits on reference.accounts")
    if not limits.enabled:
        return Rejected(RejectReason.ACCOUNT_DISABLED, "account disabled")
    if limits.member != member:
        return Rejected(RejectReason.MEMBER_MISMATCH, f"account belongs to {limits.member}")
    if instrument is None:
        return Rejected(RejectReason.INSTRUMENT_UNKNOWN, f"security {terms.security} not listed")
    if not instrument.enabled:
        return Rejected(RejectReason.INSTRUMENT_DISABLED, f"security {terms.security} halted")
    static = _static_checks(terms, instrument, config)
    if static is not None:
        return static
    reference_e3 = reference_price_e3(last_e3, instrument)
    if reference_e3 <= 0:
        return Rejected(RejectReason.NO_REFERENCE_PRICE, "no last trade and no previous close")
    if terms.market:
        hold_price_e3 = reference_e3 * (BPS + config.market_hold_bps) // BPS
    else:
        if abs(terms.price_e3 - reference_e3) * BPS > reference_e3 * config.collar_bps:
            return Rejected(
                RejectReason.PRICE_COLLAR,
                f"price {terms.price_e3} outside {config.collar_bps} bps of {reference_e3}",
            )
        hold_price_e3 = terms.price_e3
    notional_e3 = hold_price_e3 * terms.qty
    if notional_e3 > limits.max_order_notional_cents * E3_PER_CENT:
        return Rejected(
            RejectReason.MAX_NOTIONAL,
            f"notional {notional_e3} e3 above {limits.max_order_notional_cents} cents",
        )
    if terms.side is Side.BUY:
        return _buy(terms, limits, balance, exposure, hold_price_e3, config)
    return _sell(terms, limits, balance, exposure, hold_price_e3)


def _static_checks(
    terms: OrderTerms, instrument: InstrumentRef, config: RiskConfig
) -> Rejected | None:
    if terms.qty <= 0:
        return Rejected(RejectReason.INVALID_QTY, f"quantity {terms.qty}")
    if terms.qty % instrument.board_lot:
        return Rejected(RejectReason.NOT_BOARD_LOT, f"board lot is {instrument.board_lot}")
    if terms.qty // instrument.board_lot > config.lots_max:
        return Rejected(RejectReason.TOO_MANY_LOTS, f"at most {config.lots_max} lots")
    if terms.market:
        return (
            None
            if terms.price_e3 == 0
            else Rejected(RejectReason.INVALID_PRICE, "a market order has no price")
        )
    if not PRICE_MIN_E3 <= terms.price_e3 <= PRICE_MAX_E3:
        return Rejected(RejectReason.INVALID_PRICE, f"price {terms.price_e3} outside the table")
    if not SPREAD_TABLES[instrument.spread_table].is_on_tick(terms.price_e3):
        return Rejected(RejectReason.OFF_TICK, f"price {terms.price_e3} is not on tick")
    return None


def _cut_loss(limits: AccountLimits, balance: Balance | None) -> Rejected | None:
    if balance is not None and balance.equity_cents < limits.cut_loss_cents:
        return Rejected(
            RejectReason.CUT_LOSS,
            f"equity {balance.equity_cents} below cut-loss {limits.cut_loss_cents} cents",
        )
    return None


def _buy(
    terms: OrderTerms,
    limits: AccountLimits,
    balance: Balance | None,
    exposure: Exposure,
    hold_price_e3: int,
    config: RiskConfig,
) -> Decision:
    breached = _cut_loss(limits, balance)
    if breached is not None:
        return breached
    cost_cents = hold_cents(hold_price_e3, terms.qty, config)
    cash_cents = balance.cash_cents if balance is not None else 0
    available_cents = cash_cents + limits.credit_line_cents - exposure.holds_cents
    if cost_cents > available_cents:
        return Rejected(
            RejectReason.INSUFFICIENT_BUYING_POWER,
            f"needs {cost_cents} cents, {available_cents} available",
        )
    return Approved(hold_price_e3, cost_cents)


def _sell(
    terms: OrderTerms,
    limits: AccountLimits,
    balance: Balance | None,
    exposure: Exposure,
    hold_price_e3: int,
) -> Decision:
    held = balance.positions.get(terms.security, 0) if balance is not None else 0
    free = held - exposure.sells_committed.get(terms.security, 0)
    covered = terms.side is Side.SELL and free >= terms.qty
    if covered:
        return Approved(hold_price_e3, 0)  # reducing inventory is allowed even under cut-loss
    if not limits.allow_short:
        if terms.side is Side.SELL_SHORT:
            return Rejected(RejectReason.SHORT_NOT_ALLOWED, "account may not sell short")
        return Rejected(
            RejectReason.INSUFFICIENT_INVENTORY, f"holds {free} free shares, sells {terms.qty}"
        )
    breached = _cut_loss(limits, balance)
    return breached if breached is not None else Approved(hold_price_e3, 0)
