"""Movers and internal statistics against the fills, on the real stack: crossing orders go
through the real matcher (so `fills` and `md.trades` are the matcher's own), the real analytics
app is SIGKILLed and restarted half-way, and what a reader of md.stats and md.movers sees equals
a naive recomputation from the `fills` topic read back."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from venue_procs import Procs, order, procs_fixture, to_matcher, wait_for

from sampan.config import Settings
from sampan.market.listings import listings
from sampan.tools.records import publish_records, read_topic

pytestmark = pytest.mark.integration

# Security: its tick in HK$0.001 near the previous close (HKEX spread table 01).
TICKS = {5: 50, 11: 100, 388: 200, 700: 500, 939: 10, 1299: 50}
CROSSES_PER_HALF = 24
SEED = 14


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    yield from procs_fixture(tmp_path)


def instruments(s: Settings) -> dict[int, tuple[int, int]]:
    """Publish the listings as reference.instruments; (previous close, board lot) per security."""
    found = {x.security: x for x in listings() if x.security in TICKS}
    rows = [
        (
            str(x.security),
            {
                "security": x.security,
                "name": x.name,
                "currency": "HKD",
                "board_lot": x.board_lot,
                "spread_table": "A",
                "prev_close_e3": x.prev_close_e3,
                "enabled": True,
                "ts_ns": time.time_ns(),
            },
        )
        for x in found.values()
    ]
    publish_records(s, "reference.instruments", "Instrument", rows)
    return {sec: (x.prev_close_e3, x.board_lot) for sec, x in found.items()}


def crosses(
    rnd: random.Random, half: int, reference: dict[int, tuple[int, int]]
) -> list[dict[str, Any]]:
    """Resting sells and buys that take them, now and then sweeping two price levels."""
    commands = []
    for n in range(CROSSES_PER_HALF):
        security = rnd.choice(sorted(TICKS))
        prev, lot = reference[security]
        tick = TICKS[security]
        price = prev - prev % tick + tick * rnd.randint(-12, 12)
        lots = rnd.randint(1, 4)
        tag = f"h{half}n{n}"
        commands.append(order("A1", "M1", security, "SELL", lots * lot, price, f"{tag}s1"))
        qty, limit = lots * lot, price
        if rnd.random() < 0.3:
            commands.append(order("A3", "M3", security, "SELL", lot, price + tick, f"{tag}s2"))
            qty, limit = qty + lot, price + tick
        commands.append(order("B2", "M2", security, "BUY", qty, limit, f"{tag}b"))
    return commands


def exec_number(fill: dict[str, Any]) -> int:
    return int(fill["exec_id"].lstrip("X"))


def naive(fills: list[dict[str, Any]]) -> dict[int, dict[str, int]]:
    out: dict[int, dict[str, int]] = {}
    for f in sorted(fills, key=lambda f: (f["ts_ns"], exec_number(f))):
        price, qty = f["price_e3"], f["qty"]
        s = out.setdefault(f["security"], {"open_e3": price, "high_e3": price, "low_e3": price})
        s["last_e3"] = price
        s["high_e3"] = max(s["high_e3"], price)
        s["low_e3"] = min(s["low_e3"], price)
        s["volume"] = s.get("volume", 0) + qty
        s["turnover_e3"] = s.get("turnover_e3", 0) + price * qty
    return out


def change_bp(last: int, prev: int) -> int:
    """(last - prev) / prev in basis points, rounded half away from zero, written apart."""
    sign = 1 if last >= prev else -1
    whole, rest = divmod(abs(last - prev) * 10_000, prev)
    return sign * (whole + (1 if 2 * rest >= prev else 0))


def test_stats_and_movers_equal_a_recomputation_from_fills(
    env_settings: Settings, procs: Procs
) -> None:
    s = env_settings
    reference = instruments(s)
    rnd = random.Random(SEED)
    matcher = procs.matcher()
    app = procs.analytics()
    first = crosses(rnd, 0, reference)
    to_matcher(s, *first)
    wait_for(
        "the first half's fills and some md.stats",
        lambda: (
            len(read_topic(s, "fills", "Fill")) >= CROSSES_PER_HALF
            and read_topic(s, "md.stats", "SecurityStats")
        ),
        procs.check,
    )
    app.kill()
    to_matcher(s, *crosses(rnd, 1, reference))
    app = procs.analytics()

    def settled() -> bool:
        # Every buy of both halves has traded in full: no more fills to come.
        reports = read_topic(s, "orders.events", "ExecutionReport")
        filled = {r["cl_ord_id"] for r in reports if r["ord_status"] == "FILLED"}
        return all(f"h{h}n{n}b" in filled for h in (0, 1) for n in range(CROSSES_PER_HALF))

    wait_for("every buy filled", settled, procs.check)
    fills = [f for f in read_topic(s, "fills", "Fill") if f["venue"] == "INTERNAL"]
    expected = naive(fills)
    assert len(expected) >= 4, expected
    seen: dict[int, Any] = {}

    def stats_match() -> bool:
        seen.clear()
        for r in read_topic(s, "md.stats", "SecurityStats"):
            if r["venue"] == "INTERNAL":
                seen[r["security"]] = {k: r[k] for k in expected[r["security"]]}
        return seen == expected

    try:
        wait_for("md.stats to equal the recomputation from fills", stats_match, procs.check)
    except AssertionError:
        raise AssertionError(f"expected {expected}\nseen {seen}") from None

    changes = {sec: change_bp(v["last_e3"], reference[sec][0]) for sec, v in expected.items()}
    top = [sec for sec, c in sorted(changes.items(), key=lambda i: (-i[1], i[0])) if c > 0][:10]
    bottom = [sec for sec, c in sorted(changes.items(), key=lambda i: (i[1], i[0])) if c < 0][:10]
    board: dict[str, Any] = {}

    def movers_match() -> bool:
        board.clear()
        for r in read_topic(s, "md.movers", "Movers"):
            board[r["venue"]] = r
        record = board.get("INTERNAL")
        if record is None:
            return False
        got_top = [(m["security"], m["change_bp"], m["last_e3"]) for m in record["top"]]
        got_bottom = [(m["security"], m["change_bp"], m["last_e3"]) for m in record["bottom"]]
        return got_top == [
            (sec, changes[sec], expected[sec]["last_e3"]) for sec in top
        ] and got_bottom == [(sec, changes[sec], expected[sec]["last_e3"]) for sec in bottom]

    try:
        wait_for("md.movers to rank as the recomputation from fills", movers_match, procs.check)
    except AssertionError:
        raise AssertionError(f"changes {changes}\nboard {board.get('INTERNAL')}") from None
    assert app.stop() == 0
    assert matcher.stop() == 0
    for proc in procs.started:
        assert "Traceback" not in proc.output(), proc.output()[-4000:]
