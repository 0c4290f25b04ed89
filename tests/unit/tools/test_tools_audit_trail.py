"""Following one order's ids across the topics, and an account's day from both sides."""

from __future__ import annotations

from typing import Any

import pytest

from sampan.tools import audit_trail
from sampan.tools.audit_trail import AccountDay, AuditError, OrderTrail, summary


def request(cl_ord_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "command_id": f"cmd-{cl_ord_id}",
        "kind": "NEW",
        "account": "A1",
        "cl_ord_id": cl_ord_id,
        "orig_cl_ord_id": None,
        "parent_id": None,
        "side": "BUY",
        "qty": 1000,
        "security": 700,
        "price_e3": 320_200,
        "route": "SMART",
        "ts_ns": 1,
    } | extra


def report(order_id: str, cl_ord_id: str, exec_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "exec_id": exec_id,
        "venue": "INTERNAL",
        "order_id": order_id,
        "cl_ord_id": cl_ord_id,
        "orig_cl_ord_id": None,
        "parent_id": None,
        "account": "A1",
        "exec_type": "NEW",
        "ord_status": "NEW",
        "ts_ns": 2,
    } | extra


def fill(exec_id: str, buy_order: str, sell_order: str, **extra: Any) -> dict[str, Any]:
    return {
        "exec_id": exec_id,
        "venue": "INTERNAL",
        "security": 700,
        "price_e3": 320_200,
        "qty": 300,
        "buy_account": "A1",
        "buy_order_id": buy_order,
        "sell_account": "B1",
        "sell_order_id": sell_order,
        "parent_id": None,
        "ts_ns": 3,
    } | extra


def feed(trail: OrderTrail, records: list[tuple[str, dict[str, Any]]]) -> None:
    """Offer the records pass after pass, as the scanner does, until nothing new is learnt."""
    for _ in range(audit_trail.PASSES_MAX):
        learnt = False
        for offset, (topic, record) in enumerate(records):
            learnt |= trail.offer(topic, 0, offset, record)
        if not learnt:
            return


def test_a_smart_order_story_follows_children_fills_and_drop_copy() -> None:
    records = [
        ("orders.requests", request("C1")),
        ("orders.requests", request("C9")),  # another order: not in the story
        # the internal child, which names the parent id learnt only from a later report
        ("orders.internal", request("S0.5", parent_id="P0.5", route="INTERNAL", ts_ns=4)),
        ("orders.events", report("P0.5", "C1", "P0.5.1", ts_ns=5)),
        ("orders.events", report("I7", "S0.5", "X0.1", parent_id="P0.5", ts_ns=6)),
        ("orders.events", report("I8", "C9", "X0.2", ts_ns=6)),
        ("fills", fill("X0.3", "I7", "I99", parent_id="P0.5", ts_ns=7)),
        ("fills", fill("X0.4", "I8", "I99", ts_ns=7)),  # C9's fill
        ("orders.events", report("H1", "123", "E5", parent_id="P0.5", venue="HKEX", ts_ns=8)),
        ("fills", fill("HKEX:2026-11-27:E6", "H1", "", parent_id="P0.5", ts_ns=9)),
        ("hkex.dropcopy", {"exec_id": "E6", "sending_time_ns": 10}),
        ("hkex.dropcopy", {"exec_id": "HKEX:2026-11-27:E6", "sending_time_ns": 10}),
        ("recon.breaks", {"exec_id": "E77", "ts_ns": 11}),
    ]
    trail = OrderTrail("C1")
    feed(trail, records)
    found = [(e.topic, e.offset) for e in trail.entries()]
    assert found == [
        ("orders.requests", 0),
        ("orders.internal", 2),
        ("orders.events", 3),
        ("orders.events", 4),
        ("fills", 6),
        ("orders.events", 8),
        ("fills", 9),
        ("hkex.dropcopy", 11),
    ]


