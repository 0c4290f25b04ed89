"""One security's limit order book: price-time priority, matching, and its own invariants.

Guarantees:
- Each side keeps a dict price -> `Level` and a sorted list of priority keys (the price for
  bids, minus the price for asks) so that the best level of either side is `keys[-1]`: top-N
  depth reads N levels and never scans orders.
- A level is an intrusive doubly-linked FIFO of `Order` nodes with running aggregates
  (quantity, order count); `orders` maps order id -> node, so a cancel is O(1) plus an
  O(log levels) key removal when the level empties.
- `validate()` re-derives every aggregate and ordering from scratch and raises
  `InvariantError` (not an assert, so it survives `python -O`) on any mismatch.

Limits: the book does not check orders; the engine rejects bad input before calling it. Order
ids are unique among *live* orders only; a done order's id is forgotten, which bounds memory.

The hot path (`rest`, `cancel`, `report`, `match`) is written for CPython's cost model, see
`tools.bench.matcher_core`: enum members are read from module constants (a class attribute
read on an enum costs ~45 ns, a global ~5 ns), and events are built with `tuple.__new__`
(~0.1 us against ~0.2 us through the `NamedTuple` constructor). That fast path takes the
fields positionally and unchecked by mypy; the property tests compare every event with a reference engine that
builds them through the checked constructors.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from typing import Any

from sampan.market.rules import SPREAD_TABLES
from sampan.market.side import Side
from sampan.matching.auction import AT_AUCTION_ASK_LEVEL_E3, AT_AUCTION_BID_LEVEL_E3
from sampan.matching.instrument import Instrument, Rules
from sampan.matching.model import (
    EXEC_ID_SECURITY_FACTOR,
    CancelReason,
    Event,
    ExecType,
    ExecutionReport,
    Fill,
    OrderStatus,
    OrderType,
    StpMode,
)
from sampan.matching.volatility import Volatility

DepthLevel = tuple[int, int, int]  # (price_e3, qty, order_count)

# Hot-path aliases: see the module docstring.
_new = tuple.__new__
_BUY = Side.BUY
# A snapshot's code of a side (snapshots written before the one Side enum carry these too).
_SIDE_CODE = {Side.BUY: 1, Side.SELL: 2}
_SIDE_OF = {1: Side.BUY, 2: Side.SELL}
_ACCEPTED = ExecType.ACCEPTED
_AMENDED = ExecType.AMENDED
_CANCELED = ExecType.CANCELED
_EXPIRED = ExecType.EXPIRED
_FILLED = ExecType.FILLED
_PARTIALLY_FILLED = ExecType.PARTIALLY_FILLED
_STATUS_NEW = OrderStatus.NEW
_STATUS_CANCELED = OrderStatus.CANCELED
_STATUS_EXPIRED = OrderStatus.EXPIRED
_STATUS_FILLED = OrderStatus.FILLED
_STATUS_PARTIALLY_FILLED = OrderStatus.PARTIALLY_FILLED
_SELF_TRADE_PREVENTED = CancelReason.SELF_TRADE_PREVENTED
_AT_AUCTION = OrderType.AT_AUCTION
_AT_AUCTION_LEVELS = frozenset({AT_AUCTION_BID_LEVEL_E3, AT_AUCTION_ASK_LEVEL_E3})


class InvariantError(Exception):
    """The book's internal state is inconsistent: a bug, never a user error."""


def invariant(condition: bool, message: str) -> None:
    if not condition:
        raise InvariantError(message)


