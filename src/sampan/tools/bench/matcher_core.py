"""Benchmark of the matcher's pure core: commands per second and per-command latency.

`run_core_bench(seed, books, commands)` seeds `books` books with about 1,000 resting orders
each, then drives a seeded mix (about 50% new day limits, 15% IOC, 25% cancels, 10% amends)
chosen from the live orders the engine reports. It runs the command list twice against fresh
engines built the same way:

1. one `perf_counter_ns` pair around each `Engine.process` call for the latency percentiles
   (the timer itself adds roughly 0.1 us to each sample);
2. one tight loop over the same list, timed as a whole, for `core_commands_per_s`.

Determinism makes the two runs identical event for event (checked by counting events).

Measured (seed 42, 10 books, 300,000 commands, CPython 3.11.7, 2-core container shared with
other tenants, before and after alternated in one session): before the engine's events became
`NamedTuple`s and the hot path was leaned, 181,000-255,000 commands/s, p50 3.9-4.0 us, p99 17
us; after, 438,000-626,000 commands/s, p50 1.8-2.0 us, p99 7.4-11.5 us (25 us in a loaded run),
p99.9 23-130 us. The spread is the other tenants: best-of-5 replays of one command list,
alternated, give 218,000-260,000 before against 520,000-645,000 after (2.3-2.6x). The effective
mix is about 44% new day, 13% IOC, 34% cancel, 9% amend: when the books exceed 110% of their
target size a new order turns into a cancel; the result reports the mix it ran.

What limits it now (cProfile and timeit on this code): Python function calls. A new day order
runs about ten of them (`process`, `_place`, `_check_place`, `_check_price`,
`SpreadTable.is_on_tick`, `_check_reach`, `Order()`, `report`, `match` returning at once,
`rest`), a cancel seven (`process`, `_cancel`, `_ownership`, `OrderBook.cancel`, `unlink`,
`OrderStatus.to`, `report`); each costs 30-60 ns before it does any work, and the attribute
reads and stores on `Order`, `Level` and the command are most of the rest. Events are no longer
the bottleneck: an `ExecutionReport` built with `tuple.__new__` costs ~0.1 us against ~0.9 us as
a frozen dataclass. Order construction (16 slot stores, ~0.15 us) and cache misses on the linked
lists of 10,000 resting orders come next; turning the garbage collector off makes no measurable
difference. Tail latency comes from IOC sweeps that emit many events and from other processes on
the machine. Going much further in pure Python means merging the check helpers into one function
per command, which would duplicate the checks that place and amend share; beyond that, a
compiled core.
"""

from __future__ import annotations

import json
import random
import sys
import time
from dataclasses import dataclass

from sampan.market.side import Side
from sampan.matching.engine import Engine
from sampan.matching.instrument import Instrument
from sampan.matching.model import (
    AmendOrder,
    CancelOrder,
    Command,
    Event,
    ExecType,
    ExecutionReport,
    Fill,
    PlaceOrder,
    TimeInForce,
)

RESTING_PER_BOOK = 1_000
MID_E3 = 100_000  # HK$100.000; the 100-200 band's tick is 0.1
TICK_E3 = 100
LOT = 100
ACCOUNTS = tuple(f"acc{i:03d}" for i in range(50))
LEVELS_DEEP = 20  # resting prices lie within this many ticks of the touch


@dataclass(slots=True)
class _Live:
    security: int
    account: str
    side: Side
    price_e3: int
    qty: int
    cum_qty: int


