"""Commands the engine accepts and the events it emits, plus their enums.

Guarantees: commands (imperative names) are frozen, slotted dataclasses and events (past-tense
names or reports) are immutable `NamedTuple`s, both holding only integers, strings and enums;
prices are HK$0.001 integers (`price_e3`), quantities are shares. Every command yields at least
one event; a refused command yields a reject event carrying a reason code, never an exception.

Why events are not dataclasses (house style habit 3): every command emits at least one event,
and a frozen dataclass sets each field through `object.__setattr__`, about 0.9 us for a
14-field `ExecutionReport`; a `NamedTuple` built with `tuple.__new__` costs about 0.1 us and
is just as immutable. Tuples compare equal to any tuple with the same items, so each event
type compares equal only to an instance of the same type: an `ExecutionReport` never equals a
plain tuple or another event type with the same fields. Events have no `dataclasses` features
(use `_replace`, not `dataclasses.replace`); being tuples, they can be iterated and indexed,
which no code should rely on.

Event order inside one command's output is part of the contract (replays compare it):
an accepted order's `ACCEPTED` report comes first, then for each match a `Fill` followed by
the resting order's report and the incoming order's report, then the incoming order's
`EXPIRED` or `CANCELED` report if it does not rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

from sampan.market.sessions import Phase

# The venue's one Side; the engine is given BUY and SELL only (a short sale matches as a sale).
from sampan.market.side import Side


class _Enum(Enum):
    """Members hash by identity: `Enum.__hash__` is Python code hashing the member's name,
    and the hot path hashes enums in every status check. Members are singletons compared by
    identity, so identity hashing is consistent with equality."""

    __hash__ = object.__hash__


class OrderType(_Enum):
    LIMIT = 1
    ENHANCED_LIMIT = 2
    MARKET = 3
    AT_AUCTION = 4  # auctions only: no price, trades at the auction's price, first in priority
    AT_AUCTION_LIMIT = 5  # auctions only; a limit order entered in an auction becomes one


class TimeInForce(_Enum):
    DAY = 0
    IOC = 3
    FOK = 4


class StpMode(_Enum):
    """What happens when an order meets a resting order of the same member firm."""

    CANCEL_RESTING = 1
    CANCEL_INCOMING = 2
    CANCEL_BOTH = 3


class ExecType(_Enum):
    ACCEPTED = "0"
    PARTIALLY_FILLED = "1"
    FILLED = "2"
    CANCELED = "4"
    AMENDED = "5"
    REJECTED = "8"
    EXPIRED = "C"


class RequestKind(_Enum):
    CANCEL = 1
    AMEND = 2
    MASS_CANCEL = 3


class RejectReason(_Enum):
    UNKNOWN_SECURITY = 1
    SECURITY_HALTED = 2
    INVALID_QTY = 3
    NOT_BOARD_LOT = 4
    TOO_MANY_LOTS = 5
    INVALID_PRICE = 6
    NOT_ON_TICK = 7
    PRICE_OUT_OF_RANGE = 8  # 9x / one-ninth of the nominal price
    PRICE_THROUGH_REACH = 9  # beyond what the order type may reach from the best opposite
    DUPLICATE_ORDER_ID = 10
    UNKNOWN_ORDER = 11
    NOT_OWNER = 12
    FOK_NOT_FILLABLE = 13
    NO_LIQUIDITY = 14  # market order with an empty opposite side
    AMEND_NO_CHANGE = 15
    ORDER_TYPE_NOT_ALLOWED = 16  # e.g. market orders under HKEX rules
    INVALID_TIME_IN_FORCE = 17  # a market order must be IOC or FOK; auction orders are DAY
    NOT_IN_THIS_PHASE = 18  # the trading phase takes no such request (e.g. cancels at no-cancel)
    PRICE_OUTSIDE_AUCTION_LIMITS = 19  # beyond the auction's price band or no-cancel limits
    PRICE_OUTSIDE_VCM_BAND = 20  # beyond the volatility band during a cooling-off period


class CancelReason(_Enum):
    REQUESTED = 1
    MASS_CANCEL = 2
    SELF_TRADE_PREVENTED = 3


class IllegalTransitionError(Exception):
    """An order was driven through a status change the state machine forbids (a bug)."""


class OrderStatus(_Enum):
    NEW = 0
    PARTIALLY_FILLED = 1
    FILLED = 2
    CANCELED = 4
    EXPIRED = 6

    def to(self, new: OrderStatus) -> OrderStatus:
        """Return `new` if the move is legal; raise otherwise (also under `python -O`)."""
        if new not in _NEXT_STATUS[self]:
            raise IllegalTransitionError(f"{self.name} -> {new.name}")
        return new


_LIVE_EXITS = frozenset(
    {OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.EXPIRED}
)
_NEXT_STATUS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.NEW: _LIVE_EXITS,
    OrderStatus.PARTIALLY_FILLED: _LIVE_EXITS,
    OrderStatus.FILLED: frozenset(),
    OrderStatus.CANCELED: frozenset(),
    OrderStatus.EXPIRED: frozenset(),
}


# ---------------------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    """A new order. `stp` is the placing account's self-trade setting, looked up by the
    router, so that the engine's output depends on its input log alone. `price_e3` is
    ignored for market orders."""

    ts_ns: int
    security: int
    order_id: int
    account: str
    member: str
    side: Side
    qty: int
    price_e3: int = 0
    order_type: OrderType = OrderType.LIMIT
    tif: TimeInForce = TimeInForce.DAY
    stp: StpMode = StpMode.CANCEL_RESTING


@dataclass(frozen=True, slots=True)
class CancelOrder:
    ts_ns: int
    security: int
    order_id: int
    account: str


@dataclass(frozen=True, slots=True)
class AmendOrder:
    """Change a resting order's price and/or total quantity (FIX OrderQty semantics: the new
    quantity includes what has already been filled)."""

    ts_ns: int
    security: int
    order_id: int
    account: str
    price_e3: int
    qty: int


@dataclass(frozen=True, slots=True)
class MassCancel:
    """Cancel every resting order of `account`, in one security or (None) in all of them."""

    ts_ns: int
    account: str
    security: int | None = None


@dataclass(frozen=True, slots=True)
class ChangePhase:
    """Move every book of the engine into `phase` at `ts_ns`, the moment the venue's schedule
    set for the change (the command is a record of the input log, so a replay makes the same
    moves). Changes apply in time order: one not later than the last applied is refused as
    stale, so a schedule that restarts may resend its day. Leaving an auction's random period
    uncrosses each book; closing expires every order."""

    ts_ns: int
    phase: Phase


Command = PlaceOrder | CancelOrder | AmendOrder | MassCancel | ChangePhase


# ---------------------------------------------------------------------------- events


def _same_event(event: tuple[object, ...], other: object) -> bool:
    """Equality of events: same type and same fields. The type check keeps tuple equality
    from equating an event with a plain tuple or with another event type. Hashing stays
    the tuple's, which is consistent with this: equal events are equal tuples."""
    return type(other) is type(event) and tuple.__eq__(event, other)