class Order:
    """A live order, also the node of its level's FIFO list (mutable, book-private)."""

    __slots__ = (
        "account",
        "cum_qty",
        "leaves_qty",
        "level",
        "member",
        "next",
        "order_id",
        "order_type",
        "prev",
        "price_e3",
        "priority",
        "qty",
        "side",
        "status",
        "stp",
        "ts_ns",
    )

    def __init__(
        self,
        order_id: int,
        account: str,
        member: str,
        side: Side,
        price_e3: int,
        qty: int,
        order_type: OrderType,
        stp: StpMode,
        ts_ns: int,
    ) -> None:
        self.order_id = order_id
        self.account = account
        self.member = member
        self.side = side
        self.price_e3 = price_e3
        self.qty = qty  # total order quantity; cum_qty + leaves_qty == qty while live
        self.cum_qty = 0
        self.leaves_qty = qty
        self.order_type = order_type
        self.stp = stp
        self.ts_ns = ts_ns
        self.status = _STATUS_NEW
        self.priority = 0
        self.prev: Order | None = None
        self.next: Order | None = None
        self.level: Level | None = None


class Level:
    __slots__ = ("count", "head", "price_e3", "qty", "tail")

    def __init__(self, price_e3: int) -> None:
        self.price_e3 = price_e3
        self.head: Order | None = None
        self.tail: Order | None = None
        self.qty = 0
        self.count = 0


class BookSide:
    __slots__ = ("keys", "levels", "sign")

    def __init__(self, side: Side) -> None:
        # Asks are keyed by the negated price so that the best level sits at keys[-1] on both
        # sides, where list.pop() is cheap.
        self.sign = 1 if side is _BUY else -1
        self.levels: dict[int, Level] = {}
        self.keys: list[int] = []

    def unlink(self, order: Order) -> None:
        """Take `order` out of its level, subtracting its current leaves from the level."""
        level = order.level
        assert level is not None, "order is not resting"
        prev, nxt = order.prev, order.next
        if prev is None:
            level.head = nxt
        else:
            prev.next = nxt
        if nxt is None:
            level.tail = prev
        else:
            nxt.prev = prev
        order.prev = order.next = order.level = None
        level.qty -= order.leaves_qty
        level.count -= 1
        if level.count == 0:
            del self.levels[level.price_e3]
            keys = self.keys
            key = self.sign * level.price_e3
            if keys[-1] == key:
                keys.pop()
            else:
                del keys[bisect_left(keys, key)]

    def best_price_e3(self) -> int | None:
        return self.sign * self.keys[-1] if self.keys else None

    def depth(self, levels_max: int) -> tuple[DepthLevel, ...]:
        """The best `levels_max` priced levels; the at-auction queue (during an auction) is
        not a price level and is left out."""
        keys, levels, sign = self.keys, self.levels, self.sign
        out: list[DepthLevel] = []
        for i in range(len(keys) - 1, -1, -1):
            level = levels[sign * keys[i]]
            if level.price_e3 in _AT_AUCTION_LEVELS:
                continue
            out.append((level.price_e3, level.qty, level.count))
            if len(out) == levels_max:
                break
        return tuple(out)

    def best_priced_e3(self) -> int:
        """The best price of a priced order on this side, 0 if there is none."""
        for i in range(len(self.keys) - 1, -1, -1):
            price = self.sign * self.keys[i]
            if price not in _AT_AUCTION_LEVELS:
                return price
        return 0

    def iter_levels(self) -> list[Level]:
        """Levels best first (used by checks and snapshots, not on the hot path)."""
        return [self.levels[self.sign * k] for k in reversed(self.keys)]


def _orders_of(level: Level) -> list[Order]:
    out = []
    node = level.head
    while node is not None:
        out.append(node)
        node = node.next
    return out


