"""Live risk on the whole real venue: a price drop driven through the simulated HKEX (trades on
its book, out over OMD-C, through omd-ingest onto md.trades) moves an account that holds the
stock past its warning level (a WARNING alert), then past its cut-loss level (a BREACH alert,
the account blocked on risk.controls, its open buys on both venues cancelled, its resting sell
left alone, its next buy rejected CUT_LOSS_BREACHED, a sell of held shares accepted); a risk
officer's `sampan risk enable` lets it buy again.

LONG1 holds HK$700,000 in cash and buys 1,000 shares of 700 at HK$512 on the internal book.
Its cut-loss level is then set HK$40,000 below its starting equity (HK$40 a share), so the
warning level is HK$32,000 below it: HKEX at HK$476 warns, at HK$470 breaches.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sampan.config import Settings
from sampan.fix.messages import Side as FixSide
from sampan.fix.messages import TimeInForce as FixTif
from sampan.ledger_sink import db
from sampan.market.calendar import trading_day_iso
from sampan.tools.records import new_order, publish_records, read_topic, wait_until
from sampan.tools.seed import AccountSeed, account_record, fund_seed
from sampan.tools.venue import HkexFirm, Supervisor, VenueOptions, VenuePorts, venue_specs

pytestmark = pytest.mark.integration

FIRM = "MAKER2"
WAIT_S = 45.0
READY_S = 120.0
STOP_S = 60.0
BUY_E3 = 512_000
WARN_E3 = 476_000
BREACH_E3 = 470_000
SHARES = 1_000
# The seeded HKEX maker bids 8 levels down from 512.000, one tick (0.500) apart.
MAKER_BIDS_E3 = [512_000 - 500 * k for k in range(8)]

CASH_CENTS = 700_000_00
LONG = AccountSeed("LONG1", "M1", CASH_CENTS, 0, 0, 2_000_000_00)
SHORT = AccountSeed("SHORT2", "M2", 5_000_000_00, 1_000_000_00, 0, 2_000_000_00, allow_short=True)


@pytest.fixture
def schema(env_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"ledger_v{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("SAMPAN_LEDGER_SCHEMA", name)
    db.migrate(env_settings, name)
    yield name
    db.drop_schema(env_settings, name)


def order(
    s: Settings,
    cl: str,
    account: AccountSeed,
    side: str,
    price_e3: int,
    route: str = "INTERNAL",
    qty: int = 100,
) -> None:
    command = new_order(cl, account.account, side, qty, price_e3, route)
    command["member"] = account.member
    publish_records(s, "orders.requests", "OrderCommand", [(account.account, command)])


def statuses(s: Settings) -> dict[str, list[tuple[str, str | None]]]:
    """Per ClOrdID of LONG1's orders: (status, reject reason) of every report, in order (a
    cancel's report is filed under the order it cancelled)."""
    out: dict[str, list[tuple[str, str | None]]] = {}
    for e in read_topic(s, "orders.events", "ExecutionReport"):
        if e["account"] != LONG.account:
            continue
        cl = (
            e["orig_cl_ord_id"]
            if e["exec_type"] == "CANCELED" and e["orig_cl_ord_id"]
            else e["cl_ord_id"]
        )
        out.setdefault(cl, []).append((e["ord_status"], e["reject_reason"]))
    return out


def last_status(s: Settings, cl: str) -> str | None:
    reports = statuses(s).get(cl)
    return reports[-1][0] if reports else None


def mark_of(s: Settings) -> dict[str, Any] | None:
    marks = [m for m in read_topic(s, "risk.marks", "AccountMark") if m["account"] == LONG.account]
    return marks[-1] if marks else None


def alerts(s: Settings) -> list[dict[str, Any]]:
    return [a for a in read_topic(s, "risk.alerts", "RiskAlert") if a["account"] == LONG.account]


def hkex_trade(firm: HkexFirm, n: int, price_e3: int) -> None:
    """One HKEX trade at `price_e3`: the firm rests a bid and sells into it (HKEX has no
    self-trade prevention)."""
    firm.place(f"{n}1", FixSide.BUY, 100, price_e3, FixTif.DAY)
    firm.place(f"{n}2", FixSide.SELL, 100, price_e3, FixTif.IOC)


