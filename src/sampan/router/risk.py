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
from typing import Protocol

from sampan.market.rules import PRICE_MAX_E3, PRICE_MIN_E3, SPREAD_TABLES
from sampan.market.side import Side

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
    # Live risk blocked the account on a marked-to-market breach (risk.controls) until a risk
    # officer re-enables it: orders that add risk are refused, reducing sells still pass.
    CUT_LOSS_BREACHED = "CUT_LOSS_BREACHED"
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


class RiskOrder(Protocol):
    """What `check` reads of an order: the typed `NewOrder` as it entered the router, or the
    `OrderTerms` of an amend (the order's member, side and security; the amend's price and
    quantity)."""

    @property
    def member(self) -> str: ...
    @property
    def side(self) -> Side: ...
    @property
    def security(self) -> int: ...
    @property
    def market(self) -> bool: ...  # MARKET order: no limit price
    @property
    def price_e3(self) -> int: ...  # 0 for a market order
    @property
    def qty(self) -> int: ...


@dataclass(frozen=True, slots=True)
class OrderTerms:
    """A `RiskOrder` made of its fields (an amend's terms)."""

    member: str
    side: Side
    security: int
    market: bool
    price_e3: int
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
class Check:
    """One check `check` made, for the decision record: the figure it compared with its limit
    (None where the check compares no number), named by the reason code it gives on failure."""

    name: str
    passed: bool
    value: int | None = None
    limit: int | None = None
    unit: str = ""  # cents, e3, shares, lots, orders, or empty
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Approved:
    hold_price_e3: int  # the price holds are computed at (the limit, or the market hold price)
    hold_cents: int  # cash held for the whole order (0 for sells)
    # Every check made, in order (all passed); the record of the decision, not its outcome.
    checks: tuple[Check, ...] = field(default=(), compare=False)


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: RejectReason
    text: str
    # The checks made, in order; the last one failed.
    checks: tuple[Check, ...] = field(default=(), compare=False)


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


class _Trail:
    """The checks of one `check` call, in order, so the decision can be recorded whole."""

    def __init__(self) -> None:
        self.checks: list[Check] = []

    def ok(
        self,
        name: RejectReason,
        value: int | None = None,
        limit: int | None = None,
        unit: str = "",
        detail: str = "",
    ) -> None:
        self.checks.append(Check(str(name), True, value, limit, unit, detail))

    def fail(
        self,
        reason: RejectReason,
        text: str,
        value: int | None = None,
        limit: int | None = None,
        unit: str = "",
    ) -> Rejected:
        self.checks.append(Check(str(reason), False, value, limit, unit, text))
        return Rejected(reason, text, tuple(self.checks))

    def approve(self, hold_price_e3: int, hold_cents: int) -> Approved:
        return Approved(hold_price_e3, hold_cents, tuple(self.checks))


