"""The router's view of one member order: status machine, fills, holds, SMART parent progress.

Pure and immutable: every change returns a new `Order` (`dataclasses.replace`), so the core can
compare, persist and restore orders as plain values. `Status` is the order's state machine;
an illegal transition raises `IllegalTransition` (a programmer error or a venue bug, never a
member's mistake).

A SMART order is a parent: its own quantity, limit and status, with at most one child at a
time: first an IOC child on the internal book, then (for what that left) a child on HKEX.
The parent aggregates its children exactly: `cum_qty` and `cum_notional_e3` are sums over
every child trade, the average price is `cum_notional_e3 / cum_qty` (in HK$0.001, exact as a
fraction; `avg_px_e3` rounds it half up for display), `leaves_qty` is what is neither filled
nor finished.

Limits: at most `EXEC_IDS_MAX` HKEX executions are remembered per order for de-duplication.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from sampan.market.side import Side
from sampan.router.risk import RiskConfig, hold_cents

EXEC_IDS_MAX = 1_000


class IllegalTransition(RuntimeError):
    """An order status change its state machine does not allow."""


class Status(enum.StrEnum):
    PENDING_NEW = "PENDING_NEW"  # sent to a venue, no answer yet
    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({Status.FILLED, Status.CANCELED, Status.REJECTED, Status.EXPIRED})
_S = Status
_TRANSITIONS: dict[Status, frozenset[Status]] = {
    _S.PENDING_NEW: frozenset(
        {_S.PENDING_NEW, _S.NEW, _S.PARTIALLY_FILLED, _S.FILLED, _S.REJECTED, _S.CANCELED}
        | {_S.EXPIRED}
    ),
    # NEW -> REJECTED: a SMART parent is reported NEW before its HKEX child is answered.
    _S.NEW: frozenset(
        {_S.NEW, _S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELED, _S.EXPIRED, _S.REJECTED}
    ),
    _S.PARTIALLY_FILLED: frozenset(
        {_S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELED, _S.EXPIRED, _S.NEW}
    ),
    _S.FILLED: frozenset(),
    _S.CANCELED: frozenset(),
    _S.REJECTED: frozenset(),
    _S.EXPIRED: frozenset(),
}


def advance(old: Status, new: Status) -> Status:
    if new not in _TRANSITIONS[old]:
        raise IllegalTransition(f"order status {old} -> {new}")
    return new


class Route(enum.StrEnum):
    INTERNAL = "INTERNAL"
    HKEX = "HKEX"
    SMART = "SMART"


class Phase(enum.StrEnum):
    """Where a SMART parent's current child is."""

    INTERNAL = "INTERNAL"
    HKEX = "HKEX"
    DONE = "DONE"


@dataclass(frozen=True, slots=True)
class Order:
    key: str  # the NEW request's "partition.offset"
    account: str
    member: str
    security: int
    side: Side
    ord_type: str
    time_in_force: str
    route: Route
    cl_ord_id: str  # the member's current client order id
    price_e3: int
    qty: int
    hold_price_e3: int
    status: Status = Status.PENDING_NEW
    cum_qty: int = 0
    cum_notional_e3: int = 0
    venue_order_id: str = ""
    hkex_cl_ord_ids: tuple[str, ...] = ()  # every HKEX ClOrdID of the order's chain
    member_cl_ord_ids: tuple[str, ...] = ()  # the member's ClOrdIDs of its amends and cancels
    exec_ids: tuple[str, ...] = ()  # HKEX executions applied, for de-duplication
    phase: Phase | None = None  # SMART parents only
    reports: int = 0  # parent reports made (numbers the parent's exec ids)
    cancel_requested: bool = False
    cancel_cl_ord_id: str | None = None  # the member's CANCEL that the venue will answer
    child_cum_qty: int = 0  # SMART parents: the current HKEX child's fills
    child_notional_e3: int = 0
    ts_ns: int = 0
    day: int = 0  # the Hong Kong trading day of the NEW request, as a date ordinal
    reject_reason: str | None = None  # why a venue refused or ended it, for its last report
    reject_text: str | None = None

    @property
    def leaves_qty(self) -> int:
        return 0 if self.status.terminal else self.qty - self.cum_qty

    @property
    def open(self) -> bool:
        return not self.status.terminal

    def avg_px_e3(self) -> int:
        """Average price rounded half up to HK$0.001 (0 before the first fill)."""
        if not self.cum_qty:
            return 0
        return (2 * self.cum_notional_e3 + self.cum_qty) // (2 * self.cum_qty)

    def hold_cents(self, config: RiskConfig) -> int:
        """Cash held for what is still open (buys only)."""
        if self.side is not Side.BUY or not self.open:
            return 0
        return hold_cents(self.hold_price_e3, self.leaves_qty, config)

    def sell_committed(self) -> int:
        return self.leaves_qty if self.side is not Side.BUY else 0


def traded(order: Order, last_px_e3: int, last_qty: int, exec_id: str | None = None) -> Order:
    """One execution of `last_qty` at `last_px_e3` (of the order or one of its children)."""
    assert last_qty > 0 and last_px_e3 > 0, (last_px_e3, last_qty)
    cum = order.cum_qty + last_qty
    if cum > order.qty:
        raise IllegalTransition(f"order {order.key}: fills {cum} exceed quantity {order.qty}")
    status = Status.FILLED if cum == order.qty else Status.PARTIALLY_FILLED
    exec_ids = order.exec_ids
    if exec_id is not None:
        exec_ids = (*exec_ids, exec_id)[-EXEC_IDS_MAX:]
    return replace(
        order,
        status=advance(order.status, status),
        cum_qty=cum,
        cum_notional_e3=order.cum_notional_e3 + last_px_e3 * last_qty,
        exec_ids=exec_ids,
    )


def to_status(order: Order, status: Status) -> Order:
    return replace(order, status=advance(order.status, status))


def member_ids(order: Order) -> tuple[str, ...]:
    """Every ClOrdID the member used for this order today: its NEW's, its amends', its
    cancels'."""
    return (order.cl_ord_id, *order.member_cl_ord_ids)


def child_done(parent: Order, child_status: Status) -> tuple[Order, int]:
    """A SMART parent's child ended in `child_status`; the parent's next state and the
    quantity (0 for none) to send to HKEX next.

    Every child outcome ends the parent or moves it on: after the internal child, what is
    left goes to HKEX (unless the member asked to cancel); after the HKEX child the parent
    is done. A parent whose rest will not trade ends CANCELED when the member asked, else
    the way its last child ended, except that a parent with fills is never REJECTED (FIX
    rejects only what never traded): it ends CANCELED, its report naming the venue's
    reason."""
    assert parent.route is Route.SMART and parent.phase is not None
    remaining = parent.qty - parent.cum_qty
    if parent.phase is Phase.INTERNAL and remaining > 0 and not parent.cancel_requested:
        return replace(parent, phase=Phase.HKEX), remaining
    if remaining == 0:
        return replace(parent, phase=Phase.DONE), 0
    final = Status.CANCELED if parent.cancel_requested else child_status
    if not final.terminal or final is Status.FILLED:
        final = Status.CANCELED
    if final is Status.REJECTED and parent.cum_qty:
        final = Status.CANCELED
    return replace(parent, phase=Phase.DONE, status=advance(parent.status, final)), 0