def test_a_price_drop_on_hkex_warns_breaches_blocks_and_cancels(
    env_settings: Settings, schema: str, tmp_path: Path
) -> None:
    s = env_settings
    day = trading_day_iso(time.time_ns())
    now = time.time_ns()
    publish_records(
        s,
        "reference.accounts",
        "Account",
        [(a.account, account_record(a, now)) for a in (LONG, SHORT)],
    )
    assert fund_seed(s, (LONG, SHORT)) == (2, 0)
    ports = VenuePorts.free()
    options = VenueOptions(
        tmp_path / "state", uuid.uuid4().hex[:8], extra_firms=(f"{FIRM}:{FIRM}DC:0",)
    )
    # A loaded two-core machine may need longer than the defaults to start nine processes.
    specs = [replace(spec, ready_timeout_s=READY_S) for spec in venue_specs(ports, options)]
    # A loaded machine may need long to stop nine processes; the stop stays bounded.
    with Supervisor(tmp_path / "logs", dict(os.environ), stop_timeout_s=STOP_S) as venue:
        venue.start(specs[:1])
        venue.start(specs[1:])
        check = venue.check
        firm = HkexFirm(ports.ocg, FIRM)
        try:
            # LONG1 buys 1,000 shares of 700 from SHORT2 on the internal book at 512.000.
            order(s, "rest-1", SHORT, "SELL_SHORT", BUY_E3, qty=SHARES)
            wait_until(
                "SHORT2's resting sell",
                lambda: any(
                    e["cl_ord_id"] == "rest-1" and e["ord_status"] == "NEW"
                    for e in read_topic(s, "orders.events", "ExecutionReport")
                ),
                WAIT_S,
                check,
            )
            order(s, "buy-1", LONG, "BUY", BUY_E3, qty=SHARES)
            wait_until(
                "LONG1's buy FILLED", lambda: last_status(s, "buy-1") == "FILLED", WAIT_S, check
            )

            def holding() -> dict[str, Any] | None:
                mark = mark_of(s)
                return (
                    mark if mark and mark["holdings_value_cents"] == SHARES * BUY_E3 // 10 else None
                )

            held = wait_until("LONG1 marked with its 1,000 shares", holding, WAIT_S, check)
            start = held["start_equity_cents"]
            assert CASH_CENTS - 1_000_00 <= start <= CASH_CENTS, held  # less at most the charges
            cut_loss = start - 40_000_00
            limits = account_record(LONG, time.time_ns())
            limits["cut_loss_cents"] = cut_loss
            publish_records(s, "reference.accounts", "Account", [(LONG.account, limits)])
            wait_until(
                "the new cut-loss level marked",
                lambda: (m := mark_of(s)) and m["cut_loss_equity_cents"] == cut_loss,
                WAIT_S,
                check,
            )

            # HKEX falls: the seeded maker's bids are taken, then trades at 476.000.
            for k, bid in enumerate(MAKER_BIDS_E3):
                firm.place(f"90{k}", FixSide.SELL, 5_000, bid, FixTif.IOC)
            hkex_trade(firm, 81, WARN_E3)

            def warned() -> list[dict[str, Any]]:
                return [a for a in alerts(s) if a["kind"] == "WARNING"]

            (warning,) = wait_until("a WARNING alert for LONG1", warned, WAIT_S, check)
            assert warning["alert_id"] == f"LONG1:{day}:WARNING:1"
            assert warning["cut_loss_equity_cents"] < warning["equity_cents"]
            assert warning["equity_cents"] < warning["warning_equity_cents"]
            assert warning["warning_equity_cents"] == start - 32_000_00
            mark = mark_of(s)
            assert mark is not None and mark["level"] == "WARNING" and not mark["blocked"]
            assert mark["holdings_value_cents"] == SHARES * WARN_E3 // 10
            assert mark["equity_cents"] == mark["cash_cents"] + mark["holdings_value_cents"]
            assert mark["cut_loss_distance_cents"] == mark["equity_cents"] - cut_loss

            # LONG1 bids on both venues and offers part of its shares.
            order(s, "bid-int", LONG, "BUY", 466_000)
            order(s, "bid-hkex", LONG, "BUY", 466_000, "HKEX")
            order(s, "offer", LONG, "SELL", 520_000)
            for cl in ("bid-int", "bid-hkex", "offer"):
                wait_until(f"{cl} open", lambda cl=cl: last_status(s, cl) == "NEW", WAIT_S, check)

            hkex_trade(firm, 82, BREACH_E3)

            def breached() -> list[dict[str, Any]]:
                return [a for a in alerts(s) if a["kind"] == "BREACH"]

            (breach,) = wait_until("a BREACH alert for LONG1", breached, WAIT_S, check)
            assert breach["alert_id"] == f"LONG1:{day}:BREACH:1"
            assert breach["equity_cents"] < cut_loss
            wait_until(
                "the open buys cancelled",
                lambda: (
                    last_status(s, "bid-int") == "CANCELED"
                    and last_status(s, "bid-hkex") == "CANCELED"
                ),
                WAIT_S,
                check,
            )
            controls = read_topic(s, "risk.controls", "RiskControl")
            assert [(c["account"], c["blocked"], c["alert_id"]) for c in controls] == [
                ("LONG1", True, breach["alert_id"])
            ]
            mark = mark_of(s)
            assert mark is not None and mark["level"] == "BREACHED" and mark["blocked"]
            assert mark["holdings_value_cents"] == SHARES * BREACH_E3 // 10

            order(s, "bid-after", LONG, "BUY", BREACH_E3)
            order(s, "sell-after", LONG, "SELL", BREACH_E3)
            wait_until("the next buy answered", lambda: last_status(s, "bid-after"), WAIT_S, check)
            wait_until("the sell answered", lambda: last_status(s, "sell-after"), WAIT_S, check)
            seen = statuses(s)
            assert seen["bid-after"] == [("REJECTED", "CUT_LOSS_BREACHED")]
            assert seen["sell-after"][0] == ("NEW", None)
            assert seen["offer"] == [("NEW", None)]  # the reducing sell stayed

            # A risk officer re-enables LONG1: it may buy again, and stays enabled while its
            # equity stays where it was (a block needs a new breach).
            enabled = subprocess.run(
                [sys.executable, "-m", "sampan.cli", "risk", "enable", "LONG1", "--user", "risk"],
                capture_output=True,
                text=True,
                timeout=60,
                env=dict(os.environ),
            )
            assert enabled.returncode == 0, enabled.stderr
            wait_until(
                "LONG1 marked re-enabled",
                lambda: (m := mark_of(s)) and not m["blocked"],
                WAIT_S,
                check,
            )
            order(s, "bid-enabled", LONG, "BUY", 465_000)
            wait_until(
                "the buy after the re-enable", lambda: last_status(s, "bid-enabled"), WAIT_S, check
            )
            assert statuses(s)["bid-enabled"][0] == ("NEW", None)
            assert len(breached()) == 1 and len(warned()) == 1
        finally:
            firm.close()
        stopped = venue.stop()
    assert {n: rc for n, rc in stopped.items() if rc != 0} == {}