def test_a_fill_does_not_pull_in_the_counterpartys_order() -> None:
    trail = OrderTrail("C1")
    feed(
        trail,
        [
            ("orders.events", report("I7", "C1", "X1")),
            ("fills", fill("X2", "I7", "I99")),
            ("orders.events", report("I99", "C-other", "X3", account="B1")),
        ],
    )
    assert [e.topic for e in trail.entries()] == ["orders.events", "fills"]


def test_the_account_narrows_a_shared_cl_ord_id() -> None:
    records = [
        ("orders.requests", request("7")),
        ("orders.requests", request("7", account="B1", command_id="cmd-b")),
    ]
    both = OrderTrail("7")
    feed(both, records)
    assert len(both.entries()) == 2
    one = OrderTrail("7", account="B1")
    feed(one, records)
    assert [e.record["account"] for e in one.entries()] == ["B1"]


def test_an_unknown_id_finds_nothing() -> None:
    trail = OrderTrail("nope")
    feed(trail, [("orders.requests", request("C1")), ("orders.events", report("I", "C1", "X"))])
    assert trail.entries() == []


def test_a_story_past_its_bound_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_trail, "ENTRIES_MAX", 2)
    trail = OrderTrail("C1")
    with pytest.raises(AuditError, match="more than 2 records"):
        feed(trail, [("orders.requests", request("C1", command_id=f"c{i}")) for i in range(3)])


def test_an_account_day_takes_fills_of_either_side_and_the_last_balance() -> None:
    day = AccountDay("B1", (100, 200))
    day.offer("fills", 0, 0, fill("X1", "I1", "I2", ts_ns=150))  # B1 the passive seller
    day.offer("fills", 0, 1, fill("X2", "I1", "I2", sell_account="C1", ts_ns=150))
    day.offer("fills", 0, 2, fill("X3", "I1", "I2", ts_ns=250))  # the next day
    day.offer("orders.events", 1, 0, report("I2", "S1", "X9", account="B1", ts_ns=120))
    day.offer("ledger.balances", 0, 5, {"account": "B1", "cash_cents": 5, "ts_ns": 160})
    day.offer("ledger.balances", 0, 6, {"account": "B1", "cash_cents": 7, "ts_ns": 190})
    day.offer("ledger.balances", 0, 7, {"account": "B1", "cash_cents": 9, "ts_ns": 210})
    assert [e.record["exec_id"] for e in day.fills()] == ["X1"]
    assert [e.topic for e in day.entries()] == ["orders.events", "fills"]
    assert day.closing is not None and day.closing.record["cash_cents"] == 7


def test_summaries_format_money_exactly() -> None:
    entry = audit_trail.Entry(
        "ledger.balances",
        0,
        1,
        5,
        {"cash_cents": -123_456_789_012_345_67, "equity_cents": 1, "available_cash_cents": 0},
    )
    assert "cash -123,456,789,012,345.67" in summary(entry)
    trade = audit_trail.Entry("fills", 0, 1, 5, fill("X1", "a", "b", price_e3=1_005))
    assert "@ 1.005" in summary(trade)


def decision(cl_ord_id: str, kind: str = "NEW", **extra: Any) -> dict[str, Any]:
    return {
        "decision_id": "D0.1", "event": "REQUEST", "kind": kind, "command_id": f"cmd-{cl_ord_id}",
        "account": "A1", "cl_ord_id": cl_ord_id, "orig_cl_ord_id": None, "order_id": None,
        "outcome": "ACCEPTED", "route": "INTERNAL", "reject_reason": None, "text": None,
        "hold_cents": 0, "checks": [], "children": [], "ts_ns": 1,
    } | extra  # fmt: skip


def child(cl_ord_id: str, orig: str | None = None, venue: str = "HKEX") -> dict[str, Any]:
    return {"venue": venue, "action": "CANCEL" if orig else "NEW", "cl_ord_id": cl_ord_id,
            "orig_cl_ord_id": orig, "qty": 0 if orig else 700, "price_e3": 0 if orig else 512_500,
            "time_in_force": "" if orig else "DAY"}  # fmt: skip