def check(
    terms: RiskOrder,
    limits: AccountLimits | None,
    instrument: InstrumentRef | None,
    balance: Balance | None,
    exposure: Exposure,
    last_e3: int | None,
    config: RiskConfig,
) -> Decision:
    """May this order go to a venue? See the module docstring for the order of checks. The
    decision carries every check made, with the figure and the limit it compared."""
    t = _Trail()
    if limits is None:
        return t.fail(RejectReason.ACCOUNT_UNKNOWN, "account has no limits on reference.accounts")
    t.ok(RejectReason.ACCOUNT_UNKNOWN, detail=f"account {limits.account} on reference.accounts")
    if not limits.enabled:
        return t.fail(RejectReason.ACCOUNT_DISABLED, "account disabled")
    t.ok(RejectReason.ACCOUNT_DISABLED, detail="account enabled")
    if limits.member != terms.member:
        return t.fail(RejectReason.MEMBER_MISMATCH, f"account belongs to {limits.member}")
    t.ok(RejectReason.MEMBER_MISMATCH, detail=f"account belongs to {terms.member}")
    if instrument is None:
        return t.fail(RejectReason.INSTRUMENT_UNKNOWN, f"security {terms.security} not listed")
    t.ok(RejectReason.INSTRUMENT_UNKNOWN, detail=f"security {terms.security} listed")
    if not instrument.enabled:
        return t.fail(RejectReason.INSTRUMENT_DISABLED, f"security {terms.security} halted")
    t.ok(RejectReason.INSTRUMENT_DISABLED, detail=f"security {terms.security} enabled")
    static = _static_checks(terms, instrument, config, t)
    if static is not None:
        return static
    reference_e3 = reference_price_e3(last_e3, instrument)
    if reference_e3 <= 0:
        return t.fail(
            RejectReason.NO_REFERENCE_PRICE, "no last trade and no previous close", reference_e3, 0
        )
    source = "last trade" if last_e3 else "previous close"
    t.ok(RejectReason.NO_REFERENCE_PRICE, reference_e3, 0, "e3", f"reference: {source}")
    if terms.market:
        hold_price_e3 = reference_e3 * (BPS + config.market_hold_bps) // BPS
    else:
        # |price - reference| * BPS <= reference * collar_bps, and the deviation is a whole
        # number of HK$0.001, so the floor of the bound is exactly the largest one allowed.
        deviation_e3 = abs(terms.price_e3 - reference_e3)
        bound_e3 = reference_e3 * config.collar_bps // BPS
        if deviation_e3 * BPS > reference_e3 * config.collar_bps:
            return t.fail(
                RejectReason.PRICE_COLLAR,
                f"price {terms.price_e3} outside {config.collar_bps} bps of {reference_e3}",
                deviation_e3,
                bound_e3,
                "e3",
            )
        detail = f"price {terms.price_e3} within {config.collar_bps} bps of {reference_e3}"
        t.ok(RejectReason.PRICE_COLLAR, deviation_e3, bound_e3, "e3", detail)
        hold_price_e3 = terms.price_e3
    notional_e3 = hold_price_e3 * terms.qty
    max_notional_e3 = limits.max_order_notional_cents * E3_PER_CENT
    if notional_e3 > max_notional_e3:
        return t.fail(
            RejectReason.MAX_NOTIONAL,
            f"notional {notional_e3} e3 above {limits.max_order_notional_cents} cents",
            notional_e3,
            max_notional_e3,
            "e3",
        )
    t.ok(RejectReason.MAX_NOTIONAL, notional_e3, max_notional_e3, "e3", "order notional")
    if terms.side is Side.BUY:
        return _buy(terms, limits, balance, exposure, hold_price_e3, config, t)
    return _sell(terms, limits, balance, exposure, hold_price_e3, t)


def adds_risk(
    side: Side, security: int, qty: int, balance: Balance | None, exposure: Exposure
) -> bool:
    """Whether an order adds risk: a buy, a short sale, or a sell of more than the account holds
    free (what a cut-loss block refuses; a sell of held shares reduces risk)."""
    if side is not Side.SELL:
        return True
    held = balance.positions.get(security, 0) if balance is not None else 0
    return held - exposure.sells_committed.get(security, 0) < qty


def _static_checks(
    terms: RiskOrder, instrument: InstrumentRef, config: RiskConfig, t: _Trail
) -> Rejected | None:
    if terms.qty <= 0:
        return t.fail(RejectReason.INVALID_QTY, f"quantity {terms.qty}", terms.qty, 1, "shares")
    t.ok(RejectReason.INVALID_QTY, terms.qty, 1, "shares", "quantity at least 1 share")
    lot = instrument.board_lot
    if terms.qty % lot:
        return t.fail(RejectReason.NOT_BOARD_LOT, f"board lot is {lot}", terms.qty, lot, "shares")
    t.ok(RejectReason.NOT_BOARD_LOT, terms.qty, lot, "shares", f"whole lots of {lot}")
    lots = terms.qty // lot
    if lots > config.lots_max:
        return t.fail(
            RejectReason.TOO_MANY_LOTS,
            f"at most {config.lots_max} lots",
            lots,
            config.lots_max,
            "lots",
        )
    t.ok(RejectReason.TOO_MANY_LOTS, lots, config.lots_max, "lots", "lots in the order")
    if terms.market:
        if terms.price_e3 != 0:
            return t.fail(
                RejectReason.INVALID_PRICE, "a market order has no price", terms.price_e3, 0, "e3"
            )
        t.ok(RejectReason.INVALID_PRICE, 0, 0, "e3", "a market order has no price")
        return None
    if not PRICE_MIN_E3 <= terms.price_e3 <= PRICE_MAX_E3:
        return t.fail(
            RejectReason.INVALID_PRICE,
            f"price {terms.price_e3} outside the table",
            terms.price_e3,
            PRICE_MAX_E3,
            "e3",
        )
    detail = f"price within {PRICE_MIN_E3}..{PRICE_MAX_E3}"
    t.ok(RejectReason.INVALID_PRICE, terms.price_e3, PRICE_MAX_E3, "e3", detail)
    if not SPREAD_TABLES[instrument.spread_table].is_on_tick(terms.price_e3):
        return t.fail(
            RejectReason.OFF_TICK, f"price {terms.price_e3} is not on tick", terms.price_e3
        )
    detail = f"price on a tick of spread table {instrument.spread_table}"
    t.ok(RejectReason.OFF_TICK, terms.price_e3, None, "e3", detail)
    return None