class ExecutionReport(NamedTuple):
    """One step in an order's life. For fills `last_px_e3`/`last_qty` are set and `exec_id`
    equals the matching `Fill.exec_id`; other reports take their own `exec_id`."""

    exec_type: ExecType
    ts_ns: int
    security: int
    order_id: int
    account: str
    side: Side
    price_e3: int
    order_qty: int
    cum_qty: int
    leaves_qty: int
    last_px_e3: int = 0
    last_qty: int = 0
    exec_id: int = 0
    reason: RejectReason | CancelReason | None = None

    def __eq__(self, other: object) -> bool:
        return _same_event(self, other)

    def __ne__(self, other: object) -> bool:
        return not _same_event(self, other)

    def __hash__(self) -> int:
        return tuple.__hash__(self)


class Fill(NamedTuple):
    """A trade with both legs. `exec_id` is unique for the venue within a trading day:
    security * EXEC_ID_SECURITY_FACTOR + the book's event sequence."""

    exec_id: int
    ts_ns: int
    security: int
    price_e3: int
    qty: int
    aggressor_side: Side
    buy_order_id: int
    buy_account: str
    buy_member: str
    sell_order_id: int
    sell_account: str
    sell_member: str

    def __eq__(self, other: object) -> bool:
        return _same_event(self, other)

    def __ne__(self, other: object) -> bool:
        return not _same_event(self, other)

    def __hash__(self) -> int:
        return tuple.__hash__(self)


class CancelRejected(NamedTuple):
    """A cancel, amend or mass cancel that could not be applied (FIX OrderCancelReject);
    `order_id` is 0 for a mass cancel."""

    ts_ns: int
    security: int
    order_id: int
    account: str
    response_to: RequestKind
    reason: RejectReason
    exec_id: int = 0

    def __eq__(self, other: object) -> bool:
        return _same_event(self, other)

    def __ne__(self, other: object) -> bool:
        return not _same_event(self, other)

    def __hash__(self) -> int:
        return tuple.__hash__(self)


class MassCancelled(NamedTuple):
    """Closes a mass cancel: how many orders it cancelled (their reports precede it)."""

    ts_ns: int
    account: str
    security: int | None
    cancelled_count: int

    def __eq__(self, other: object) -> bool:
        return _same_event(self, other)

    def __ne__(self, other: object) -> bool:
        return not _same_event(self, other)

    def __hash__(self) -> int:
        return tuple.__hash__(self)


class PhaseChanged(NamedTuple):
    """The engine entered `phase` from `previous`; the moves it made in each book (an
    uncross, expiries) follow this event. `refused` is True when the move is not one the day
    allows: then nothing changed and the engine stays in `previous`."""

    ts_ns: int
    phase: Phase
    previous: Phase
    refused: bool = False

    def __eq__(self, other: object) -> bool:
        return _same_event(self, other)

    def __ne__(self, other: object) -> bool:
        return not _same_event(self, other)

    def __hash__(self) -> int:
        return tuple.__hash__(self)


class AuctionUncrossed(NamedTuple):
    """One book's auction result: traded `qty` at `price_e3` (0 and 0 when there was no
    price at which anything could trade). Its fills precede it."""

    ts_ns: int
    security: int
    price_e3: int
    qty: int

    def __eq__(self, other: object) -> bool:
        return _same_event(self, other)

    def __ne__(self, other: object) -> bool:
        return not _same_event(self, other)

    def __hash__(self) -> int:
        return tuple.__hash__(self)


class VolatilityControlStarted(NamedTuple):
    """A trade beyond the band around the price five minutes earlier was stopped: until
    `end_ns` trades in `security` stay within `low_e3`..`high_e3` (OMD-C VCM Trigger, 3.10.8).
    The reports of the order that triggered it precede it."""

    ts_ns: int
    security: int
    end_ns: int
    reference_e3: int
    low_e3: int
    high_e3: int

    def __eq__(self, other: object) -> bool:
        return _same_event(self, other)

    def __ne__(self, other: object) -> bool:
        return not _same_event(self, other)

    def __hash__(self) -> int:
        return tuple.__hash__(self)


Event = (
    ExecutionReport
    | Fill
    | CancelRejected
    | MassCancelled
    | PhaseChanged
    | AuctionUncrossed
    | VolatilityControlStarted
)

EXEC_ID_SECURITY_FACTOR = 10**13  # 99,999 securities x 10^13 still fits a signed 64-bit int.
