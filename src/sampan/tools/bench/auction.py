"""Benchmark of an auction in the pure engine: order input during the closing auction, the
indicative equilibrium price, and the uncross of one book.

`run_auction_bench(seed, orders)` trades once in continuous trading to set the reference price,
moves the engine into the closing auction's order input, enters `orders` seeded orders into one
book (15% at-auction, the rest at-auction limit orders within the +/-5% band, 1 to 10 board
lots), then times: the input (`auction_input_orders_per_s`, each order accepted and resting
without matching), one IEP computation over the whole book (`auction_iep_ms`), and the move out
of the random close (`auction_uncross_ms`): the uncross at the IEP and the expiry of every
order left, events included. The engine checks its own book afterwards and the uncross traded
exactly the IEV. `auction_uncross_cpu_ms` is the process's CPU time for the same step: on a
shared machine the wall time can be several times larger.

This is the engine alone: no Kafka, no records. Orders/s through the whole venue during an
auction are those of `sampan bench matcher` (the matcher does the same work per order as in
continuous trading, minus the matching walk).
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

from sampan.market.sessions import Phase
from sampan.market.side import Side
from sampan.matching.engine import Engine
from sampan.matching.instrument import Instrument
from sampan.matching.model import (
    AuctionUncrossed,
    ChangePhase,
    ExecType,
    ExecutionReport,
    Fill,
    OrderType,
    PlaceOrder,
)

ORDERS_DEFAULT = 100_000
SECURITY = 700
REFERENCE_E3 = 400_000  # HK$400, tick HK$0.200; the +/-5% band holds 201 prices


def _orders(seed: int, count: int) -> list[PlaceOrder]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        qty = 100 * rng.randint(1, 10)
        if rng.random() < 0.15:
            out.append(
                PlaceOrder(3, SECURITY, 10 + i, f"A{i % 500}", f"M{i % 40}", side, qty, 0,
                           OrderType.AT_AUCTION)
            )  # fmt: skip
            continue
        # buyers lean above the reference and sellers below, so the book crosses widely
        lean = 10 if side is Side.BUY else -10
        price = REFERENCE_E3 + 200 * max(-100, min(100, int(rng.gauss(lean, 30))))
        out.append(
            PlaceOrder(3, SECURITY, 10 + i, f"A{i % 500}", f"M{i % 40}", side, qty, price,
                       OrderType.AT_AUCTION_LIMIT)
        )  # fmt: skip
    return out


def run_auction_bench(seed: int = 42, orders: int = ORDERS_DEFAULT) -> dict[str, Any]:
    engine = Engine(instruments=[Instrument(SECURITY, 100, nominal_price_e3=REFERENCE_E3)])
    engine.process(PlaceOrder(1, SECURITY, 1, "S", "MS", Side.SELL, 100, REFERENCE_E3))
    engine.process(PlaceOrder(1, SECURITY, 2, "B", "MB", Side.BUY, 100, REFERENCE_E3))
    for ts_ns, phase in ((2, Phase.CAS_REFERENCE_PRICE_FIXING), (3, Phase.CAS_ORDER_INPUT)):
        engine.process(ChangePhase(ts_ns, phase))  # changes apply in time order
    commands = _orders(seed, orders)
    started = time.perf_counter_ns()
    accepted = 0
    for command in commands:
        first = engine.process(command)[0]
        accepted += type(first) is ExecutionReport and first.exec_type is ExecType.ACCEPTED
    input_ns = time.perf_counter_ns() - started
    started = time.perf_counter_ns()
    indicative = engine.indicative(SECURITY)
    iep_ns = time.perf_counter_ns() - started
    assert indicative is not None, "the benchmark's book crosses"
    for ts_ns, phase in ((4, Phase.CAS_NO_CANCEL), (5, Phase.CAS_RANDOM_CLOSE)):
        engine.process(ChangePhase(ts_ns, phase))
    started, cpu_started = time.perf_counter_ns(), time.process_time_ns()
    events = engine.process(ChangePhase(6, Phase.CLOSED))
    uncross_ns = time.perf_counter_ns() - started
    uncross_cpu_ns = time.process_time_ns() - cpu_started
    engine.validate()
    result = next(e for e in events if type(e) is AuctionUncrossed)
    assert (result.price_e3, result.qty) == (indicative.price_e3, indicative.qty)
    return {
        "auction_orders": orders,
        "auction_orders_accepted": accepted,
        "auction_input_orders_per_s": round(orders / (input_ns / 1e9)),
        "auction_iep_ms": iep_ns / 1e6,
        "auction_uncross_ms": uncross_ns / 1e6,
        "auction_uncross_cpu_ms": uncross_cpu_ns / 1e6,
        "auction_iep_e3": indicative.price_e3,
        "auction_iev": indicative.qty,
        "auction_fills": sum(1 for e in events if type(e) is Fill),
        "auction_events": len(events),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    return run_auction_bench(orders=args.records or ORDERS_DEFAULT)
