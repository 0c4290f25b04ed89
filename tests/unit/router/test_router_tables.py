"""Settlement of unsettled fills is tied to the ledger's input offsets, not to clocks: buying
power counts every fill exactly once, across ledger and router restarts."""

from __future__ import annotations

from typing import Any

from sampan.router.risk import RiskConfig, hold_cents
from sampan.router.tables import PENDING_MAX_NS, SeenFill, Tables

T0 = 1_764_000_000_000_000_000
PX, QTY, SEC = 500_000, 200, 700  # HK$500 x 200 = HK$100,000 a fill
COST = hold_cents(PX, QTY, RiskConfig())


def fill(n: int, buyer: str = "A", seller: str = "B") -> dict[str, Any]:
    return {
        "exec_id": f"X{n}",
        "venue": "INTERNAL",
        "security": SEC,
        "price_e3": PX,
        "qty": QTY,
        "buy_account": buyer,
        "buy_member": "M1",
        "buy_order_id": f"B{n}",
        "sell_account": seller,
        "sell_member": "M2",
        "sell_order_id": f"S{n}",
        "aggressor": "BUY",
        "parent_id": None,
        "ts_ns": T0 + n,
    }


def reported(n: int) -> SeenFill:
    """What the core tells the tables when it sees the buyer's report of fill n."""
    return SeenFill(T0 + n, COST, SEC, 0, PX, QTY)


def snapshot(account: str, cash_cents: int, offsets: dict[int, int] | None, ts_ns: int) -> dict:
    return {
        "account": account,
        "cash_cents": cash_cents,
        "equity_cents": cash_cents,
        "positions": [],
        "ts_ns": ts_ns,
        "fills_offsets": [
            {"partition": p, "next_offset": o} for p, o in sorted((offsets or {}).items())
        ],
    }


def test_a_snapshot_published_before_the_backlog_settles_nothing() -> None:
    """The review's case: HK$1m, nine fills of HK$100k unsettled while the ledger is down; at
    its restart the ledger publishes the account stamped now, before posting the backlog."""
    tables = Tables()
    tables.apply("ledger.balances", snapshot("A", 100_000_000, {0: 0}, T0))
    for n in range(9):
        tables.seen_fill("A", reported(n))
        tables.apply_fill(0, n, fill(n))
    assert tables.unsettled_cost_cents("A") == 9 * COST
    # Stamped an hour after every fill, but it includes none of them (offset 0).
    tables.apply("ledger.balances", snapshot("A", 100_000_000, {0: 0}, T0 + 3_600 * 10**9))
    assert tables.unsettled_cost_cents("A") == 9 * COST
    # The backlog posted: the cash has them, and so nothing is unsettled.
    tables.apply("ledger.balances", snapshot("A", 100_000_000 - 9 * 10_000_000, {0: 9}, T0))
    assert tables.unsettled_cost_cents("A") == 0


