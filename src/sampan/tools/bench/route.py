"""`run_route_bench`: how fast the router gets orders to HKEX and back, and what risk costs.

What is measured (one process, one event loop, loopback TCP): the router's core and its
OCG-C session (`FixLink`, its outbound FIX store made durable by group commit: one fsync for
the messages ready together, none sent before it; `group_commit=False` fsyncs each message, as
before, for comparison in the same run) against the simulated gateway and market. An order's round trip is from the core
taking its request (risk check included) to the core turning HKEX's Trade report into a fill
and reports. Orders are kept `window` in flight. Kafka is not in this path: the transactions
that carry requests and reports add one commit per batch (see `sampan bench` for Kafka's
figures). `risk_check_us_p99` times `risk.check` alone on a warmed-up account.

Limits: the simulator runs in the same process and on the same core as the router, so the
figures are a lower bound of what two machines would do.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

from sampan.config import Settings
from sampan.hkex_sim.market import LiquidityConfig, ListedSecurity, Market
from sampan.hkex_sim.ocg_gateway import FirmConfig, Gateway, GatewayConfig
from sampan.market.side import Side
from sampan.router import risk
from sampan.router.core import CoreConfig, RouterCore
from sampan.router.fixlink import FixLink, LinkConfig
from sampan.router.tables import Tables

PRICE_E3 = 512_000
LOTS_PER_RESTING_ORDER = 3_000  # HKEX's maximum order size
LOGON_TIMEOUT_S = 10.0
REPORT_TIMEOUT_S = 10.0


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct))] if ordered else 0.0


def _command(i: int) -> dict[str, Any]:
    return {
        "command_id": f"b{i}",
        "kind": "NEW",
        "account": "BENCH",
        "member": "M1",
        "security": 700,
        "cl_ord_id": f"b{i}",
        "orig_cl_ord_id": None,
        "side": "BUY",
        "ord_type": "LIMIT",
        "time_in_force": "DAY",
        "price_e3": PRICE_E3,
        "qty": 100,
        "route": "HKEX",
        "batch_id": None,
        "parent_id": None,
        "user": None,
        "ts_ns": time.time_ns(),
        "stp": None,
    }


def _tables() -> Tables:
    tables = Tables()
    tables.apply(
        "reference.accounts",
        {
            "account": "BENCH",
            "member": "M1",
            "credit_line_cents": 10**15,
            "cut_loss_cents": -(10**15),
            "max_order_notional_cents": 10**15,
            "allow_short": False,
            "stp": "CANCEL_RESTING",
            "enabled": True,
            "ts_ns": 0,
        },
    )
    return tables


async def _route(
    orders: int, window: int, fsync: bool, group_commit: bool, root: Path
) -> dict[str, float]:
    market = Market([ListedSecurity(700, "TENCENT", 100, PRICE_E3)], LiquidityConfig(0, 0))
    resting = LOTS_PER_RESTING_ORDER * 100
    for _ in range(-(-orders * 100 // resting)):
        market.place(
            ts_ns=time.time_ns(),
            security=700,
            account="HKMM01",
            member="MM01",
            side=Side.SELL,
            qty=resting,
            price_e3=PRICE_E3,
        )
    firm = FirmConfig("SAMPAN", "SAMPANDC", throttle_per_s=0)
    # The simulator keeps its stores in memory: its own fsyncs are not the router's cost.
    gateway = Gateway(GatewayConfig((firm,)), market)
    await gateway.start()
    core = RouterCore(CoreConfig(), _tables())
    config = LinkConfig("127.0.0.1", gateway.order_port, heartbeat_interval_s=5, state_dir=root)
    link = FixLink(replace(config, fsync=fsync, group_commit=group_commit), date.today(), 1)
    stop = asyncio.Event()
    task = asyncio.create_task(link.run(stop))
    sent: dict[str, int] = {}
    latencies_ms: list[float] = []
    try:
        async with asyncio.timeout(LOGON_TIMEOUT_S):
            while not link.logged_on:
                await asyncio.sleep(0.01)
        started = time.perf_counter()
        i = 0
        while len(latencies_ms) < orders:
            while i < orders and len(sent) < window:
                sent[f"b{i}"] = time.perf_counter_ns()
                core.request(0, i, _command(i))
                for msg in core.take()[1]:
                    link.send(msg)
                i += 1
            async with asyncio.timeout(REPORT_TIMEOUT_S):
                await link.wake.wait()
            for seq, msg in link.drain():
                core.fix_message(seq, msg)
            now = time.perf_counter_ns()
            for out in core.take()[0]:
                if out.topic == "orders.events" and out.value["exec_type"] == "TRADE":
                    latencies_ms.append((now - sent.pop(out.value["cl_ord_id"])) / 1e6)
        elapsed_s = time.perf_counter() - started
    finally:
        stop.set()
        await asyncio.wait({task}, timeout=5.0)
        link.close()
        await gateway.close()
    return {
        "hkex_orders": orders,
        "hkex_orders_per_s": round(orders / elapsed_s),
        "hkex_roundtrip_ms_p50": round(_percentile(latencies_ms, 0.50), 3),
        "hkex_roundtrip_ms_p99": round(_percentile(latencies_ms, 0.99), 3),
    }


def risk_check_us(checks: int) -> dict[str, float]:
    tables = _tables()
    limits = tables.accounts["BENCH"]
    instrument = tables.instruments[700]
    balance = risk.Balance(10**12, 10**12, {700: 10**6})
    exposure = risk.Exposure(1_000_000, {700: 1_000})
    config = risk.RiskConfig()
    terms = [
        risk.OrderTerms("M1", Side.BUY if n % 2 else Side.SELL, 700, False, PRICE_E3, 100)
        for n in range(64)
    ]
    samples: list[float] = []
    for n in range(checks):
        t0 = time.perf_counter_ns()
        risk.check(terms[n % 64], limits, instrument, balance, exposure, None, config)
        samples.append((time.perf_counter_ns() - t0) / 1e3)
    return {
        "risk_check_us_p50": _percentile(samples, 0.50),
        "risk_check_us_p99": _percentile(samples, 0.99),
    }


def run_route_bench(
    settings: Settings,
    orders: int = 5_000,
    window: int = 100,
    risk_checks: int = 100_000,
    fsync: bool = True,
    group_commit: bool = True,
) -> dict[str, Any]:
    """The route benchmark's figures. `settings.state_dir` holds the scratch FIX stores."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.state_dir, prefix="bench-route-") as scratch:
        figures = asyncio.run(_route(orders, window, fsync, group_commit, Path(scratch)))
    figures.update(risk_check_us(risk_checks))
    return figures