class _Driver:
    """Generates commands from the orders it knows to be live, learning from the events."""

    def __init__(self, seed: int, books: int) -> None:
        self.rng = random.Random(seed)
        self.books = books
        self.next_id = 1
        self.live: dict[int, _Live] = {}
        self.ids: list[int] = []  # the keys of `live`, for O(1) random choice
        self.where: dict[int, int] = {}

    def place(self, ts: int, tif: TimeInForce, aggressive: bool) -> PlaceOrder:
        rng = self.rng
        security = rng.randrange(1, self.books + 1)
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        ticks = rng.randint(1, 3) if aggressive else -rng.randint(-1, LEVELS_DEEP)
        price = MID_E3 + ticks * TICK_E3 if side is Side.BUY else MID_E3 - ticks * TICK_E3
        account = ACCOUNTS[rng.randrange(len(ACCOUNTS))]
        order_id, self.next_id = self.next_id, self.next_id + 1
        # IOC orders are larger, so their sweeps take about as many resting orders as the
        # day orders add and the books stay near RESTING_PER_BOOK.
        qty = LOT * (rng.randint(1, 10) if aggressive else rng.randint(1, 5))
        member = account[:5]  # ten accounts share a member firm, so STP happens
        return PlaceOrder(ts, security, order_id, account, member, side, qty, price, tif=tif)

    def next_command(self, ts: int) -> Command:
        roll = self.rng.random()
        if len(self.ids) > self.books * RESTING_PER_BOOK * 1.1:
            roll = 0.0  # over target: cancel instead
        if roll < 0.25 and self.ids:
            oid = self.ids[self.rng.randrange(len(self.ids))]
            order = self.live[oid]
            return CancelOrder(ts, order.security, oid, order.account)
        if roll < 0.35 and self.ids:
            return self._amend(ts)
        if roll < 0.50:
            return self.place(ts, TimeInForce.IOC, aggressive=True)
        return self.place(ts, TimeInForce.DAY, aggressive=False)

    def _amend(self, ts: int) -> AmendOrder:
        oid = self.ids[self.rng.randrange(len(self.ids))]
        o = self.live[oid]
        if o.qty - LOT > o.cum_qty and self.rng.random() < 0.5:
            return AmendOrder(ts, o.security, oid, o.account, o.price_e3, o.qty - LOT)
        away = TICK_E3 if o.side is Side.SELL else -TICK_E3
        return AmendOrder(ts, o.security, oid, o.account, o.price_e3 + away, o.qty)

    def learn(self, command: Command, events: list[Event]) -> None:
        for ev in events:
            if type(ev) is not ExecutionReport:
                continue
            kind = ev.exec_type
            if kind is ExecType.ACCEPTED:
                assert isinstance(command, PlaceOrder)
                if command.tif is TimeInForce.DAY:
                    self._add(
                        ev.order_id,
                        _Live(ev.security, ev.account, ev.side, ev.price_e3, ev.order_qty, 0),
                    )
            elif kind in _DONE:
                self._remove(ev.order_id)
            elif ev.order_id in self.live:
                o = self.live[ev.order_id]
                o.price_e3, o.qty, o.cum_qty = ev.price_e3, ev.order_qty, ev.cum_qty  # fmt: skip

    def _add(self, oid: int, order: _Live) -> None:
        self.live[oid] = order
        self.where[oid] = len(self.ids)
        self.ids.append(oid)

    def _remove(self, oid: int) -> None:
        if self.live.pop(oid, None) is None:
            return  # an IOC order's end
        slot = self.where.pop(oid)
        last = self.ids.pop()
        if last != oid:
            self.ids[slot] = last
            self.where[last] = slot


_DONE = frozenset({ExecType.FILLED, ExecType.CANCELED, ExecType.EXPIRED})


def _seeded_engine(seed: int, books: int) -> tuple[Engine, _Driver]:
    instruments = [Instrument(s, LOT, nominal_price_e3=MID_E3) for s in range(1, books + 1)]
    engine = Engine(instruments=instruments)
    driver = _Driver(seed, books)
    for ts in range(1, books * RESTING_PER_BOOK + 1):
        command = driver.place(ts, TimeInForce.DAY, aggressive=False)
        driver.learn(command, engine.process(command))
    return engine, driver


def _percentile(sorted_ns: list[int], fraction: float) -> float:
    index = min(len(sorted_ns) - 1, int(fraction * len(sorted_ns)))
    return sorted_ns[index] / 1_000


def run_core_bench(seed: int, books: int, commands: int) -> dict[str, float | int]:
    """Measure the core; see the module docstring for the method and its limits."""
    assert books >= 1 and commands >= 1
    engine, driver = _seeded_engine(seed, books)
    ts0 = driver.next_id
    timer = time.perf_counter_ns
    log: list[Command] = []
    latencies: list[int] = []
    events_timed = fills = 0
    mix = dict.fromkeys(("new_day", "new_ioc", "cancel", "amend"), 0)
    for i in range(commands):
        command = driver.next_command(ts0 + i)
        start = timer()
        events = engine.process(command)
        latencies.append(timer() - start)
        log.append(command)
        mix[_kind(command)] += 1
        events_timed += len(events)
        fills += sum(1 for ev in events if type(ev) is Fill)
        driver.learn(command, events)
    engine.validate()
    resting = len(driver.ids)

    replay, _ = _seeded_engine(seed, books)
    process = replay.process
    events_replayed = 0
    start = timer()
    for command in log:
        events_replayed += len(process(command))
    elapsed_ns = timer() - start
    assert events_replayed == events_timed, "the replay diverged: the core is not deterministic"

    latencies.sort()
    return {
        "books": books,
        "commands": commands,
        "core_commands_per_s": round(commands * 1e9 / elapsed_ns),
        "core_latency_us_p50": _percentile(latencies, 0.50),
        "core_latency_us_p99": _percentile(latencies, 0.99),
        "core_latency_us_p999": _percentile(latencies, 0.999),
        "events": events_timed,
        "fills": fills,
        "resting_orders_end": resting,
    } | {f"mix_{k}": v for k, v in mix.items()}


def _kind(command: Command) -> str:
    if isinstance(command, PlaceOrder):
        return "new_day" if command.tif is TimeInForce.DAY else "new_ioc"
    return "cancel" if isinstance(command, CancelOrder) else "amend"


if __name__ == "__main__":
    cli_args = [int(a) for a in sys.argv[1:]] or [1, 4, 200_000]
    print(json.dumps(run_core_bench(*cli_args), indent=2))
