"""A naive reference engine: the matcher's semantics written the slow, obvious way.

Orders live in one flat list per book; every step re-sorts it. FOK fillability is decided
by running the real match on a deep copy. Property tests demand that `Engine` and this class
emit identical events and hold identical books for any command stream.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from sampan.market.rules import SPREAD_TABLES
from sampan.matching import (
    AmendOrder,
    CancelOrder,
    CancelReason,
    CancelRejected,
    Command,
    Event,
    ExecType,
    ExecutionReport,
    Fill,
    Instrument,
    MassCancel,
    MassCancelled,
    OrderType,
    PlaceOrder,
    RejectReason,
    RequestKind,
    Rules,
    Side,
    StpMode,
    TimeInForce,
)

LOW, HIGH = 10, 9_995_000


def ref_tick(table: int, price: int) -> int:
    for upper, tick in zip(
        SPREAD_TABLES[table].uppers_e3, SPREAD_TABLES[table].ticks_e3, strict=True
    ):
        if price <= upper:
            return tick
    raise AssertionError(price)


def ref_step(table: int, price: int, spreads: int, up: bool) -> int:
    for _ in range(spreads):
        if up:
            # the next price above is the smallest on-tick price greater than this one
            candidate = price + 1
            while candidate % ref_tick(table, candidate):
                candidate += 1
            price = min(candidate, HIGH)
        else:
            candidate = price - 1
            while candidate > LOW and candidate % ref_tick(table, candidate):
                candidate -= 1
            price = max(candidate, LOW)
    return price


@dataclass
class RefOrder:
    order_id: int
    account: str
    member: str
    side: Side
    price: int
    qty: int
    cum: int
    order_type: OrderType
    stp: StpMode
    priority: int = 0

    @property
    def leaves(self) -> int:
        return self.qty - self.cum


@dataclass
class RefBook:
    instrument: Instrument
    orders: list[RefOrder]
    seq: int = 0
    priority_seq: int = 0
    last_px: int = 0

    def next_id(self) -> int:
        self.seq += 1
        return self.instrument.security * 10**13 + self.seq

    def side(self, side: Side) -> list[RefOrder]:
        mine = [o for o in self.orders if o.side is side]
        if side is Side.BUY:
            return sorted(mine, key=lambda o: (-o.price, o.priority))
        return sorted(mine, key=lambda o: (o.price, o.priority))

    def rest(self, order: RefOrder) -> None:
        self.priority_seq += 1
        order.priority = self.priority_seq
        self.orders.append(order)

    def report(self, o: RefOrder, t: ExecType, ts: int, reason: CancelReason | None = None):
        leaves = o.leaves if t in (ExecType.ACCEPTED, ExecType.AMENDED) else 0
        sec = self.instrument.security
        return ExecutionReport(
            t, ts, sec, o.order_id, o.account, o.side, o.price, o.qty, o.cum, leaves,
            0, 0, self.next_id(), reason,
        )  # fmt: skip


def _opposite(side: Side) -> Side:
    return Side.SELL if side is Side.BUY else Side.BUY


def _within(side: Side, price: int, bound: int) -> bool:
    return price <= bound if side is Side.BUY else price >= bound


def ref_match(book: RefBook, rules: Rules, taker: RefOrder, bound: int, ts: int, out: list) -> bool:
    """Returns True when the taker was cancelled by self-trade prevention."""
    sec = book.instrument.security
    while taker.leaves > 0:
        reachable = [
            o for o in book.side(_opposite(taker.side)) if _within(taker.side, o.price, bound)
        ]
        if not reachable:
            return False
        maker = reachable[0]
        if rules.stp_enabled and maker.member == taker.member:
            if taker.stp in (StpMode.CANCEL_RESTING, StpMode.CANCEL_BOTH):
                book.orders.remove(maker)
                out.append(
                    book.report(maker, ExecType.CANCELED, ts, CancelReason.SELF_TRADE_PREVENTED)
                )
            if taker.stp in (StpMode.CANCEL_INCOMING, StpMode.CANCEL_BOTH):
                out.append(
                    book.report(taker, ExecType.CANCELED, ts, CancelReason.SELF_TRADE_PREVENTED)
                )
                return True
            continue
        qty = min(taker.leaves, maker.leaves)
        maker.cum += qty
        taker.cum += qty
        book.last_px = maker.price
        exec_id = book.next_id()
        buyer, seller = (taker, maker) if taker.side is Side.BUY else (maker, taker)
        out.append(
            Fill(exec_id, ts, sec, maker.price, qty, taker.side, buyer.order_id, buyer.account,
                 buyer.member, seller.order_id, seller.account, seller.member)
        )  # fmt: skip
        if maker.leaves == 0:
            book.orders.remove(maker)
        for o in (maker, taker):
            t = ExecType.FILLED if o.leaves == 0 else ExecType.PARTIALLY_FILLED
            out.append(ExecutionReport(t, ts, sec, o.order_id, o.account, o.side, o.price, o.qty,
                                       o.cum, o.leaves, maker.price, qty, exec_id, None))  # fmt: skip
    return False


class RefEngine:
    def __init__(self, rules: Rules, instruments: list[Instrument]) -> None:
        self.rules = rules
        self.books = {i.security: RefBook(i, []) for i in instruments}

    def process(self, cmd: Command) -> list[Event]:
        if isinstance(cmd, PlaceOrder):
            return self.place(cmd)
        if isinstance(cmd, CancelOrder):
            return self.cancel(cmd)
        if isinstance(cmd, AmendOrder):
            return self.amend(cmd)
        assert isinstance(cmd, MassCancel)
        return self.mass_cancel(cmd)

    # -- checks -----------------------------------------------------------------------
    def qty_reason(self, book: RefBook, qty: int) -> RejectReason | None:
        lot = book.instrument.board_lot
        if qty <= 0:
            return RejectReason.INVALID_QTY
        if qty % lot != 0:
            return RejectReason.NOT_BOARD_LOT
        if qty // lot > self.rules.max_lots_per_order:
            return RejectReason.TOO_MANY_LOTS
        return None

    def price_reason(self, book: RefBook, price: int) -> RejectReason | None:
        if price < LOW or price > HIGH:
            return RejectReason.INVALID_PRICE
        if price % ref_tick(book.instrument.spread_table, price) != 0:
            return RejectReason.NOT_ON_TICK
        nominal = book.last_px if book.last_px else book.instrument.nominal_price_e3
        f = self.rules.nominal_price_check_factor
        if f > 0 and nominal > 0 and (price >= f * nominal or f * price <= nominal):
            return RejectReason.PRICE_OUT_OF_RANGE
        return None

    def reach_reason(self, book: RefBook, side: Side, otype: OrderType, price: int):
        opp = book.side(_opposite(side))
        if not opp:
            return None
        best = opp[0].price
        if otype is OrderType.LIMIT:
            if not self.rules.limit_matches_best_only:
                return None
            reach = best
        else:
            n = self.rules.enhanced_limit_levels_max - 1
            reach = ref_step(book.instrument.spread_table, best, n, side is Side.BUY)
        if not _within(side, price, reach):
            return RejectReason.PRICE_THROUGH_REACH
        return None

    # -- commands ---------------------------------------------------------------------
    def place(self, cmd: PlaceOrder) -> list[Event]:
        book = self.books.get(cmd.security)

        def reject(reason: RejectReason, exec_id: int) -> list[Event]:
            return [ExecutionReport(ExecType.REJECTED, cmd.ts_ns, cmd.security, cmd.order_id,
                                    cmd.account, cmd.side, cmd.price_e3, cmd.qty, 0, 0, 0, 0,
                                    exec_id, reason)]  # fmt: skip

        if book is None:
            return reject(RejectReason.UNKNOWN_SECURITY, 0)
        reason: RejectReason | None = None
        bound = cmd.price_e3
        market = cmd.order_type is OrderType.MARKET
        if not book.instrument.enabled:
            reason = RejectReason.SECURITY_HALTED
        elif any(o.order_id == cmd.order_id for o in book.orders):
            reason = RejectReason.DUPLICATE_ORDER_ID
        else:
            reason = self.qty_reason(book, cmd.qty)
        if reason is None and market:
            opp = book.side(_opposite(cmd.side))
            if not self.rules.market_orders_allowed:
                reason = RejectReason.ORDER_TYPE_NOT_ALLOWED
            elif cmd.tif is TimeInForce.DAY:
                reason = RejectReason.INVALID_TIME_IN_FORCE
            elif not opp:
                reason = RejectReason.NO_LIQUIDITY
            else:
                bps = self.rules.market_collar_bps
                best = opp[0].price
                if cmd.side is Side.BUY:
                    bound = (best * (10_000 + bps)) // 10_000
                else:
                    bound = -((-best * (10_000 - bps)) // 10_000)
        elif reason is None:
            reason = self.price_reason(book, cmd.price_e3) or self.reach_reason(
                book, cmd.side, cmd.order_type, cmd.price_e3
            )
        order = RefOrder(cmd.order_id, cmd.account, cmd.member, cmd.side,
                         0 if market else cmd.price_e3, cmd.qty, 0, cmd.order_type, cmd.stp)  # fmt: skip
        if reason is None and cmd.tif is TimeInForce.FOK:
            trial_book, trial_order = copy.deepcopy((book, order))
            ref_match(trial_book, self.rules, trial_order, bound, cmd.ts_ns, [])
            if trial_order.leaves > 0:
                reason = RejectReason.FOK_NOT_FILLABLE
        if reason is not None:
            return reject(reason, book.next_id())
        out: list[Event] = [book.report(order, ExecType.ACCEPTED, cmd.ts_ns)]
        cancelled = ref_match(book, self.rules, order, bound, cmd.ts_ns, out)
        if not cancelled and order.leaves > 0:
            if cmd.tif is TimeInForce.DAY:
                book.rest(order)
            else:
                out.append(book.report(order, ExecType.EXPIRED, cmd.ts_ns))
        return out

    def find(self, book: RefBook, order_id: int) -> RefOrder | None:
        return next((o for o in book.orders if o.order_id == order_id), None)

    def cancel(self, cmd: CancelOrder) -> list[Event]:
        book = self.books.get(cmd.security)
        if book is None:
            return [CancelRejected(cmd.ts_ns, cmd.security, cmd.order_id, cmd.account,
                                   RequestKind.CANCEL, RejectReason.UNKNOWN_SECURITY, 0)]  # fmt: skip
        order = self.find(book, cmd.order_id)
        reason = None
        if order is None:
            reason = RejectReason.UNKNOWN_ORDER
        elif order.account != cmd.account:
            reason = RejectReason.NOT_OWNER
        if reason is not None:
            return [CancelRejected(cmd.ts_ns, cmd.security, cmd.order_id, cmd.account,
                                   RequestKind.CANCEL, reason, book.next_id())]  # fmt: skip
        assert order is not None
        book.orders.remove(order)
        return [book.report(order, ExecType.CANCELED, cmd.ts_ns, CancelReason.REQUESTED)]

    def amend(self, cmd: AmendOrder) -> list[Event]:
        book = self.books.get(cmd.security)

        def reject(reason: RejectReason, exec_id: int) -> list[Event]:
            return [CancelRejected(cmd.ts_ns, cmd.security, cmd.order_id, cmd.account,
                                   RequestKind.AMEND, reason, exec_id)]  # fmt: skip

        if book is None:
            return reject(RejectReason.UNKNOWN_SECURITY, 0)
        order = self.find(book, cmd.order_id)
        reason = None
        if not book.instrument.enabled:
            reason = RejectReason.SECURITY_HALTED
        elif order is None:
            reason = RejectReason.UNKNOWN_ORDER
        elif order.account != cmd.account:
            reason = RejectReason.NOT_OWNER
        else:
            reason = self.qty_reason(book, cmd.qty)
            if reason is None and cmd.qty <= order.cum:
                reason = RejectReason.INVALID_QTY
            reason = reason or self.price_reason(book, cmd.price_e3)
            if reason is None and (cmd.price_e3, cmd.qty) == (order.price, order.qty):
                reason = RejectReason.AMEND_NO_CHANGE
            if reason is None and cmd.price_e3 != order.price:
                reason = self.reach_reason(book, order.side, order.order_type, cmd.price_e3)
        if reason is not None:
            return reject(reason, book.next_id())
        assert order is not None
        keeps_priority = cmd.price_e3 == order.price and cmd.qty < order.qty
        order.price, order.qty = cmd.price_e3, cmd.qty
        out: list[Event] = []
        if keeps_priority:
            out.append(book.report(order, ExecType.AMENDED, cmd.ts_ns))
            return out
        book.orders.remove(order)
        out.append(book.report(order, ExecType.AMENDED, cmd.ts_ns))
        cancelled = ref_match(book, self.rules, order, cmd.price_e3, cmd.ts_ns, out)
        if not cancelled and order.leaves > 0:
            book.rest(order)
        return out

    def mass_cancel(self, cmd: MassCancel) -> list[Event]:
        if cmd.security is not None and cmd.security not in self.books:
            return [CancelRejected(cmd.ts_ns, cmd.security, 0, cmd.account,
                                   RequestKind.MASS_CANCEL, RejectReason.UNKNOWN_SECURITY)]  # fmt: skip
        out: list[Event] = []
        for sec in sorted(self.books):
            if cmd.security is not None and sec != cmd.security:
                continue
            book = self.books[sec]
            for order in sorted(book.orders, key=lambda o: o.order_id):
                if order.account == cmd.account:
                    book.orders.remove(order)
                    out.append(book.report(order, ExecType.CANCELED, cmd.ts_ns,
                                           CancelReason.MASS_CANCEL))  # fmt: skip
        out.append(MassCancelled(cmd.ts_ns, cmd.account, cmd.security, len(out)))
        return out

    # -- reading ----------------------------------------------------------------------
    def resting_orders(self, security: int) -> list[tuple]:
        book = self.books[security]
        return [
            (o.order_id, o.side, o.price, o.qty, o.cum, o.leaves)
            for side in (Side.BUY, Side.SELL)
            for o in book.side(side)
        ]

    def depth(self, security: int, levels: int) -> tuple[tuple, tuple]:
        book = self.books[security]
        result = []
        for side in (Side.BUY, Side.SELL):
            prices: list[int] = []
            for o in book.side(side):
                if o.price not in prices:
                    prices.append(o.price)
            result.append(
                tuple(
                    (p, sum(o.leaves for o in book.orders if o.side is side and o.price == p),
                     sum(1 for o in book.orders if o.side is side and o.price == p))
                    for p in prices[:levels]
                )
            )  # fmt: skip
        return result[0], result[1]
