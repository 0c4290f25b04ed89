"""The simulated HKEX securities market: books, statistics and seeded synthetic liquidity. Pure.

Guarantees:
- Every security's board-lot book is the matcher's ``Engine`` under ``Rules.hkex()``: the
  spread tables, board lots, at most 3,000 lots per order, limit orders that match only at
  the best opposite price, enhanced limit orders that reach 10 price queues, and the 9x
  nominal price check. The simulator adds no matching rules of its own.
- ``place``/``cancel``/``amend``/``mass_cancel`` (or ``submit`` with a matcher command) run one
  command on behalf of any client (a FIX session, the market makers, a test) and return the
  engine's events. Every listener then receives one ``MarketUpdate`` per security touched,
  synchronously and in registration order, before the call returns: a publisher that diffs
  the book in its listener sees every book change and every trade, in order.
- Trades get a per-security ``trade_id`` counting from 1 (OMD-C's Trade carries a Uint32).
- The synthetic liquidity is a pure function of ``LiquidityConfig.seed`` and the sequence of
  calls with their timestamps: there is no wall clock and no other randomness inside. The
  process shell supplies ``now_ns`` to ``step``.
- Market makers quote around a per-security fair price that walks one tick at a time and
  stays between half and one and a half times the previous close; they prune their own
  quotes, so the makers' resting orders per security stay bounded (``MAKER_ORDERS_MAX``).

Limits: one continuous session (no auctions, no VCM, no odd-lot book). The nominal price is
the last trade price, else the previous close (HKEX's rule also considers the best bid and
ask). Not thread-safe: call it from one thread (the shell's event loop). Listeners must not
raise or call back into the market.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from sampan.market.listings import DEFAULT_LISTINGS
from sampan.market.rules import SPREAD_TABLE_PART_A, SPREAD_TABLES
from sampan.market.side import Side
from sampan.matching import (
    AmendOrder,
    CancelOrder,
    Command,
    Engine,
    Event,
    ExecType,
    ExecutionReport,
    Fill,
    Instrument,
    MassCancel,
    OrderType,
    PlaceOrder,
    Rules,
    TimeInForce,
)

DepthLevel = tuple[int, int, int]  # (price_e3, qty, order_count), as the matcher reports it
VISIBLE_TICKS = 10  # OMD-C shows prices within 10 tick levels (9 spreads) of the best (§5)
VISIBLE_LEVELS_MAX = 10  # and at most 10 price levels of them
MAKER_ORDERS_MAX = 64  # per security; the makers cancel before quoting past this
MAKER_ACCOUNT = "HKMM01"
MAKER_MEMBER = "MM01"
TAKER_ACCOUNT = "HKTK01"
TAKER_MEMBER = "TK01"


@dataclass(frozen=True, slots=True)
class ListedSecurity:
    """A security listed on the simulated market, with its previous closing price."""

    security: int
    short_name: str
    board_lot: int
    prev_close_e3: int
    spread_table: int = SPREAD_TABLE_PART_A

    def __post_init__(self) -> None:
        assert 1 <= self.security <= 99_999, self.security
        table = SPREAD_TABLES[self.spread_table]
        assert table.is_on_tick(self.prev_close_e3), f"{self} closed off tick"

    def instrument(self) -> Instrument:
        return Instrument(self.security, self.board_lot, self.spread_table, self.prev_close_e3)


# The simulated market lists these of the venue's instruments (sampan.market.listings), with the
# same board lots and previous closes, so both venues agree on every reference price.
SIMULATED_CODES = frozenset({5, 388, 700, 941, 1299, 1810, 2800, 3690, 9988})
DEFAULT_SECURITIES: tuple[ListedSecurity, ...] = tuple(
    ListedSecurity(listing.security, listing.name, listing.board_lot, listing.prev_close_e3)
    for listing in DEFAULT_LISTINGS
    if listing.security in SIMULATED_CODES
)


@dataclass(frozen=True, slots=True)
class MarketTrade:
    """A public trade. ``exec_id`` is the engine's, shared by both legs' reports."""

    security: int
    trade_id: int
    price_e3: int
    qty: int
    aggressor_side: Side
    ts_ns: int
    exec_id: int


@dataclass(frozen=True, slots=True)
class MarketUpdate:
    """What one command did to one security, handed to every listener."""

    security: int
    ts_ns: int
    events: tuple[Event, ...]
    trades: tuple[MarketTrade, ...]


@dataclass(frozen=True, slots=True)
class SecurityStatistics:
    """The day so far for one security; prices 0 until the first trade."""

    security: int
    prev_close_e3: int
    nominal_e3: int
    open_e3: int = 0
    high_e3: int = 0
    low_e3: int = 0
    last_e3: int = 0
    volume: int = 0
    turnover_e3: int = 0  # sum of price_e3 * qty: HK$0.001
    trade_count: int = 0


@dataclass(frozen=True, slots=True)
class LiquidityConfig:
    """The synthetic order flow. Shares are percent of actions; the rest are quotes."""

    seed: int = 1
    actions_per_s: int = 200  # across the whole market
    quote_levels: int = 8  # makers quote this many ticks deep each side of the fair price
    lots_max: int = 20
    take_pct: int = 15  # aggressive IOC orders at the best opposite price (trades)
    walk_pct: int = 10  # the fair price moves one tick
    cancel_pct: int = 25  # a maker pulls a quote
    actions_per_step_max: int = 20_000  # a long stall is not caught up all at once

    def __post_init__(self) -> None:
        assert self.actions_per_s >= 0 and self.quote_levels >= 1 and self.lots_max >= 1
        assert self.take_pct + self.walk_pct + self.cancel_pct <= 100


Listener = Callable[[MarketUpdate], None]


class Market:
    """The simulated securities market. See the module docstring for the contract."""

    def __init__(
        self,
        securities: Iterable[ListedSecurity] = DEFAULT_SECURITIES,
        liquidity: LiquidityConfig | None = None,
    ) -> None:
        self._listed = {s.security: s for s in sorted(securities, key=lambda s: s.security)}
        assert self._listed, "a market lists at least one security"
        self.engine = Engine(Rules.hkex(), (s.instrument() for s in self._listed.values()))
        self.liquidity = liquidity if liquidity is not None else LiquidityConfig()
        self._listeners: list[Listener] = []
        self._next_order_id = 1
        self._trade_ids = dict.fromkeys(self._listed, 0)
        self._stats = {
            code: SecurityStatistics(code, s.prev_close_e3, s.prev_close_e3)
            for code, s in self._listed.items()
        }
        self._makers = {code: _Maker(s) for code, s in self._listed.items()}
        self._codes = tuple(self._listed)
        self._rng = random.Random(self.liquidity.seed)
        self._clock_start_ns: int | None = None
        self._actions_done = 0

    # ------------------------------------------------------------------ reading

    def securities(self) -> tuple[ListedSecurity, ...]:
        return tuple(self._listed.values())

    def listed(self, security: int) -> ListedSecurity | None:
        return self._listed.get(security)

    def statistics(self, security: int) -> SecurityStatistics:
        return self._stats[security]

    def depth(self, security: int, levels: int = 10) -> tuple[tuple[DepthLevel, ...], ...]:
        """(bids, asks) best first, as (price_e3, qty, order_count); occupied prices only."""
        return self.engine.depth(security, levels)

    def visible_depth(self, security: int) -> tuple[tuple[DepthLevel, ...], ...]:
        """(bids, asks) as OMD-C disseminates them: prices within 10 tick levels of the best
        price of their side, at most 10 of them (§5, "Partial Price Depth")."""
        table = SPREAD_TABLES[self._listed[security].spread_table]
        bids, asks = self.engine.depth(security, VISIBLE_LEVELS_MAX)
        if bids:
            floor_e3 = table.tick_down(bids[0][0], VISIBLE_TICKS - 1)
            bids = tuple(level for level in bids if level[0] >= floor_e3)
        if asks:
            ceiling_e3 = table.tick_up(asks[0][0], VISIBLE_TICKS - 1)
            asks = tuple(level for level in asks if level[0] <= ceiling_e3)
        return bids, asks

    def fair_price_e3(self, security: int) -> int:
        return self._makers[security].fair_e3

    # ------------------------------------------------------------------ order entry

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        self._listeners.remove(listener)

    def allocate_order_id(self) -> int:
        """A market-wide unique order id (the engine's OrderID; map ClOrdIDs onto it)."""
        order_id = self._next_order_id
        self._next_order_id += 1
        return order_id

    def place(
        self,
        *,
        ts_ns: int,
        security: int,
        account: str,
        member: str,
        side: Side,
        qty: int,
        price_e3: int,
        order_type: OrderType = OrderType.LIMIT,
        tif: TimeInForce = TimeInForce.DAY,
        order_id: int | None = None,
    ) -> list[Event]:
        """Enter a new order; ``order_id`` None allocates one (see the ACCEPTED report)."""
        oid = self.allocate_order_id() if order_id is None else order_id
        command = PlaceOrder(
            ts_ns, security, oid, account, member, side, qty, price_e3, order_type, tif
        )
        return self.submit(command)

    def cancel(self, *, ts_ns: int, security: int, order_id: int, account: str) -> list[Event]:
        return self.submit(CancelOrder(ts_ns, security, order_id, account))

    def amend(
        self, *, ts_ns: int, security: int, order_id: int, account: str, price_e3: int, qty: int
    ) -> list[Event]:
        """Cancel/replace: ``qty`` is the new total quantity, including what has filled."""
        return self.submit(AmendOrder(ts_ns, security, order_id, account, price_e3, qty))

    def mass_cancel(self, *, ts_ns: int, account: str, security: int | None = None) -> list[Event]:
        """Cancel-on-disconnect and mass cancel: every resting order of ``account``."""
        return self.submit(MassCancel(ts_ns, account, security))

    def submit(self, command: Command) -> list[Event]:
        """Run any matcher command, record trades and statistics, notify the listeners."""
        events = self.engine.process(command)
        by_security: dict[int, list[Event]] = {}
        for event in events:
            code = getattr(event, "security", None)
            if code is not None:
                by_security.setdefault(code, []).append(event)
        ts_ns = command.ts_ns
        for code, own in by_security.items():
            if code not in self._listed:
                continue  # a reject for an unknown security changes nothing
            trades = tuple(self._record_trade(f) for f in own if type(f) is Fill)
            self._makers[code].track(own)
            update = MarketUpdate(code, ts_ns, tuple(own), trades)
            for listener in self._listeners:
                listener(update)
        return events

    def _record_trade(self, fill: Fill) -> MarketTrade:
        code = fill.security
        trade_id = self._trade_ids[code] = self._trade_ids[code] + 1
        s = self._stats[code]
        price, qty = fill.price_e3, fill.qty
        self._stats[code] = replace(
            s,
            nominal_e3=price,
            open_e3=s.open_e3 or price,
            high_e3=max(s.high_e3, price),
            low_e3=min(s.low_e3, price) if s.low_e3 else price,
            last_e3=price,
            volume=s.volume + qty,
            turnover_e3=s.turnover_e3 + price * qty,
            trade_count=s.trade_count + 1,
        )
        return MarketTrade(
            code, trade_id, price, qty, fill.aggressor_side, fill.ts_ns, fill.exec_id
        )

    # ------------------------------------------------------------------ synthetic liquidity

    def seed_books(self, now_ns: int) -> None:
        """Quote every level of every security once: the opening book."""
        for code in self._codes:
            maker = self._makers[code]
            for k in range(self.liquidity.quote_levels):
                for side in (Side.BUY, Side.SELL):
                    self._quote(now_ns, maker, side, k)

    def step(self, now_ns: int) -> int:
        """Perform the actions due by ``now_ns`` at ``actions_per_s``; return how many."""
        if self._clock_start_ns is None:
            self._clock_start_ns = now_ns
        elapsed_ns = max(0, now_ns - self._clock_start_ns)
        due = elapsed_ns * self.liquidity.actions_per_s // 1_000_000_000 - self._actions_done
        count = min(max(due, 0), self.liquidity.actions_per_step_max)
        self.act(now_ns, count)
        # Actions skipped by the cap are forgiven, not owed: a stall must not cause a burst.
        self._actions_done += max(due, 0)
        return count

    def act(self, now_ns: int, actions: int) -> None:
        """Perform ``actions`` random actions now (tests and benchmarks drive this directly)."""
        cfg, rng = self.liquidity, self._rng
        for _ in range(actions):
            maker = self._makers[rng.choice(self._codes)]
            roll = rng.randrange(100)
            if roll < cfg.take_pct:
                self._take(now_ns, maker)
            elif roll < cfg.take_pct + cfg.walk_pct:
                maker.walk(rng)
            elif roll < cfg.take_pct + cfg.walk_pct + cfg.cancel_pct or (
                len(maker.open) >= MAKER_ORDERS_MAX
            ):
                self._pull(now_ns, maker)
            else:
                side = Side.BUY if rng.randrange(2) == 0 else Side.SELL
                self._quote(now_ns, maker, side, rng.randrange(cfg.quote_levels))

    def _quote(self, now_ns: int, maker: _Maker, side: Side, k: int) -> None:
        """Quote ``k`` ticks from the fair price (bids at fair - k, asks at fair + 1 + k)."""
        table = maker.table
        if side is Side.BUY:
            price = table.tick_down(maker.fair_e3, k)
        else:
            price = table.tick_up(maker.fair_e3, k + 1)
        qty = maker.lot * self._rng.randint(1, self.liquidity.lots_max)
        existing = maker.order_at(side, price)
        if existing is None:
            self.place(
                ts_ns=now_ns,
                security=maker.security,
                account=MAKER_ACCOUNT,
                member=MAKER_MEMBER,
                side=side,
                qty=qty,
                price_e3=price,
            )
        else:
            order_id, cum_qty = existing
            if qty > cum_qty:
                self.amend(
                    ts_ns=now_ns,
                    security=maker.security,
                    order_id=order_id,
                    account=MAKER_ACCOUNT,
                    price_e3=price,
                    qty=qty,
                )

    def _pull(self, now_ns: int, maker: _Maker) -> None:
        order_id = maker.worst_order(self._rng)
        if order_id is not None:
            self.cancel(
                ts_ns=now_ns, security=maker.security, order_id=order_id, account=MAKER_ACCOUNT
            )

    def _take(self, now_ns: int, maker: _Maker) -> None:
        side = Side.BUY if self._rng.randrange(2) == 0 else Side.SELL
        bids, asks = self.engine.depth(maker.security, 1)
        opposite = asks if side is Side.BUY else bids
        if not opposite:
            self._quote(now_ns, maker, Side.SELL if side is Side.BUY else Side.BUY, 0)
            return
        self.place(
            ts_ns=now_ns,
            security=maker.security,
            account=TAKER_ACCOUNT,
            member=TAKER_MEMBER,
            side=side,
            qty=maker.lot * self._rng.randint(1, self.liquidity.lots_max),
            price_e3=opposite[0][0],
            tif=TimeInForce.IOC,
        )


class _Maker:
    """One security's market maker: the fair price and its own open quotes."""

    __slots__ = ("fair_e3", "high_e3", "lot", "low_e3", "open", "security", "table")

    def __init__(self, listed: ListedSecurity) -> None:
        self.security = listed.security
        self.lot = listed.board_lot
        self.table = SPREAD_TABLES[listed.spread_table]
        self.fair_e3 = listed.prev_close_e3
        self.low_e3 = listed.prev_close_e3 // 2
        self.high_e3 = listed.prev_close_e3 * 3 // 2
        # order id -> (side, price_e3, cum_qty); insertion order is deterministic.
        self.open: dict[int, tuple[Side, int, int]] = {}

    def walk(self, rng: random.Random) -> None:
        up = rng.randrange(2) == 0
        if up and self.fair_e3 >= self.high_e3:
            up = False
        elif not up and self.fair_e3 <= self.low_e3:
            up = True
        self.fair_e3 = (
            self.table.tick_up(self.fair_e3, 1) if up else self.table.tick_down(self.fair_e3, 1)
        )

    def track(self, events: list[Event]) -> None:
        """Follow the makers' own orders through the engine's reports."""
        for event in events:
            if type(event) is not ExecutionReport or event.account != MAKER_ACCOUNT:
                continue
            if event.leaves_qty == 0 or event.exec_type is ExecType.REJECTED:
                self.open.pop(event.order_id, None)
            else:
                self.open[event.order_id] = (event.side, event.price_e3, event.cum_qty)

    def order_at(self, side: Side, price_e3: int) -> tuple[int, int] | None:
        for order_id, (s, p, cum_qty) in self.open.items():
            if s is side and p == price_e3:
                return order_id, cum_qty
        return None

    def worst_order(self, rng: random.Random) -> int | None:
        """A quote on the wrong side of the fair price if any, else a random one."""
        if not self.open:
            return None
        fair = self.fair_e3
        for order_id, (side, price, _) in self.open.items():
            if (side is Side.BUY and price > fair) or (side is Side.SELL and price <= fair):
                return order_id
        return rng.choice(list(self.open))