class OrderBook:
    """State of one security plus the matching walk; the engine decides what to run."""

    __slots__ = (
        "asks",
        "bids",
        "day",
        "exec_base",
        "instrument",
        "last_px_e3",
        "orders",
        "priority_seq",
        "rules",
        "security",
        "seq",
        "table",
        "vcm",
    )

    def __init__(self, instrument: Instrument, rules: Rules) -> None:
        self.security = instrument.security
        self.instrument = instrument
        self.table = SPREAD_TABLES[instrument.spread_table]
        self.rules = rules
        self.bids = BookSide(Side.BUY)
        self.asks = BookSide(Side.SELL)
        self.orders: dict[int, Order] = {}
        self.seq = 0  # per-book event sequence; exec ids derive from it
        self.priority_seq = 0  # time priority of resting orders
        self.last_px_e3 = 0
        self.exec_base = instrument.security * EXEC_ID_SECURITY_FACTOR
        self.day = DayState()
        self.vcm: Volatility | None = None
        if rules.vcm_band_bps:
            self.vcm = Volatility(rules.vcm_band_bps, rules.vcm_window_ns, rules.vcm_cooling_ns)

    def set_instrument(self, instrument: Instrument) -> None:
        assert instrument.security == self.security
        self.instrument = instrument
        self.table = SPREAD_TABLES[instrument.spread_table]

    def next_exec_id(self) -> int:
        self.seq += 1
        return self.exec_base + self.seq

    def opposite(self, side: Side) -> BookSide:
        return self.asks if side is _BUY else self.bids

    def rest(self, order: Order) -> None:
        """Append `order` to its level (opened if new) and index it. The level insertion is
        written out here rather than in `BookSide`, saving a call on every resting order."""
        self.priority_seq = order.priority = self.priority_seq + 1
        book_side = self.bids if order.side is _BUY else self.asks
        price = order.price_e3
        level = book_side.levels.get(price)
        if level is None:
            level = book_side.levels[price] = Level(price)
            insort(book_side.keys, book_side.sign * price)
        tail = level.tail
        order.prev = tail
        order.next = None
        order.level = level
        if tail is None:
            level.head = order
        else:
            tail.next = order
        level.tail = order
        level.qty += order.leaves_qty
        level.count += 1
        self.orders[order.order_id] = order

    def rest_any(self, order: Order) -> None:
        """Rest `order`, an at-auction order at its side's at-auction level."""
        if order.order_type is not _AT_AUCTION:
            self.rest(order)
            return
        level_price = AT_AUCTION_BID_LEVEL_E3 if order.side is _BUY else AT_AUCTION_ASK_LEVEL_E3
        price, order.price_e3 = order.price_e3, level_price
        self.rest(order)
        order.price_e3 = price

    def report(
        self,
        order: Order,
        exec_type: ExecType,
        ts_ns: int,
        reason: CancelReason | None = None,
    ) -> ExecutionReport:
        """A non-fill report for `order`; done orders show leaves 0."""
        live = exec_type is _ACCEPTED or exec_type is _AMENDED
        self.seq = seq = self.seq + 1
        # ExecutionReport(exec_type, ts_ns, security, order_id, account, side, price_e3,
        # order_qty, cum_qty, leaves_qty, last_px_e3, last_qty, exec_id, reason)
        report: ExecutionReport = _new(
            ExecutionReport,
            (
                exec_type, ts_ns, self.security, order.order_id, order.account, order.side,
                order.price_e3, order.qty, order.cum_qty, order.leaves_qty if live else 0,
                0, 0, self.exec_base + seq, reason,
            ),
        )  # fmt: skip
        return report

    def cancel(self, order: Order, reason: CancelReason, ts_ns: int) -> ExecutionReport:
        """Remove a resting order; return its cancel report."""
        (self.bids if order.side is _BUY else self.asks).unlink(order)
        del self.orders[order.order_id]
        order.status = order.status.to(_STATUS_CANCELED)
        return self.report(order, _CANCELED, ts_ns, reason)

    def amend(
        self,
        order: Order,
        price_e3: int,
        qty: int,
        ts_ns: int,
        out: list[Event],
        matching: bool = True,
        bound_e3: int | None = None,
    ) -> None:
        """Amend a resting order to `price_e3` and total quantity `qty` (the engine has checked
        the request: something changes, `qty` above what has filled). A quantity decrease at
        the same price keeps time priority and shrinks the level in place; any other change is
        a cancel/replace under the same order id: the order leaves its level, may trade at once
        at its new price (unless `matching` is False, during an auction), and rests last with
        what is left."""
        level = order.level
        assert level is not None, "only a resting order is amended"
        assert qty > order.cum_qty, "an amend leaves something to trade"
        if price_e3 == order.price_e3 and qty < order.qty:
            delta = order.qty - qty
            order.qty = qty
            order.leaves_qty -= delta
            level.qty -= delta
            out.append(self.report(order, _AMENDED, ts_ns))
            return
        (self.bids if order.side is _BUY else self.asks).unlink(order)
        del self.orders[order.order_id]
        order.price_e3 = price_e3
        order.qty = qty
        order.leaves_qty = qty - order.cum_qty
        order.ts_ns = ts_ns
        out.append(self.report(order, _AMENDED, ts_ns))
        if not matching:
            self.rest_any(order)
            return
        self.match(order, price_e3 if bound_e3 is None else bound_e3, ts_ns, out)
        if order.leaves_qty and order.status is not _STATUS_CANCELED:
            self.rest(order)

    def close_unrested(self, taker: Order, exec_type: ExecType, ts_ns: int) -> ExecutionReport:
        """End an order that never rests (IOC remainder, STP-cancelled incoming order)."""
        if exec_type is _EXPIRED:
            taker.status = taker.status.to(_STATUS_EXPIRED)
            return self.report(taker, exec_type, ts_ns)
        taker.status = taker.status.to(_STATUS_CANCELED)
        return self.report(taker, exec_type, ts_ns, _SELF_TRADE_PREVENTED)

    def match(self, taker: Order, bound_e3: int, ts_ns: int, out: list[Event]) -> None:
        """Trade `taker` (not resting) against the opposite side while the best opposite price
        is no worse than `bound_e3`. Stops when the taker is filled, out of reach, or
        cancelled by self-trade prevention (then its status is CANCELED)."""
        taker_side = taker.side
        taker_buys = taker_side is _BUY
        opp = self.asks if taker_buys else self.bids
        keys, sign = opp.keys, opp.sign
        key_bound = sign * bound_e3
        if not keys or keys[-1] < key_bound:
            return  # nothing in reach, as for most passive orders
        levels = opp.levels
        stp = self.rules.stp_enabled
        member = taker.member
        orders, security, exec_base, append = self.orders, self.security, self.exec_base, out.append
        vcm = self.vcm
        while keys and keys[-1] >= key_bound:
            level = levels[sign * keys[-1]]
            price = level.price_e3
            maker = level.head
            while maker is not None:
                nxt = maker.next
                if stp and maker.member == member:
                    if self._prevent_self_trade(taker, maker, ts_ns, out):
                        return
                    maker = nxt
                    continue
                taker_leaves, maker_leaves = taker.leaves_qty, maker.leaves_qty
                qty = taker_leaves if taker_leaves < maker_leaves else maker_leaves
                maker.leaves_qty = maker_leaves = maker_leaves - qty
                maker.cum_qty += qty
                level.qty -= qty
                taker.leaves_qty = taker_leaves = taker_leaves - qty
                taker.cum_qty += qty
                self.last_px_e3 = price
                if vcm is not None:
                    vcm.traded(ts_ns, price)
                self.seq = seq = self.seq + 1
                exec_id = exec_base + seq
                buyer, seller = (taker, maker) if taker_buys else (maker, taker)
                # Fill(exec_id, ts_ns, security, price_e3, qty, aggressor_side, buy_order_id,
                # buy_account, buy_member, sell_order_id, sell_account, sell_member)
                append(
                    _new(Fill, (
                        exec_id, ts_ns, security, price, qty, taker_side,
                        buyer.order_id, buyer.account, buyer.member,
                        seller.order_id, seller.account, seller.member,
                    ))
                )  # fmt: skip
                if maker_leaves == 0:
                    maker.status = maker.status.to(_STATUS_FILLED)
                    opp.unlink(maker)
                    del orders[maker.order_id]
                    exec_type = _FILLED
                else:
                    maker.status = maker.status.to(_STATUS_PARTIALLY_FILLED)
                    exec_type = _PARTIALLY_FILLED
                append(
                    _new(ExecutionReport, (
                        exec_type, ts_ns, security, maker.order_id, maker.account, maker.side,
                        maker.price_e3, maker.qty, maker.cum_qty, maker_leaves,
                        price, qty, exec_id, None,
                    ))
                )  # fmt: skip
                if taker_leaves == 0:
                    taker.status = taker.status.to(_STATUS_FILLED)
                    exec_type = _FILLED
                else:
                    taker.status = taker.status.to(_STATUS_PARTIALLY_FILLED)
                    exec_type = _PARTIALLY_FILLED
                append(
                    _new(ExecutionReport, (
                        exec_type, ts_ns, security, taker.order_id, taker.account, taker_side,
                        taker.price_e3, taker.qty, taker.cum_qty, taker_leaves,
                        price, qty, exec_id, None,
                    ))
                )  # fmt: skip
                if taker_leaves == 0:
                    return
                maker = nxt

    def _prevent_self_trade(self, taker: Order, maker: Order, ts_ns: int, out: list[Event]) -> bool:
        """Apply the taker's STP mode; True when the taker itself was cancelled."""
        mode = taker.stp
        if mode is not StpMode.CANCEL_INCOMING:
            out.append(self.cancel(maker, _SELF_TRADE_PREVENTED, ts_ns))
        if mode is not StpMode.CANCEL_RESTING:
            out.append(self.close_unrested(taker, _CANCELED, ts_ns))
            return True
        return False

    def fillable_qty(self, taker: Order, bound_e3: int) -> int:
        """How much `match` would fill, without changing anything (FOK pre-check)."""
        opp = self.asks if taker.side is Side.BUY else self.bids
        key_bound = opp.sign * bound_e3
        stp = self.rules.stp_enabled
        need, total = taker.leaves_qty, 0
        for key in reversed(opp.keys):
            if key < key_bound:
                break
            level = opp.levels[opp.sign * key]
            if not stp:
                total += level.qty
            else:
                node = level.head
                while node is not None:
                    if node.member != taker.member:
                        total += node.leaves_qty
                    elif taker.stp is not StpMode.CANCEL_RESTING:
                        return total  # the taker would be cancelled here
                    node = node.next
            if total >= need:
                break
        return total

    def depth(self, levels_max: int) -> tuple[tuple[DepthLevel, ...], tuple[DepthLevel, ...]]:
        return self.bids.depth(levels_max), self.asks.depth(levels_max)

    # ------------------------------------------------------------------ auctions

    def auction_book(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]], int, int]:
        """(bid levels, ask levels, at-auction buy qty, at-auction sell qty): the priced
        levels as (price_e3, qty), for `auction.equilibrium`."""
        bids: list[tuple[int, int]] = []
        asks: list[tuple[int, int]] = []
        at_auction = [0, 0]
        for book_side, levels, i in ((self.bids, bids, 0), (self.asks, asks, 1)):
            for level in book_side.levels.values():
                if level.price_e3 in _AT_AUCTION_LEVELS:
                    at_auction[i] = level.qty
                else:
                    levels.append((level.price_e3, level.qty))
        return bids, asks, at_auction[0], at_auction[1]

    def _eligible(self, book_side: BookSide, price_e3: int) -> list[Order]:
        """The side's orders that may trade at `price_e3`, in priority order."""
        out: list[Order] = []
        buys = book_side.sign == 1
        for key in reversed(book_side.keys):
            level_price = book_side.sign * key
            if (level_price < price_e3) if buys else (level_price > price_e3):
                break
            out.extend(_orders_of(book_side.levels[level_price]))
        return out

    def uncross(self, price_e3: int, ts_ns: int, out: list[Event]) -> int:
        """Trade every eligible buy against every eligible sell at `price_e3`, in priority
        order; return the quantity traded. An auction trade has no aggressor: the `Fill` names
        the side of the later order (larger time priority), so it stays keyed by the account
        whose order completed the match, and the earlier order's report precedes the later
        one's, as a resting order's precedes a taker's in continuous trading."""
        buys = self._eligible(self.bids, price_e3)
        sells = self._eligible(self.asks, price_e3)
        b = s = traded = 0
        security, exec_base = self.security, self.exec_base
        while b < len(buys) and s < len(sells):
            buyer, seller = buys[b], sells[s]
            qty = min(buyer.leaves_qty, seller.leaves_qty)
            for order in (buyer, seller):
                order.leaves_qty -= qty
                order.cum_qty += qty
                assert order.level is not None
                order.level.qty -= qty
            self.seq += 1
            exec_id = exec_base + self.seq
            later_buys = buyer.priority > seller.priority
            out.append(
                Fill(
                    exec_id, ts_ns, security, price_e3, qty, Side.BUY if later_buys else Side.SELL,
                    buyer.order_id, buyer.account, buyer.member,
                    seller.order_id, seller.account, seller.member,
                )
            )  # fmt: skip
            for order in (seller, buyer) if later_buys else (buyer, seller):
                if order.leaves_qty == 0:
                    order.status = order.status.to(_STATUS_FILLED)
                    (self.bids if order.side is _BUY else self.asks).unlink(order)
                    del self.orders[order.order_id]
                    exec_type = _FILLED
                else:
                    order.status = order.status.to(_STATUS_PARTIALLY_FILLED)
                    exec_type = _PARTIALLY_FILLED
                out.append(
                    ExecutionReport(
                        exec_type, ts_ns, security, order.order_id, order.account, order.side,
                        order.price_e3, order.qty, order.cum_qty, order.leaves_qty,
                        price_e3, qty, exec_id, None,
                    )
                )  # fmt: skip
            traded += qty
            b += buyer.leaves_qty == 0
            s += seller.leaves_qty == 0
        if traded:
            self.last_px_e3 = price_e3
            if self.vcm is not None:
                self.vcm.traded(ts_ns, price_e3)
        return traded

    def expire(self, order: Order, ts_ns: int) -> ExecutionReport:
        """End a resting order that the day's phase rules end (at-auction leftovers after the
        opening auction, every order at the close)."""
        (self.bids if order.side is _BUY else self.asks).unlink(order)
        del self.orders[order.order_id]
        order.status = order.status.to(_STATUS_EXPIRED)
        return self.report(order, _EXPIRED, ts_ns)

    def orders_by_priority(self) -> list[Order]:
        return sorted(self.orders.values(), key=lambda o: o.priority)

    def validate(self, crossed_allowed: bool = False) -> None:
        """Check every invariant; a book may be crossed only while orders accumulate for an
        auction (`crossed_allowed`), and only then hold at-auction orders."""
        seen: set[int] = set()
        for book_side, side in ((self.bids, Side.BUY), (self.asks, Side.SELL)):
            keys = book_side.keys
            invariant(keys == sorted(set(keys)), "keys not strictly ascending")
            invariant({book_side.sign * k for k in keys} == set(book_side.levels), "keys != levels")
            for level in book_side.iter_levels():
                _validate_level(level, side, self.orders, seen)
        invariant(seen == set(self.orders), "order index does not match the levels")
        if crossed_allowed:
            return
        bid, ask = self.bids.best_price_e3(), self.asks.best_price_e3()
        invariant(bid is None or ask is None or bid < ask, f"book crossed: {bid} >= {ask}")
        invariant(
            all(o.order_type is not _AT_AUCTION for o in self.orders.values()),
            "at-auction order outside an auction",
        )

    def snapshot(self) -> dict[str, Any]:
        rows = sorted(self.orders.values(), key=lambda o: o.priority)
        return {
            "day": self.day.to_list(),
            "vcm": self.vcm.to_list() if self.vcm is not None else None,
            "security": self.security,
            "seq": self.seq,
            "priority_seq": self.priority_seq,
            "last_px_e3": self.last_px_e3,
            "orders": [
                [
                    o.order_id, o.account, o.member, _SIDE_CODE[o.side], o.price_e3, o.qty,
                    o.cum_qty, o.ts_ns, o.order_type.value, o.stp.value, o.status.value,
                    o.priority,
                ]
                for o in rows
            ],
        }  # fmt: skip

    def load(self, data: dict[str, Any]) -> None:
        assert not self.orders, "load into an empty book only"
        self.seq = data["seq"]
        self.last_px_e3 = data["last_px_e3"]
        self.day = DayState.from_list(data.get("day"))
        if self.vcm is not None:
            self.vcm.load(data.get("vcm"))
        for row in data["orders"]:
            oid, account, member, side, price, qty, cum, ts, otype, stp, status, prio = row
            order = Order(
                oid, account, member, _SIDE_OF[side], price, qty, OrderType(otype), StpMode(stp), ts
            )
            order.cum_qty = cum
            order.leaves_qty = qty - cum
            order.status = OrderStatus(status)
            self.rest_any(order)
            order.priority = prio
        self.priority_seq = data["priority_seq"]