def test_decisions_join_their_order_and_a_mass_cancel_joins_no_two_orders() -> None:
    records = [
        ("orders.requests", request("C1")),
        ("router.decisions", decision("C1", children=[child("S0.5", venue="INTERNAL")])),
        ("router.decisions", decision("C1", event="CHILD_SENT", children=[child("4711")])),
        ("orders.events", report("H1", "4711", "E5", venue="HKEX", ts_ns=8)),
        ("orders.requests", request("C2")),
        ("router.decisions", decision("C2")),
        ("router.decisions", decision("M1", kind="MASS_CANCEL",
                                      children=[child("9", "4711"), child("M1.1", "C2")])),
    ]  # fmt: skip
    trail = OrderTrail("C1")
    feed(trail, records)
    assert [(e.topic, e.offset) for e in trail.entries()] == [
        ("orders.requests", 0), ("router.decisions", 1), ("router.decisions", 2),
        ("router.decisions", 6), ("orders.events", 3),
    ]  # fmt: skip


def test_a_decisions_checks_and_children_are_printed_with_their_figures() -> None:
    checks = [
        {"name": "MAX_NOTIONAL", "passed": True, "value": 51_200_000, "limit": 10**10,
         "unit": "e3", "detail": "order notional"},
        {"name": "INSUFFICIENT_BUYING_POWER", "passed": False, "value": 5_130_240,
         "limit": 1_000, "unit": "cents", "detail": "needs more"},
    ]  # fmt: skip
    entry = audit_trail.Entry(
        "router.decisions", 0, 3, 1,
        decision("C1", outcome="REJECTED", reject_reason="INSUFFICIENT_BUYING_POWER",
                 text="needs more", checks=checks, children=[child("4711")]),
    )  # fmt: skip
    assert "REJECTED INSUFFICIENT_BUYING_POWER: needs more" in summary(entry)
    assert audit_trail.details(entry) == [
        "check pass MAX_NOTIONAL value 51,200,000 e3 limit 10,000,000,000 e3: order notional",
        "check FAIL INSUFFICIENT_BUYING_POWER value 5,130,240 cents limit 1,000 cents: needs more",
        "sent HKEX NEW 4711 700 @ 512.500 DAY",
    ]


def ledger_entry(exec_id: str | None, *accounts: str, kind: str = "FILL") -> dict[str, Any]:
    postings = [
        {"leg": 2, "debit_account": accounts[0], "credit_account": accounts[1], "asset": "700",
         "amount": 300},
        {"leg": 1, "debit_account": accounts[1], "credit_account": accounts[0], "asset": "HKD",
         "amount": 9_606_000},
    ]  # fmt: skip
    return {"entry_id": 9, "entry_ref": f"INTERNAL:{exec_id}", "kind": kind, "exec_id": exec_id,
            "ts_ns": 3, "postings": postings, "movement": None}  # fmt: skip


def test_a_fills_ledger_entry_joins_the_order_and_both_accounts() -> None:
    trail = OrderTrail("C1")
    feed(
        trail,
        [
            ("orders.events", report("I7", "C1", "X1")),
            ("fills", fill("X2", "I7", "I99")),
            ("ledger.postings", ledger_entry("X2", "B1", "A1")),
            ("ledger.postings", ledger_entry("X3", "B1", "A1")),  # another fill of A1
        ],
    )
    assert [(e.topic, e.offset) for e in trail.entries()] == [
        ("orders.events", 0), ("fills", 1), ("ledger.postings", 2),
    ]  # fmt: skip
    seller = AccountDay("B1")
    seller.offer("ledger.postings", 0, 4, ledger_entry("X2", "B1", "A1"))
    seller.offer("ledger.postings", 0, 5, ledger_entry("X9", "C1", "A1"))
    assert [e.offset for e in seller.entries()] == [4]
    (line, _) = audit_trail.details(seller.entries()[0])
    assert line == "posting leg 2: B1 -> A1 300 shares of 700"
    assert audit_trail.plain({"d": [b"\x01\xff"]}) == {"d": ["01ff"]}
