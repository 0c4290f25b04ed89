"""The case study's hardest case with every real process: a SMART buy of 1,000 shares of 700
fills 300 on the internal book and 700 on HKEX in two executions; the parent report, the
ledger (rows, charges, `ledger verify`), the drop copy and reconciliation all agree. Then the
simulator loses one execution report on the order session (not on drop copy): recon opens a
MISSING_FILL break, the router's session recovery resends the report, and the break heals.

The accounts are funded with opening deposits in the ledger and carry real credit lines and
cut-loss levels, which the router checks against ledger.balances.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sampan.config import Settings
from sampan.dropcopy.records import EXEC_TYPE_TRADE
from sampan.fix.messages import Side as FixSide
from sampan.fix.messages import TimeInForce as FixTif
from sampan.hkex_sim.ocg_admin import send_admin
from sampan.ledger_sink import db, rules
from sampan.tools.records import (
    new_order,
    order_reports,
    publish_records,
    read_topic,
    wait_until,
)
from sampan.tools.seed import AccountSeed, account_record, fund_seed
from sampan.tools.venue import HkexFirm, Supervisor, VenueOptions, VenuePorts, venue_specs

pytestmark = pytest.mark.integration

INTERNAL_E3 = 512_000  # the internal sell's price (HK$512.000)
HKEX_E3 = 512_500  # the SMART limit and HKEX's arranged offer (one tick above)
FIRM = "MAKER2"
WAIT_S = 30.0


@pytest.fixture
def schema(env_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"ledger_v{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("SAMPAN_LEDGER_SCHEMA", name)
    db.migrate(env_settings, name)
    yield name
    db.drop_schema(env_settings, name)


def sampan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sampan.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )


# HK$5m of cash, a HK$1m credit line, a HK$500k cut-loss level, a HK$2m fat-finger limit.
SEEDS = (
    AccountSeed("BUYER1", "M1", 5_000_000_00, 1_000_000_00, 500_000_00, 2_000_000_00),
    AccountSeed(
        "SELLER2", "M2", 5_000_000_00, 1_000_000_00, 500_000_00, 2_000_000_00, allow_short=True
    ),
)


def accounts() -> list[tuple[str, dict[str, Any]]]:
    now = time.time_ns()
    return [(s.account, account_record(s, now)) for s in SEEDS]


def ledger_rows(settings: Settings, schema: str) -> tuple[list[tuple[Any, ...]], set[Any]]:
    with db.connect(settings, schema) as conn:
        fills = conn.execute("SELECT fill_ref, price_e3, qty FROM fills ORDER BY 1").fetchall()
        # The ledger's readable journal, without the opening deposits (ids `CASH:<ref>:...`).
        transfers = conn.execute(
            "SELECT id, debit_account, credit_account, asset, amount, reason FROM journal"
            " WHERE id NOT LIKE 'CASH:%'"
        ).fetchall()
    return [tuple(f) for f in fills], {tuple(t) for t in transfers}


def expected_transfers(fills: list[dict[str, Any]]) -> set[Any]:
    out: set[Any] = set()
    for f in fills:
        fill = rules.Fill(
            f["exec_id"],
            f["venue"],
            f["security"],
            f["price_e3"],
            f["qty"],
            f["buy_account"],
            f["buy_member"],
            f["sell_account"],
            f["sell_member"],
            f["ts_ns"],
        )
        for t in rules.post_fill(fill, rules.default_schedule()):
            tid = rules.transfer_id(fill.ref, t)
            out.add((tid, t.debit_account, t.credit_account, t.asset, t.amount, t.reason.value))
    return out


def latest_breaks(settings: Settings) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for b in read_topic(settings, "recon.breaks", "ReconBreak"):
        latest[b["exec_id"]] = b  # compacted topic, keyed by exec id: the last state wins
    return latest


def test_smart_split_ledger_dropcopy_recon_and_a_healed_break(
    env_settings: Settings, schema: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    s = env_settings
    publish_records(s, "reference.accounts", "Account", accounts())
    assert fund_seed(s, SEEDS) == (2, 0)
    ports = VenuePorts.free()
    options = VenueOptions(
        tmp_path / "state",
        uuid.uuid4().hex[:8],
        extra_firms=(f"{FIRM}:{FIRM}DC:0",),
        # The gateway heartbeats the router every 5 s when idle, so a lost report is noticed
        # (and resent) about 5 s after it; recon's 1 s grace flags it as a break first.
        router_heartbeat_s=5,
        recon_grace_s=1.0,
        with_omd=False,
    )
    specs = venue_specs(ports, options)
    with Supervisor(tmp_path / "logs", dict(os.environ)) as venue:
        venue.start(specs[:1])
        firm = HkexFirm(ports.ocg, FIRM)
        try:
            # HKEX's book: the seeded maker (rate 0, so it never requotes) offers once at
            # 512.500; MAKER2 takes that offer (an IOC matches only the best price) and rests
            # 400 and 300 there, so the SMART remainder fills in exactly two executions.
            firm.place("9001", FixSide.BUY, 3_000, HKEX_E3, FixTif.IOC)
            firm.place("9002", FixSide.SELL, 400, HKEX_E3, FixTif.DAY)
            firm.place("9003", FixSide.SELL, 300, HKEX_E3, FixTif.DAY)
            venue.start(specs[1:])
            check = venue.check

            rest = new_order("rest-1", "SELLER2", "SELL_SHORT", 300, INTERNAL_E3, "INTERNAL")
            rest["member"] = "M2"
            publish_records(s, "orders.requests", "OrderCommand", [("SELLER2", rest)])
            wait_until(
                "the resting internal sell",
                lambda: any(r["ord_status"] == "NEW" for r in order_reports(s, "rest-1")),
                WAIT_S,
                check,
            )
            smart = new_order("smart-1", "BUYER1", "BUY", 1_000, HKEX_E3, "SMART")
            publish_records(s, "orders.requests", "OrderCommand", [("BUYER1", smart)])

            def parent_filled() -> list[dict[str, Any]]:
                return [r for r in order_reports(s, "smart-1") if r["ord_status"] == "FILLED"]

            final = wait_until("the SMART parent FILLED", parent_filled, WAIT_S, check)[0]
            fills = read_topic(s, "fills", "Fill")
            assert len(fills) == 3, fills
            assert Counter(f["venue"] for f in fills) == {"INTERNAL": 1, "HKEX": 2}
            assert sorted(f["qty"] for f in fills) == [300, 300, 400]
            assert final["order_id"].startswith("P")
            assert final["cum_qty"] == 1_000 and final["leaves_qty"] == 0
            assert final["cum_notional_e3"] == sum(f["price_e3"] * f["qty"] for f in fills)
            assert final["cum_notional_e3"] == 300 * INTERNAL_E3 + 700 * HKEX_E3
            assert final["cum_notional_e3"] // final["cum_qty"] == 512_350  # exact: no remainder
            assert final["cum_notional_e3"] % final["cum_qty"] == 0
            hkex = sorted(f["exec_id"] for f in fills if f["venue"] == "HKEX")

            # The ledger: each fill once, with exactly the transfers the posting rules give.
            def ledger_has(n: int) -> Any:
                rows = ledger_rows(s, schema)
                return rows if len(rows[0]) >= n else None

            ledger_fills, transfers = wait_until("3 ledger fills", lambda: ledger_has(3), WAIT_S)
            assert sorted(r[0] for r in ledger_fills) == sorted(
                rules.fill_ref(f["venue"], f["exec_id"], f["ts_ns"]) for f in fills
            )
            assert transfers == expected_transfers(fills)
            verify = sampan("ledger", "verify")
            assert verify.returncode == 0 and "ledger verified: balanced" in verify.stdout

            # Drop copy carries both HKEX executions; recon matches them with no open break.
            def dropcopy_trades() -> list[str]:
                rows = read_topic(s, "hkex.dropcopy", "DropCopyExecution")
                trades = sorted(r["exec_id"] for r in rows if r["exec_type"] == EXEC_TYPE_TRADE)
                return trades if len(trades) >= 2 else []

            assert wait_until("2 drop-copy trades", dropcopy_trades, WAIT_S, check) == hkex

            def recon_clean() -> str | None:
                out = sampan("recon", "report", "--grace-s", "1").stdout
                return out if "matched 2, pending 0, open breaks 0" in out else None

            wait_until("recon report: 2 matched, 0 open", recon_clean, WAIT_S, check)
            assert not [b for b in latest_breaks(s).values() if b["status"] == "OPEN"]

            # A lost execution report: BUYER1 bids alone at 512.500 (HKEX's offer there is
            # gone); the gateway drops the next report on the order session, MAKER2 sells
            # into the bid, and the trade reaches only the drop copy until the router's next
            # heartbeat reveals the gap and its ResendRequest recovers it.
            bid = new_order("bid-1", "BUYER1", "BUY", 100, HKEX_E3, "HKEX")
            publish_records(s, "orders.requests", "OrderCommand", [("BUYER1", bid)])
            wait_until(
                "the HKEX bid acknowledged",
                lambda: any(r["ord_status"] == "NEW" for r in order_reports(s, "bid-1")),
                WAIT_S,
                check,
            )
            import asyncio

            reply = asyncio.run(send_admin("127.0.0.1", ports.admin, "LOSE SAMPAN 1"))
            assert reply == ["OK lose SAMPAN 1"]
            firm.place("9004", FixSide.SELL, 100, HKEX_E3, FixTif.IOC)

            def opened() -> list[dict[str, Any]]:
                return [
                    b
                    for b in latest_breaks(s).values()
                    if b["status"] == "OPEN" and b["kind"] == "MISSING_FILL"
                ]

            (missing,) = wait_until("a MISSING_FILL break", opened, WAIT_S, check)

            def healed() -> bool:
                b = latest_breaks(s)
                return b[missing["exec_id"]]["status"] == "HEALED" and not any(
                    x["status"] == "OPEN" for x in b.values()
                )

            wait_until("the break HEALED", healed, WAIT_S, check)
            fills = read_topic(s, "fills", "Fill")
            assert len(fills) == 4 and len({f["exec_id"] for f in fills}) == 4
            assert missing["exec_id"] in {f["exec_id"] for f in fills}
            wait_until("4 ledger fills", lambda: ledger_has(4), WAIT_S)
            ledger_fills, transfers = ledger_rows(s, schema)
            assert len(ledger_fills) == 4 and transfers == expected_transfers(fills)
            report = sampan("recon", "report", "--grace-s", "1").stdout
            assert "matched 3, pending 0, open breaks 0 (none), healed 1" in report, report
            assert sampan("ledger", "verify").returncode == 0
        finally:
            firm.close()
        statuses = venue.stop([spec.name for spec in specs[1:]])
        statuses.update(venue.stop())
    # Every process stops cleanly on SIGTERM.
    assert {n: rc for n, rc in statuses.items() if rc != 0} == {}
    assert time.monotonic() - started < 120