def run(args: Any) -> dict[str, Any]:
    """Entry for `sampan bench route`: throughput with 100 orders in flight (group commit, then
    one fsync per message for the ratio), then the round trip of one order at a time (with 100
    in flight the round trip is mostly queueing)."""
    from sampan.config import settings

    current = settings()
    orders = args.records or 5000
    loaded = run_route_bench(current, orders=orders, window=100, fsync=True)
    each = run_route_bench(
        current, orders=orders // 5, window=100, risk_checks=1, group_commit=False
    )
    single = run_route_bench(current, orders=1000, window=1, fsync=True)
    return {
        "hkex_orders_per_s": loaded["hkex_orders_per_s"],
        "hkex_orders_per_s_fsync_each_message": each["hkex_orders_per_s"],
        "hkex_roundtrip_ms_p50_window_100": loaded["hkex_roundtrip_ms_p50"],
        "hkex_roundtrip_ms_p99_window_100": loaded["hkex_roundtrip_ms_p99"],
        "hkex_roundtrip_ms_p50": single["hkex_roundtrip_ms_p50"],
        "hkex_roundtrip_ms_p99": single["hkex_roundtrip_ms_p99"],
        "risk_check_us_p50": single["risk_check_us_p50"],
        "risk_check_us_p99": single["risk_check_us_p99"],
        "fix_store_fsync": "group commit",
    }