class DayState:
    """A book's figures for the trading day's phases, all HK$0.001 (0 = none): the previous
    close, the auction's reference price and input band, the no-cancel period's limits (buys at
    most `nc_buy_max_e3`, sells at least `nc_sell_min_e3`), and today's closing price."""

    __slots__ = (
        "band_high_e3",
        "band_low_e3",
        "close_e3",
        "nc_buy_max_e3",
        "nc_sell_min_e3",
        "prev_close_e3",
        "reference_e3",
    )

    def __init__(self) -> None:
        self.prev_close_e3 = 0
        self.reference_e3 = 0
        self.band_low_e3 = 0
        self.band_high_e3 = 0
        self.nc_buy_max_e3 = 0
        self.nc_sell_min_e3 = 0
        self.close_e3 = 0

    def to_list(self) -> list[int]:
        return [getattr(self, name) for name in DayState.__slots__]

    @classmethod
    def from_list(cls, values: list[int] | None) -> DayState:
        """Read `to_list()`; a snapshot written before day states existed has none."""
        state = cls()
        for name, value in zip(DayState.__slots__, values or (), strict=False):
            setattr(state, name, value)
        return state


def _validate_level(level: Level, side: Side, index: dict[int, Order], seen: set[int]) -> None:
    nodes = _orders_of(level)
    invariant(len(nodes) == level.count > 0, f"level {level.price_e3}: count mismatch")
    invariant(sum(o.leaves_qty for o in nodes) == level.qty, f"level {level.price_e3}: qty")
    invariant(level.tail is nodes[-1], f"level {level.price_e3}: tail")
    prev: Order | None = None
    for o in nodes:
        invariant(o.prev is prev and o.level is level, f"order {o.order_id}: links")
        level_price = o.price_e3 if o.order_type is not _AT_AUCTION else _AT_AUCTION_LEVEL[side]
        invariant(o.side is side and level_price == level.price_e3, f"order {o.order_id}: place")
        invariant(o.leaves_qty > 0 and o.cum_qty + o.leaves_qty == o.qty, f"{o.order_id}: qty")
        invariant(o.status in _LIVE_STATUSES, f"order {o.order_id}: status {o.status}")
        invariant(prev is None or prev.priority < o.priority, f"level {level.price_e3}: FIFO")
        invariant(index.get(o.order_id) is o and o.order_id not in seen, f"{o.order_id}: index")
        seen.add(o.order_id)
        prev = o


_LIVE_STATUSES = frozenset({OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED})
_AT_AUCTION_LEVEL = {Side.BUY: AT_AUCTION_BID_LEVEL_E3, Side.SELL: AT_AUCTION_ASK_LEVEL_E3}