def _cut_loss(limits: AccountLimits, balance: Balance | None, t: _Trail) -> Rejected | None:
    if balance is None:
        t.ok(RejectReason.CUT_LOSS, None, limits.cut_loss_cents, "cents", "no ledger snapshot yet")
        return None
    equity, floor = balance.equity_cents, limits.cut_loss_cents
    if equity < floor:
        return t.fail(
            RejectReason.CUT_LOSS,
            f"equity {equity} below cut-loss {floor} cents",
            equity,
            floor,
            "cents",
        )
    t.ok(RejectReason.CUT_LOSS, equity, floor, "cents", "equity at or above the cut-loss level")
    return None


def _buy(
    terms: RiskOrder,
    limits: AccountLimits,
    balance: Balance | None,
    exposure: Exposure,
    hold_price_e3: int,
    config: RiskConfig,
    t: _Trail,
) -> Decision:
    breached = _cut_loss(limits, balance, t)
    if breached is not None:
        return breached
    cost_cents = hold_cents(hold_price_e3, terms.qty, config)
    cash_cents = balance.cash_cents if balance is not None else 0
    available_cents = cash_cents + limits.credit_line_cents - exposure.holds_cents
    if cost_cents > available_cents:
        return t.fail(
            RejectReason.INSUFFICIENT_BUYING_POWER,
            f"needs {cost_cents} cents, {available_cents} available",
            cost_cents,
            available_cents,
            "cents",
        )
    detail = (
        f"cost with charges; available = cash {cash_cents} + credit line "
        f"{limits.credit_line_cents} - holds {exposure.holds_cents}"
    )
    t.ok(RejectReason.INSUFFICIENT_BUYING_POWER, cost_cents, available_cents, "cents", detail)
    return t.approve(hold_price_e3, cost_cents)


def _sell(
    terms: RiskOrder,
    limits: AccountLimits,
    balance: Balance | None,
    exposure: Exposure,
    hold_price_e3: int,
    t: _Trail,
) -> Decision:
    held = balance.positions.get(terms.security, 0) if balance is not None else 0
    free = held - exposure.sells_committed.get(terms.security, 0)
    covered = terms.side is Side.SELL and free >= terms.qty
    if covered:
        detail = f"held {held}, free of open sells {free}"
        t.ok(RejectReason.INSUFFICIENT_INVENTORY, terms.qty, free, "shares", detail)
        return t.approve(hold_price_e3, 0)  # reducing inventory is allowed even under cut-loss
    if not limits.allow_short:
        if terms.side is Side.SELL_SHORT:
            return t.fail(RejectReason.SHORT_NOT_ALLOWED, "account may not sell short")
        return t.fail(
            RejectReason.INSUFFICIENT_INVENTORY,
            f"holds {free} free shares, sells {terms.qty}",
            terms.qty,
            free,
            "shares",
        )
    t.ok(RejectReason.SHORT_NOT_ALLOWED, terms.qty, free, "shares", "account may sell short")
    breached = _cut_loss(limits, balance, t)
    return breached if breached is not None else t.approve(hold_price_e3, 0)
