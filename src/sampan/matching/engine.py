"""The matching engine: a deterministic state machine over many books.

Guarantees:
- `process(command)` returns the command's events and is a pure function of the sequence of
  commands (and instrument definitions) applied so far: no clock, no randomness, no I/O.
  Timestamps come from the commands; exec ids come from per-book sequences.
- Bad input is answered with a reject event carrying a `RejectReason`, never an exception.
  Checks run in a fixed order (documented per handler) so the first failing one decides.
- `snapshot()` is compact, canonical JSON; `Engine.restore(snapshot())` continues exactly as
  the original would have.

- The trading day's phase is engine-wide and changes only by a `ChangePhase` command, so it
  is part of the input log like any order. An engine that never receives one stays in
  continuous trading all day (the default). In an auction phase orders accumulate without
  matching (`matching.phases` says what each phase change does to the books); a request the
  phase does not take is rejected with `NOT_IN_THIS_PHASE`.

Limits: instrument changes (`add_instrument`) are not commands; a shell must apply them at
deterministic points of the input log for replays to agree.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from sampan.market.rules import PRICE_MAX_E3, PRICE_MIN_E3
from sampan.market.sessions import IllegalPhaseChangeError, OrderInput, Phase
from sampan.market.side import Side
from sampan.matching import phases
from sampan.matching.auction import Equilibrium
from sampan.matching.book import DepthLevel, Order, OrderBook
from sampan.matching.instrument import Instrument, Rules
from sampan.matching.model import (
    AmendOrder,
    CancelOrder,
    CancelReason,
    CancelRejected,
    ChangePhase,
    Command,
    Event,
    ExecType,
    ExecutionReport,
    MassCancel,
    MassCancelled,
    OrderStatus,
    OrderType,
    PhaseChanged,
    PlaceOrder,
    RejectReason,
    RequestKind,
    TimeInForce,
    VolatilityControlStarted,
)

SNAPSHOT_VERSION = 1
DEPTH_LEVELS_MAX = 50  # callers ask for 5 (md.depth) or 10 (HKEX aggregate book)

# Enum members read on every command, as module constants: a class attribute read on an enum
# costs ~45 ns in CPython 3.11, a global ~5 ns.
_BUY = Side.BUY
_LIMIT = OrderType.LIMIT
_MARKET = OrderType.MARKET
_DAY = TimeInForce.DAY
_FOK = TimeInForce.FOK
_ACCEPTED = ExecType.ACCEPTED
_AMENDED = ExecType.AMENDED
_EXPIRED = ExecType.EXPIRED
_STATUS_CANCELED = OrderStatus.CANCELED
_REQUESTED = CancelReason.REQUESTED
_CONTINUOUS = Phase.CONTINUOUS
_AT_AUCTION = OrderType.AT_AUCTION
_AT_AUCTION_LIMIT = OrderType.AT_AUCTION_LIMIT


class Engine:
    """Books by security code under one set of `Rules`."""

    __slots__ = ("_books", "phase", "phase_since_ns", "rules")

    def __init__(self, rules: Rules | None = None, instruments: Iterable[Instrument] = ()) -> None:
        self.rules = rules if rules is not None else Rules()
        self._books: dict[int, OrderBook] = {}
        self.phase = Phase.CONTINUOUS
        self.phase_since_ns = 0  # when the last applied ChangePhase took effect
        for instrument in instruments:
            self.add_instrument(instrument)

    def add_instrument(self, instrument: Instrument) -> None:
        """Add a security, or replace its definition (e.g. halt it) keeping its book."""
        book = self._books.get(instrument.security)
        if book is None:
            self._books[instrument.security] = OrderBook(instrument, self.rules)
        else:
            book.set_instrument(instrument)

    def instruments(self) -> list[Instrument]:
        return [self._books[s].instrument for s in sorted(self._books)]

    def process(self, command: Command) -> list[Event]:
        # `type(x) is C` narrows for mypy and is cheaper than isinstance on the hot path.
        if type(command) is PlaceOrder:
            return self._place(command)
        if type(command) is CancelOrder:
            return self._cancel(command)
        if type(command) is AmendOrder:
            return self._amend(command)
        if type(command) is ChangePhase:
            return self._change_phase(command)
        assert type(command) is MassCancel, f"not a command: {command!r}"
        return self._mass_cancel(command)

    # ------------------------------------------------------------------ the day's phases

    def _change_phase(self, cmd: ChangePhase) -> list[Event]:
        """Move every book into the new phase, in ascending security order."""
        old = self.phase
        if cmd.ts_ns <= self.phase_since_ns:
            return [PhaseChanged(cmd.ts_ns, cmd.phase, old, True)]  # stale: applied already
        try:
            new = old.to(cmd.phase)
        except IllegalPhaseChangeError:
            return [PhaseChanged(cmd.ts_ns, cmd.phase, old, True)]
        out: list[Event] = [PhaseChanged(cmd.ts_ns, new, old)]
        self.phase = new
        self.phase_since_ns = cmd.ts_ns
        for security in sorted(self._books):
            phases.enter(self._books[security], old, new, cmd.ts_ns, out)
        return out

    def indicative(self, security: int) -> Equilibrium | None:
        """The book's IEP, IEV and order imbalance, None outside an auction or without one."""
        book = self._books.get(security)
        if book is None or not self.phase.is_auction:
            return None
        return phases.indicative(book)

    def day_figures(self, security: int) -> tuple[int, int, int, int]:
        """(reference price, band low, band high, previous close) of the book, HK$0.001."""
        day = self._books[security].day
        return day.reference_e3, day.band_low_e3, day.band_high_e3, day.prev_close_e3

    def _place_in_phase(self, book: OrderBook, cmd: PlaceOrder) -> list[Event]:
        """A new order outside continuous trading. Checks: the phase takes orders, halt,
        duplicate id, quantity, order type, time in force, price, then the auction's limits.
        An accepted order rests without matching; a limit order becomes an at-auction limit."""
        reason, order_type, price_e3 = self._check_auction_place(book, cmd)
        if reason is not None:
            return [_rejected(cmd, reason, book.next_exec_id())]
        order = Order(
            cmd.order_id, cmd.account, cmd.member, cmd.side, price_e3, cmd.qty, order_type,
            cmd.stp, cmd.ts_ns,
        )  # fmt: skip
        out: list[Event] = [book.report(order, _ACCEPTED, cmd.ts_ns)]
        book.rest_any(order)
        return out

    def _check_auction_place(
        self, book: OrderBook, cmd: PlaceOrder
    ) -> tuple[RejectReason | None, OrderType, int]:
        order_type = cmd.order_type
        if self.phase.order_input is not OrderInput.AUCTION:
            return RejectReason.NOT_IN_THIS_PHASE, order_type, 0
        if not book.instrument.enabled:
            return RejectReason.SECURITY_HALTED, order_type, 0
        if cmd.order_id in book.orders:
            return RejectReason.DUPLICATE_ORDER_ID, order_type, 0
        reason = self._check_qty(book, cmd.qty)
        if reason is not None:
            return reason, order_type, 0
        if order_type is _AT_AUCTION:
            price_e3 = 0
        elif order_type is _LIMIT or order_type is _AT_AUCTION_LIMIT:
            order_type, price_e3 = _AT_AUCTION_LIMIT, cmd.price_e3
        else:
            return RejectReason.ORDER_TYPE_NOT_ALLOWED, order_type, 0
        if cmd.tif is not _DAY:
            return RejectReason.INVALID_TIME_IN_FORCE, order_type, 0
        if price_e3:
            reason = self._check_price(book, price_e3) or _auction_limits(book, cmd.side, price_e3)
        elif order_type is _AT_AUCTION_LIMIT:
            reason = RejectReason.INVALID_PRICE
        return reason, order_type, price_e3

    # ------------------------------------------------------------------ place

    def _place(self, cmd: PlaceOrder) -> list[Event]:
        """Checks: security, halt, duplicate id, quantity, then price (or market liquidity),
        reach, and last FOK fillability."""
        book = self._books.get(cmd.security)
        if book is None:
            return [_rejected(cmd, RejectReason.UNKNOWN_SECURITY, 0)]
        if self.phase is not _CONTINUOUS:
            return self._place_in_phase(book, cmd)
        reason, bound_e3 = self._check_place(book, cmd)
        order_type, tif, ts_ns = cmd.order_type, cmd.tif, cmd.ts_ns
        price_e3 = 0 if order_type is _MARKET else cmd.price_e3
        order = Order(
            cmd.order_id, cmd.account, cmd.member, cmd.side, price_e3, cmd.qty, order_type,
            cmd.stp, ts_ns,
        )  # fmt: skip
        limit = None
        reach_e3 = bound_e3
        if book.vcm is not None and reason is None:
            limit, bound_e3 = _vcm_clamp(book, cmd.side, bound_e3, ts_ns)
            cooling = limit is not None and book.vcm.cooling and order_type is not _MARKET
            if cooling and limit is not None and not limit[0] <= cmd.price_e3 <= limit[1]:
                reason = RejectReason.PRICE_OUTSIDE_VCM_BAND
        if reason is None and tif is _FOK and book.fillable_qty(order, bound_e3) < cmd.qty:
            reason = RejectReason.FOK_NOT_FILLABLE
        if reason is not None:
            return [_rejected(cmd, reason, book.next_exec_id())]
        out: list[Event] = [book.report(order, _ACCEPTED, ts_ns)]
        book.match(order, bound_e3, ts_ns, out)
        if limit is not None and _vcm_check(book, order, reach_e3, limit, ts_ns, out):
            out.append(book.close_unrested(order, _EXPIRED, ts_ns))  # stopped: the rest ends
            return out
        if order.leaves_qty and order.status is not _STATUS_CANCELED:
            if tif is _DAY:
                book.rest(order)
            else:
                out.append(book.close_unrested(order, _EXPIRED, ts_ns))
        return out

    def _check_place(self, book: OrderBook, cmd: PlaceOrder) -> tuple[RejectReason | None, int]:
        """The first reason to reject `cmd`, else None and the worst price it may trade at."""
        if not book.instrument.enabled:
            return RejectReason.SECURITY_HALTED, 0
        if cmd.order_id in book.orders:
            return RejectReason.DUPLICATE_ORDER_ID, 0
        qty, lot = cmd.qty, book.instrument.board_lot
        if qty <= 0 or qty % lot or qty > lot * self.rules.max_lots_per_order:
            return self._check_qty(book, qty), 0  # which of the three failed
        order_type, price_e3 = cmd.order_type, cmd.price_e3
        if order_type is _MARKET:
            return self._check_market(book, cmd)
        if order_type is _AT_AUCTION or order_type is _AT_AUCTION_LIMIT:
            return RejectReason.ORDER_TYPE_NOT_ALLOWED, 0  # auction orders outside an auction
        reason = self._check_price(book, price_e3)
        if reason is None:
            reason = self._check_reach(book, cmd.side, order_type, price_e3)
        return reason, price_e3

    def _check_market(self, book: OrderBook, cmd: PlaceOrder) -> tuple[RejectReason | None, int]:
        if not self.rules.market_orders_allowed:
            return RejectReason.ORDER_TYPE_NOT_ALLOWED, 0
        if cmd.tif is TimeInForce.DAY:
            return RejectReason.INVALID_TIME_IN_FORCE, 0
        best = book.opposite(cmd.side).best_price_e3()
        if best is None:
            return RejectReason.NO_LIQUIDITY, 0
        bps = self.rules.market_collar_bps
        if cmd.side is Side.BUY:
            return None, best * (10_000 + bps) // 10_000
        return None, -(-best * (10_000 - bps) // 10_000)  # rounded up: never looser than bps

    def _check_qty(self, book: OrderBook, qty: int) -> RejectReason | None:
        lot = book.instrument.board_lot
        if qty <= 0:
            return RejectReason.INVALID_QTY
        if qty % lot:
            return RejectReason.NOT_BOARD_LOT
        if qty > lot * self.rules.max_lots_per_order:
            return RejectReason.TOO_MANY_LOTS
        return None

    def _check_price(self, book: OrderBook, price_e3: int) -> RejectReason | None:
        if not PRICE_MIN_E3 <= price_e3 <= PRICE_MAX_E3:
            return RejectReason.INVALID_PRICE
        if not book.table.is_on_tick(price_e3):
            return RejectReason.NOT_ON_TICK
        factor = self.rules.nominal_price_check_factor
        nominal = book.last_px_e3 or book.instrument.nominal_price_e3
        if factor and nominal and (price_e3 >= nominal * factor or price_e3 * factor <= nominal):
            return RejectReason.PRICE_OUT_OF_RANGE
        return None

    def _check_reach(
        self, book: OrderBook, side: Side, order_type: OrderType, price_e3: int
    ) -> RejectReason | None:
        """HKEX-style reach: a limit (when `limit_matches_best_only`) may not be priced
        through the best opposite price; an enhanced limit not beyond the last level it may
        reach. Pricing beyond would leave a crossed book after the walk stops."""
        is_limit = order_type is _LIMIT
        if is_limit and not self.rules.limit_matches_best_only:
            return None
        buys = side is _BUY
        opposite = book.asks if buys else book.bids
        keys = opposite.keys
        if not keys:
            return None
        best = opposite.sign * keys[-1]
        if is_limit:
            reach = best
        else:
            spreads = self.rules.enhanced_limit_levels_max - 1
            if buys:
                reach = book.table.tick_up(best, spreads)
            else:
                reach = book.table.tick_down(best, spreads)
        beyond = price_e3 > reach if buys else price_e3 < reach
        return RejectReason.PRICE_THROUGH_REACH if beyond else None

    # ------------------------------------------------------------------ cancel, amend

    def _cancel(self, cmd: CancelOrder) -> list[Event]:
        """Checks: security, order known and live, owner. Allowed while halted."""
        book = self._books.get(cmd.security)
        if book is None:
            return [_cancel_rejected(cmd, RequestKind.CANCEL, RejectReason.UNKNOWN_SECURITY, 0)]
        order = book.orders.get(cmd.order_id)
        reason = _ownership(order, cmd.account)
        if reason is None and not self.phase.cancel_allowed:
            reason = RejectReason.NOT_IN_THIS_PHASE
        if reason is not None:
            return [_cancel_rejected(cmd, RequestKind.CANCEL, reason, book.next_exec_id())]
        assert order is not None
        return [book.cancel(order, _REQUESTED, cmd.ts_ns)]

    def _amend(self, cmd: AmendOrder) -> list[Event]:
        """Checks: security, halt, order known, owner, quantity (also above the filled
        quantity), price, reach (when the price moves), something changes.

        The book carries the amend out (`OrderBook.amend`): a quantity decrease at the same
        price keeps time priority; any other change is a cancel/replace under the same order id
        that may trade at once and then rests last."""
        book = self._books.get(cmd.security)
        if book is None:
            return [_cancel_rejected(cmd, RequestKind.AMEND, RejectReason.UNKNOWN_SECURITY, 0)]
        order = book.orders.get(cmd.order_id)
        reason = self._check_amend(book, order, cmd)
        if reason is not None:
            return [_cancel_rejected(cmd, RequestKind.AMEND, reason, book.next_exec_id())]
        assert order is not None
        out: list[Event] = []
        matching = self.phase is _CONTINUOUS
        limit, bound_e3 = None, cmd.price_e3
        if book.vcm is not None and matching:
            limit, bound_e3 = _vcm_clamp(book, order.side, cmd.price_e3, cmd.ts_ns)
            outside = limit is not None and not limit[0] <= cmd.price_e3 <= limit[1]
            if outside and book.vcm.cooling:  # it could rest crossed: refused as a new order is
                reason = RejectReason.PRICE_OUTSIDE_VCM_BAND
                return [_cancel_rejected(cmd, RequestKind.AMEND, reason, book.next_exec_id())]
        book.amend(order, cmd.price_e3, cmd.qty, cmd.ts_ns, out, matching, bound_e3)
        stopped = limit is not None and order.level is not None
        if (
            stopped
            and limit is not None
            and _vcm_check(book, order, cmd.price_e3, limit, cmd.ts_ns, out)
        ):
            out.append(book.expire(order, cmd.ts_ns))  # stopped: the rest ends
        return out

    def _check_amend(
        self, book: OrderBook, order: Order | None, cmd: AmendOrder
    ) -> RejectReason | None:
        if not book.instrument.enabled:
            return RejectReason.SECURITY_HALTED
        reason = _ownership(order, cmd.account)
        if reason is not None:
            return reason
        assert order is not None
        if not self.phase.amend_allowed:
            return RejectReason.NOT_IN_THIS_PHASE
        reason = self._check_qty(book, cmd.qty)
        if reason is None and cmd.qty <= order.cum_qty:
            reason = RejectReason.INVALID_QTY
        if reason is None and order.order_type is _AT_AUCTION:
            if cmd.price_e3 != 0:
                reason = RejectReason.INVALID_PRICE  # an at-auction order has no price
        elif reason is None:
            reason = self._check_price(book, cmd.price_e3)
        if reason is None and cmd.price_e3 == order.price_e3 and cmd.qty == order.qty:
            reason = RejectReason.AMEND_NO_CHANGE
        if reason is None and cmd.price_e3 != order.price_e3:
            if self.phase is _CONTINUOUS:
                reason = self._check_reach(book, order.side, order.order_type, cmd.price_e3)
            else:
                reason = _auction_limits(book, order.side, cmd.price_e3)
        return reason

    def _mass_cancel(self, cmd: MassCancel) -> list[Event]:
        """Cancels the account's orders book by book (ascending security), in order-id
        order within a book, so the output does not depend on dict history."""
        if cmd.security is None:
            books = [self._books[s] for s in sorted(self._books)]
        elif cmd.security in self._books:
            books = [self._books[cmd.security]]
        else:
            rejected = CancelRejected(
                cmd.ts_ns,
                cmd.security,
                0,
                cmd.account,
                RequestKind.MASS_CANCEL,
                RejectReason.UNKNOWN_SECURITY,
            )
            return [rejected]
        if not self.phase.cancel_allowed:
            rejected = CancelRejected(
                cmd.ts_ns,
                cmd.security or 0,
                0,
                cmd.account,
                RequestKind.MASS_CANCEL,
                RejectReason.NOT_IN_THIS_PHASE,
            )
            return [rejected]
        out: list[Event] = []
        for book in books:
            mine = sorted(
                (o for o in book.orders.values() if o.account == cmd.account),
                key=lambda o: o.order_id,
            )
            for order in mine:
                out.append(book.cancel(order, CancelReason.MASS_CANCEL, cmd.ts_ns))
        count = len(out)
        out.append(MassCancelled(cmd.ts_ns, cmd.account, cmd.security, count))
        return out

    # ------------------------------------------------------------------ reading, checks

    def depth(
        self, security: int, levels: int = 5
    ) -> tuple[tuple[DepthLevel, ...], tuple[DepthLevel, ...]]:
        """(bids, asks), each best first as (price_e3, qty, order_count)."""
        assert 0 < levels <= DEPTH_LEVELS_MAX, "depth is bounded"
        return self._books[security].depth(levels)

    def resting_orders(self, security: int) -> list[tuple[int, Side, int, int, int, int]]:
        """(order_id, side, price_e3, qty, cum_qty, leaves_qty): bids then asks, each in
        priority order (best level first, FIFO inside a level). For tests and audits."""
        book = self._books[security]
        out = []
        for book_side in (book.bids, book.asks):
            for level in book_side.iter_levels():
                node = level.head
                while node is not None:
                    row = (node.order_id, node.side, node.price_e3, node.qty)
                    out.append((*row, node.cum_qty, node.leaves_qty))
                    node = node.next
        return out

    def validate(self) -> None:
        """Raise `InvariantError` if any book is inconsistent."""
        crossed_allowed = self.phase.is_auction
        for security in sorted(self._books):
            self._books[security].validate(crossed_allowed)

    def snapshot(self) -> bytes:
        data = {
            "version": SNAPSHOT_VERSION,
            "phase": self.phase.name,
            "phase_since_ns": self.phase_since_ns,
            "rules": asdict(self.rules),
            "instruments": [asdict(i) for i in self.instruments()],
            "books": [self._books[s].snapshot() for s in sorted(self._books)],
        }
        return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def restore(cls, blob: bytes) -> Engine:
        data: dict[str, Any] = json.loads(blob)
        assert data["version"] == SNAPSHOT_VERSION, f"snapshot version {data['version']}"
        engine = cls(Rules(**data["rules"]), (Instrument(**i) for i in data["instruments"]))
        engine.phase = Phase[data.get("phase", Phase.CONTINUOUS.name)]  # absent before phases
        engine.phase_since_ns = data.get("phase_since_ns", 0)
        for book_data in data["books"]:
            engine._books[book_data["security"]].load(book_data)
        return engine


def _vcm_clamp(
    book: OrderBook, side: Side, bound_e3: int, ts_ns: int
) -> tuple[tuple[int, int] | None, int]:
    """The volatility band now (None if none) and `bound_e3` clamped inside it."""
    assert book.vcm is not None
    limit = book.vcm.band(book.table, ts_ns)
    if limit is None:
        return None, bound_e3
    low, high = limit
    best = book.opposite(side).best_price_e3()
    # The walk starts at the best opposite price: if that is already outside the band (on
    # the far side, e.g. a buy meeting an offer under the band), nothing may trade at all.
    if side is _BUY:
        return limit, (best - 1 if best is not None and best < low else min(bound_e3, high))
    return limit, (best + 1 if best is not None and best > high else max(bound_e3, low))


def _vcm_check(
    book: OrderBook,
    order: Order,
    reach_e3: int,
    limit: tuple[int, int],
    ts_ns: int,
    out: list[Event],
) -> bool:
    """Start a cooling-off if `order`, stopped at the band, would have traded beyond it; True
    then (the caller ends the order's rest, which would otherwise cross the book)."""
    vcm = book.vcm
    assert vcm is not None
    if vcm.cooling or not order.leaves_qty or order.status is _STATUS_CANCELED:
        return False
    best = book.opposite(order.side).best_price_e3()
    if best is None:
        return False
    low, high = limit
    buys = order.side is _BUY
    reachable = best <= reach_e3 if buys else best >= reach_e3
    if reachable and not low <= best <= high:
        _start, end, reference, low, high = vcm.trigger(book.table, ts_ns)
        out.append(VolatilityControlStarted(ts_ns, book.security, end, reference, low, high))
        return True
    return False


def _auction_limits(book: OrderBook, side: Side, price_e3: int) -> RejectReason | None:
    """The auction's band, and in a no-cancel period its limits on each side."""
    day = book.day
    if day.band_high_e3 and not day.band_low_e3 <= price_e3 <= day.band_high_e3:
        return RejectReason.PRICE_OUTSIDE_AUCTION_LIMITS
    if side is _BUY:
        if day.nc_buy_max_e3 and price_e3 > day.nc_buy_max_e3:
            return RejectReason.PRICE_OUTSIDE_AUCTION_LIMITS
    elif day.nc_sell_min_e3 and price_e3 < day.nc_sell_min_e3:
        return RejectReason.PRICE_OUTSIDE_AUCTION_LIMITS
    return None


def _ownership(order: Order | None, account: str) -> RejectReason | None:
    if order is None:
        return RejectReason.UNKNOWN_ORDER
    if order.account != account:
        return RejectReason.NOT_OWNER
    return None


def _rejected(cmd: PlaceOrder, reason: RejectReason, exec_id: int) -> ExecutionReport:
    return ExecutionReport(
        ExecType.REJECTED,
        cmd.ts_ns,
        cmd.security,
        cmd.order_id,
        cmd.account,
        cmd.side,
        cmd.price_e3,
        cmd.qty,
        0,
        0,
        0,
        0,
        exec_id,
        reason,
    )


def _cancel_rejected(
    cmd: CancelOrder | AmendOrder, kind: RequestKind, reason: RejectReason, exec_id: int
) -> CancelRejected:
    return CancelRejected(cmd.ts_ns, cmd.security, cmd.order_id, cmd.account, kind, reason, exec_id)