def test_partly_included_fills_settle_by_offset() -> None:
    tables = Tables()
    for n in range(4):
        tables.apply_fill(n % 2, n // 2, fill(n))  # partitions 0 and 1, offsets 0 and 1
    tables.apply("ledger.balances", snapshot("A", 0, {0: 1, 1: 0}, T0))
    assert tables.unsettled_cost_cents("A") == 3 * COST
    tables.apply("ledger.balances", snapshot("A", 0, {0: 2, 1: 2}, T0))
    assert tables.unsettled_cost_cents("A") == 0


def test_report_before_or_after_its_record_counts_once() -> None:
    tables = Tables()
    tables.apply("ledger.balances", snapshot("A", 0, {0: 0}, T0))
    tables.seen_fill("A", reported(1))  # the report first: pending
    assert tables.unsettled_cost_cents("A") == COST
    tables.apply_fill(0, 0, fill(1))
    assert tables.unsettled_cost_cents("A") == COST
    tables.apply_fill(0, 1, fill(2))  # the record first
    tables.seen_fill("A", reported(2))
    assert tables.unsettled_cost_cents("A") == 2 * COST
    tables.apply_fill(0, 1, fill(2))  # read again (the reader restarted): nothing new
    assert tables.unsettled_cost_cents("A") == 2 * COST


def test_the_sellers_shares_are_unsettled_too() -> None:
    tables = Tables()
    tables.apply_fill(0, 0, fill(1))
    assert tables.unsettled_sold("B", SEC) == QTY and tables.unsettled_cost_cents("B") == 0
    tables.apply("ledger.balances", snapshot("B", 0, {0: 1}, T0))
    assert tables.unsettled_sold("B", SEC) == 0


def test_a_report_of_a_fill_already_included_is_not_counted() -> None:
    tables = Tables()
    tables.apply("ledger.balances", snapshot("A", 0, {0: 0}, T0))
    tables.apply_fill(0, 0, fill(1))
    tables.apply("ledger.balances", snapshot("A", 0, {0: 1}, T0))
    tables.seen_fill("A", reported(1))  # the router's input lagged behind the ledger
    assert tables.unsettled_cost_cents("A") == 0


def test_identical_fills_count_one_each() -> None:
    """One buy filled by two sellers at one price and quantity: two fills, one identity."""
    tables = Tables()
    tables.apply("ledger.balances", snapshot("A", 0, {0: 0}, T0))
    tables.seen_fill("A", reported(1))
    tables.seen_fill("A", reported(1))
    twin = fill(1) | {"sell_account": "C"}
    tables.apply_fill(0, 0, fill(1))
    tables.apply_fill(0, 1, twin)
    assert tables.unsettled_cost_cents("A") == 2 * COST
    tables.apply("ledger.balances", snapshot("A", 0, {0: 1}, T0))
    assert tables.unsettled_cost_cents("A") == COST
    tables.apply("ledger.balances", snapshot("A", 0, {0: 2}, T0))
    assert tables.unsettled_cost_cents("A") == 0


def test_a_restarted_router_forgets_no_unsettled_fill() -> None:
    """Before: fills 0-4 at offsets 0-4, the ledger has posted 0-1. The restarted router reads
    the snapshots, then `fills` from where the oldest one stops, then re-processes reports."""
    tables = Tables()
    tables.apply("ledger.balances", snapshot("A", 0, {0: 2, 1: 7}, T0))
    tables.apply("ledger.balances", snapshot("B", 0, {0: 3, 1: 5}, T0))
    start = tables.fills_start([0, 1, 2])
    assert start == {0: 2, 1: 5, 2: 0}
    for n in range(start[0], 5):
        tables.apply_fill(0, n, fill(n))
    assert tables.unsettled_cost_cents("A") == 3 * COST
    for n in (3, 4):  # reports after the router's last commit come again
        tables.seen_fill("A", reported(n))
    assert tables.unsettled_cost_cents("A") == 3 * COST


def test_a_snapshot_without_offsets_settles_nothing() -> None:
    tables = Tables()
    tables.apply_fill(0, 0, fill(1))
    legacy = snapshot("A", 0, None, T0 + 3_600 * 10**9)
    del legacy["fills_offsets"]
    tables.apply("ledger.balances", legacy)
    assert tables.unsettled_cost_cents("A") == COST
    assert tables.fills_start([0]) == {0: 0}


def test_a_pending_fill_whose_record_is_never_read_expires_by_reader_progress() -> None:
    tables = Tables()
    tables.apply("ledger.balances", snapshot("A", 0, {0: 5}, T0))
    tables.seen_fill("A", reported(1))  # its record lies below where the reader started
    tables.apply_fill(0, 5, fill(2, buyer="Z"))
    assert tables.unsettled_cost_cents("A") == COST  # never too little meanwhile
    tables.apply_fill(0, 6, fill(PENDING_MAX_NS + 2, buyer="Z"))
    assert tables.unsettled_cost_cents("A") == 0
