"""`sampan demo script`: the whole venue on the local stack, a scripted session and its summary.

Starts every venue process under `sampan.tools.venue.Supervisor` (hkex-sim with OMD-C, omd-ingest,
matcher, router, ledger-sink, dropcopy, recon) against a fresh topic prefix and ledger schema,
arranges liquidity on the simulated HKEX through a second FIX firm, sends a scripted trading
session to `orders.requests` one order at a time (each with a bounded wait), and prints each
order's outcome, fills by venue, depth on both venues, balances, the ledger audit and the
reconciliation state. Every process it started is stopped on the way out, also on Ctrl-C.

Limits: each run leaves its `demo<id>` topics and ledger schema behind for inspection.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from typing import Any

from sampan import stack, topics_cli
from sampan.config import Settings, settings
from sampan.market.money import format_cents, format_notional_e3, format_price_e3
from sampan.tools.records import new_order, order_reports, publish_records, read_topic, wait_until

VENUE_WAIT_S = 20.0  # per step of the scripted session
PRICE_E3 = 512_500  # HK$512.500: one tick above 700's previous close (0.500 band)
LIQUIDITY_FIRM = "DEMOMM"

log = logging.getLogger(__name__)


DEMO_SEEDS_CENTS = (
    5_000_000_00,
    1_000_000_00,
    500_000_00,
    2_000_000_00,
)  # cash, credit, cut-loss, max order


def demo_seeds() -> tuple[Any, ...]:
    """ACC1..ACC4, one member each: HK$5m of cash, a HK$1m credit line, a HK$500k cut-loss
    level and a HK$2m fat-finger limit. ACC2 may sell short (the demo has no inventory)."""
    from sampan.tools.seed import AccountSeed

    cash, credit, cut_loss, max_order = DEMO_SEEDS_CENTS
    return tuple(
        AccountSeed(f"ACC{n}", f"M{n}", cash, credit, cut_loss, max_order, allow_short=n == 2)
        for n in range(1, 5)
    )


def demo_accounts() -> list[tuple[str, dict[str, Any]]]:
    from sampan.tools.seed import account_record

    now = time.time_ns()
    return [(seed.account, account_record(seed, now)) for seed in demo_seeds()]


def _avg(report: dict[str, Any]) -> str:
    if not report["cum_qty"]:
        return "-"
    # Shown to 3 decimals, truncated; the exact figure is cum_notional_e3 / cum_qty.
    return format_price_e3(report["cum_notional_e3"] // report["cum_qty"])


# Each step: (label, account, side, qty, price_e3, route, the final status to wait for).
SCRIPT: tuple[tuple[str, str, str, int, int, str, str], ...] = (
    ("internal rest", "ACC2", "SELL_SHORT", 500, 511_000, "INTERNAL", "NEW"),
    ("internal cross", "ACC3", "BUY", 200, 511_000, "INTERNAL", "FILLED"),
    ("internal bid", "ACC4", "BUY", 300, 510_500, "INTERNAL", "NEW"),
    ("SMART 1,000", "ACC1", "BUY", 1_000, PRICE_E3, "SMART", "FILLED"),
    ("HKEX", "ACC3", "BUY", 100, 513_000, "HKEX", "FILLED"),
    ("internal offer", "ACC2", "SELL_SHORT", 200, 513_000, "INTERNAL", "NEW"),
)


def arrange_hkex_book(firm: Any) -> None:
    """HKEX's best offer becomes two sells of 400 and 300 at HK$512.500 from another firm:
    it first takes the market maker's seeded offer at that price (an IOC buy matches only the
    best price), then rests its two sells. The maker does not requote (rate 0)."""
    from sampan.fix.messages import TimeInForce as FixTif
    from sampan.market.side import Side as FixSide

    firm.place("9001", FixSide.BUY, 3_000, PRICE_E3, FixTif.IOC)
    firm.place("9002", FixSide.SELL, 400, PRICE_E3, FixTif.DAY)
    firm.place("9003", FixSide.SELL, 300, PRICE_E3, FixTif.DAY)


def run_venue_demo(keep_logs: bool = False) -> int:
    from sampan.ledger_sink import db
    from sampan.tools.venue import HkexFirm, Supervisor, VenueOptions, VenuePorts, venue_specs

    started = time.monotonic()
    base = settings()
    if not os.environ.get("SAMPAN_KAFKA_BOOTSTRAP") and not stack.is_up(base):
        for line in stack.up(base):
            print(f"stack: {line}")
    run_id = f"demo{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "SAMPAN_TOPIC_PREFIX": f"{run_id}.", "SAMPAN_LEDGER_SCHEMA": run_id}
    os.environ.update(env)  # this process reads the same topics and schema as its children
    current = settings()
    result = topics_cli.apply(current)
    print(f"[{run_id}] topics under {current.topic_prefix!r}: {len(result.created)} created")
    db.migrate(current, run_id)
    publish_seed(current)
    publish_records(current, "reference.accounts", "Account", demo_accounts())
    from sampan.tools.seed import fund_seed

    posted, _ = fund_seed(current, demo_seeds())
    print(f"[{run_id}] reference data seeded; {posted} accounts funded; ledger schema {run_id}")
    state_dir = current.state_dir / "demo" / run_id
    ports = VenuePorts.free()
    options = VenueOptions(
        state_dir, run_id, extra_firms=(f"{LIQUIDITY_FIRM}:{LIQUIDITY_FIRM}DC:0",)
    )
    specs = venue_specs(ports, options)
    with Supervisor(state_dir / "logs", env) as venue:
        print("starting hkex-sim")
        venue.start(specs[:1], progress=True)
        firm = HkexFirm(ports.ocg, LIQUIDITY_FIRM)
        try:
            arrange_hkex_book(firm)
        finally:
            firm.close()
        print(
            f"HKEX book arranged: {LIQUIDITY_FIRM} offers 400 + 300 at {format_price_e3(PRICE_E3)}"
        )
        print("starting the venue: " + ", ".join(s.name for s in specs[1:]))
        venue.start(specs[1:], progress=True)
        orders = run_script(current, run_id, venue.check)
        summary = wait_for_settlement(current, run_id, venue.check)
        print_summary(current, orders, summary)
        # Clients first, the simulator last, so no client logs a lost session while stopping.
        statuses = venue.stop([s.name for s in specs[1:]])
        statuses.update(venue.stop())
    bad = {name: rc for name, rc in statuses.items() if rc != 0}
    print(f"stopped {len(statuses)} processes" + (f"; non-zero exits {bad}" if bad else ""))
    if bad:
        print(f"a process did not stop cleanly: see the logs in {state_dir / 'logs'}")
    if keep_logs:
        print(f"logs in {state_dir / 'logs'}")
    print(f"demo finished in {time.monotonic() - started:.1f} s")
    return 0 if summary["ok"] and not bad else 1


def publish_seed(current: Settings) -> None:
    from sampan.tools.seed import publish_seed as seed

    instruments, accounts = seed(current)
    print(f"seeded {instruments} instruments and {accounts} accounts")


def run_script(current: Settings, run_id: str, check: Any) -> list[tuple[str, str]]:
    orders: list[tuple[str, str]] = []
    for n, (label, account, side, qty, price_e3, route, final) in enumerate(SCRIPT, 1):
        cl_ord_id = f"{run_id}-{n}"
        command = new_order(cl_ord_id, account, side, qty, price_e3, route)
        publish_records(current, "orders.requests", "OrderCommand", [(account, command)])
        print(f"sent {label}: {account} {side} {qty} @ {format_price_e3(price_e3)} {route}")

        def reached(cl: str = cl_ord_id, want: str = final) -> bool:
            return any(r["ord_status"] in (want, "REJECTED") for r in order_reports(current, cl))

        wait_until(f"{label} ({cl_ord_id}) to be {final}", reached, VENUE_WAIT_S, check)
        orders.append((label, cl_ord_id))
    return orders


def wait_for_settlement(current: Settings, run_id: str, check: Any) -> dict[str, Any]:
    """Wait (bounded) until the ledger posted every fill and recon matched every HKEX one."""
    from sampan.dropcopy.recon_runner import report
    from sampan.ledger_sink import db
    from sampan.ledger_sink.audit import verify
    from sampan.market.calendar import trading_day_iso

    fills = read_topic(current, "fills", "Fill")
    hkex = sum(1 for f in fills if f["venue"] == "HKEX")

    def posted() -> int:
        with db.connect(current, run_id) as conn:
            row = conn.execute("SELECT count(*) FROM fills").fetchone()
        return int(row[0]) if row and int(row[0]) >= len(fills) else 0

    print(f"waiting for the ledger to post {len(fills)} fills and recon to match {hkex}")
    wait_until(f"the ledger to post {len(fills)} fills", posted, VENUE_WAIT_S, check)
    day = trading_day_iso(time.time_ns())

    def reconciled() -> Any:
        r = report(current, day, 2.0)
        return r if r.summary.matched >= hkex else None

    recon = wait_until(f"recon to match {hkex} HKEX executions", reconciled, VENUE_WAIT_S, check)
    problems = verify(current, run_id, progress=lambda _line: None)
    open_breaks = recon.lines()[1:]
    return {
        "fills": fills,
        "problems": problems,
        "recon": recon.lines(),
        "ok": not problems and not open_breaks,
    }


def _depth_lines(current: Settings) -> list[str]:
    latest: dict[str, dict[str, Any]] = {}
    for d in read_topic(current, "md.depth", "DepthSnapshot"):
        if d["security"] == 700:
            latest[d["venue"]] = d  # compacted by venue+security: the last one is the book
    lines: list[str] = []
    for venue in ("INTERNAL", "HKEX"):
        book = latest.get(venue)
        lines.append(f"  700 on {venue}:" + ("" if book else " (no depth published)"))
        if book is None:
            continue
        bids, asks = book["bids"], book["asks"]
        for i in range(max(len(bids), len(asks), 1)):
            bid = (
                f"{bids[i]['qty']:>6} @ {format_price_e3(bids[i]['price_e3'])}"
                if i < len(bids)
                else ""
            )
            ask = (
                f"{format_price_e3(asks[i]['price_e3'])} x {asks[i]['qty']:<6}"
                if i < len(asks)
                else ""
            )
            lines.append(f"    {bid:>20} | {ask}")
    return lines


def print_summary(
    current: Settings, orders: list[tuple[str, str]], settled: dict[str, Any]
) -> None:
    fills: list[dict[str, Any]] = settled["fills"]
    print("\n== orders")
    for label, cl_ord_id in orders:
        reports = order_reports(current, cl_ord_id)
        last = reports[-1]
        split: dict[str, int] = {}
        for r in reports:
            if r["exec_type"] == "TRADE":
                split[r["venue"]] = split.get(r["venue"], 0) + r["last_qty"]
        venues = ", ".join(f"{v} {q}" for v, q in sorted(split.items())) or "-"
        print(
            f"  {label:<15} {last['account']} {last['side']:<10} {last['ord_status']:<16} "
            f"{last['cum_qty']:>5}/{last['order_qty']:<5} avg {_avg(last):>8}  venues: {venues}"
        )
    print("\n== fills by venue")
    for venue in ("INTERNAL", "HKEX"):
        mine = [f for f in fills if f["venue"] == venue]
        shares = sum(f["qty"] for f in mine)
        notional_e3 = sum(f["price_e3"] * f["qty"] for f in mine)
        dollars = format_notional_e3(notional_e3)
        print(f"  {venue:<8} {len(mine)} fills, {shares:,} shares, HK${dollars}")
        for f in mine:
            print(
                f"    {f['exec_id']:<24} {f['qty']:>5} @ {format_price_e3(f['price_e3'])} "
                f"{f['buy_account']} <- {f['sell_account']}"
            )
    print("\n== top-5 depth")
    for line in _depth_lines(current):
        print(line)
    print("\n== balances (ledger.balances, HK$)")
    latest: dict[str, dict[str, Any]] = {}
    for snap in read_topic(current, "ledger.balances", "AccountSnapshot"):
        latest[snap["account"]] = snap
    for name in ("ACC1", "ACC2", "ACC3", "ACC4"):
        snap = latest.get(name)
        if snap is None:
            print(f"  {name}: no fills yet, so no snapshot")
            continue
        held = ", ".join(f"{p['security']}: {p['qty']}" for p in snap["positions"]) or "none"
        print(
            f"  {name}: cash {format_cents(snap['cash_cents'])}"
            f"  equity {format_cents(snap['equity_cents'])}"
            f"  credit used {format_cents(snap['credit_line_used_cents'])}  shares {held}"
        )
    print("\n== ledger verify")
    for problem in settled["problems"]:
        print(f"  DIFFERENCE {problem}")
    print("  balanced" if not settled["problems"] else f"  {len(settled['problems'])} problem(s)")
    print("\n== reconciliation")
    for line in settled["recon"]:
        print(f"  {line}")
    print()
