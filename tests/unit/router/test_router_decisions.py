"""The router's decision records: one per request, each check with the figure and the limit it
compared, the route and every child sent; a SMART parent's later HKEX child its own record."""

from __future__ import annotations

from typing import Any

from test_router_core import PRICE_E3, T0
from test_router_core import command as core_command

from sampan.fix.messages import NewOrderSingle
from sampan.router.core import CoreConfig, RouterCore
from sampan.router.ids import Kind, Origin, hkex_cl_ord_id
from sampan.router.records import Out
from sampan.router.risk import hold_cents
from sampan.router.tables import Tables
from sampan.schemas import registry


def command(kind: str = "NEW", route: str = "INTERNAL", qty: int = 100, **kw: object) -> dict:
    """test_router_core's command, with an internal 100-share order as the default."""
    return core_command(kind, route, qty, **kw)


def core(credit_line_cents: int = 10**12) -> RouterCore:
    tables = Tables()
    tables.apply(
        "reference.accounts",
        {
            "account": "A1", "member": "M1", "credit_line_cents": credit_line_cents,
            "cut_loss_cents": -1, "max_order_notional_cents": 10**12, "allow_short": False,
            "stp": "CANCEL_BOTH", "enabled": True, "ts_ns": 0,
        },
    )  # fmt: skip
    return RouterCore(CoreConfig(), tables)


def decisions(out: list[Out]) -> list[dict[str, Any]]:
    found = [o for o in out if o.topic == "router.decisions"]
    for o in found:
        assert o.key == o.value["account"] and o.schema == "RouterDecision"
        encoded = registry().encode("RouterDecision", o.value)
        assert registry().decode("RouterDecision", encoded) == o.value
    return [o.value for o in found]


def checks(decision: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in decision["checks"]}


def test_an_accepted_buy_records_each_check_with_its_figures_and_the_order_sent() -> None:
    router = core(credit_line_cents=10_000_000)
    router.request(0, 7, command())
    (d,) = decisions(router.take()[0])
    assert (d["decision_id"], d["event"], d["outcome"], d["route"]) == (
        "D0.7", "REQUEST", "ACCEPTED", "INTERNAL",
    )  # fmt: skip
    assert (d["request_partition"], d["request_offset"], d["cl_ord_id"]) == (0, 7, "p1")
    cost = hold_cents(PRICE_E3, 100, router.config.risk)
    assert d["hold_cents"] == cost
    by_name = checks(d)
    assert all(c["passed"] for c in d["checks"])
    power = by_name["INSUFFICIENT_BUYING_POWER"]
    assert (power["value"], power["limit"], power["unit"]) == (cost, 10_000_000, "cents")
    notional = by_name["MAX_NOTIONAL"]
    assert (notional["value"], notional["limit"]) == (PRICE_E3 * 100, 10**13)
    collar = by_name["PRICE_COLLAR"]
    assert (collar["value"], collar["limit"], collar["unit"]) == (0, PRICE_E3 // 10, "e3")
    assert by_name["NOT_BOARD_LOT"]["limit"] == 100
    assert {"DUPLICATE_CL_ORD_ID", "OPEN_ORDERS_LIMIT", "ACCOUNT_DISABLED"} <= set(by_name)
    (child,) = d["children"]
    assert (child["venue"], child["action"], child["cl_ord_id"], child["qty"]) == (
        "INTERNAL", "NEW", "p1", 100,
    )  # fmt: skip


def test_a_rejected_buy_ends_with_the_failed_check_and_its_figures() -> None:
    router = core(credit_line_cents=1_000)
    router.request(1, 3, command())
    out = router.take()[0]
    (d,) = decisions(out)
    assert (d["outcome"], d["reject_reason"], d["route"], d["children"]) == (
        "REJECTED", "INSUFFICIENT_BUYING_POWER", None, [],
    )  # fmt: skip
    last = d["checks"][-1]
    assert last["name"] == "INSUFFICIENT_BUYING_POWER" and not last["passed"]
    assert last["value"] > last["limit"] == 1_000
    assert all(c["passed"] for c in d["checks"][:-1])
    (report,) = [o.value for o in out if o.topic == "orders.events"]
    assert report["reject_reason"] == d["reject_reason"] and report["text"] == d["text"]


def test_a_smart_order_records_its_split_and_then_the_hkex_child_it_sends() -> None:
    router = core()
    router.request(0, 7, command(route="SMART", qty=1_000))
    (d,) = decisions(router.take()[0])
    assert (d["route"], d["order_id"]) == ("SMART", "P0.7")
    assert "SMART split" in d["text"]
    (child,) = d["children"]
    assert (child["venue"], child["cl_ord_id"], child["time_in_force"], child["qty"]) == (
        "INTERNAL", "S0.7", "IOC", 1_000,
    )  # fmt: skip
    for exec_type, status, last, cum in (("TRADE", "PARTIALLY_FILLED", 300, 300),
                                         ("EXPIRED", "EXPIRED", 0, 300)):  # fmt: skip
        router.internal_report(
            {
                "exec_id": f"X{exec_type}", "venue": "INTERNAL", "order_id": "X0.1",
                "cl_ord_id": "S0.7", "orig_cl_ord_id": None, "parent_id": "p1",
                "account": "A1", "member": "M1", "security": 700, "side": "BUY",
                "exec_type": exec_type, "ord_status": status, "price_e3": PRICE_E3,
                "order_qty": 1_000, "last_px_e3": PRICE_E3 if last else 0, "last_qty": last,
                "cum_qty": cum, "leaves_qty": 0, "cum_notional_e3": 0, "reject_reason": None,
                "text": None, "ts_ns": T0 + 5,
            }
        )  # fmt: skip
    out, fix, _ = router.take()
    (sent,) = decisions(out)
    (nos,) = fix
    hkex = NewOrderSingle.from_fix(nos)
    assert hkex.cl_ord_id == hkex_cl_ord_id(0, Origin(0, 7), Kind.SMART_CHILD)
    assert (sent["decision_id"], sent["event"], sent["order_id"], sent["ts_ns"]) == (
        "D0.7.H", "CHILD_SENT", "P0.7", T0 + 5,
    )  # fmt: skip
    (child,) = sent["children"]
    assert (child["venue"], child["cl_ord_id"], child["qty"]) == ("HKEX", hkex.cl_ord_id, 700)
    assert "300 of 1000" in sent["text"]


def test_cancels_and_amends_record_what_they_addressed() -> None:
    router = core()
    router.request(0, 1, command(cl_ord_id="a"))
    router.request(0, 2, command(route="HKEX", qty=700, cl_ord_id="h"))
    router.request(0, 3, command("AMEND", qty=200, cl_ord_id="a2", orig_cl_ord_id="a"))
    router.request(0, 4, command("CANCEL", cl_ord_id="c", orig_cl_ord_id="zzz"))
    out, fix, _ = router.take()
    _, new_h, amend, unknown = decisions(out)
    hkex_cl = new_h["children"][0]["cl_ord_id"]
    assert new_h["route"] == "HKEX" and NewOrderSingle.from_fix(fix[0]).cl_ord_id == hkex_cl
    (child,) = amend["children"]
    assert (child["action"], child["cl_ord_id"], child["orig_cl_ord_id"], child["qty"]) == (
        "AMEND", "a2", "a", 200,
    )  # fmt: skip
    assert checks(amend)["INSUFFICIENT_BUYING_POWER"]["passed"]
    assert (unknown["outcome"], unknown["reject_reason"]) == ("REJECTED", "UNKNOWN_ORDER")
    router.request(0, 5, command("MASS_CANCEL", cl_ord_id="m", security=0))
    (mass,) = decisions(router.take()[0])
    assert mass["outcome"] == "ACCEPTED" and mass["route"] is None
    assert {(c["venue"], c["action"], c["orig_cl_ord_id"]) for c in mass["children"]} == {
        ("INTERNAL", "CANCEL", "a"), ("HKEX", "CANCEL", hkex_cl),
    }  # fmt: skip
    assert checks(mass)["NOTHING_TO_CANCEL"]["value"] == 2


def test_a_request_that_fails_leaves_no_decision() -> None:
    router = core()
    router.request(0, 1, command(cl_ord_id="a"))
    router.take()
    try:
        router.request(0, 2, command(kind="NOT_A_KIND"))
    except ValueError:
        pass
    else:
        raise AssertionError("an unknown kind must raise (the service dead-letters it)")
    out, fix, dirty = router.take()
    assert out == [] and fix == [] and dirty == []
    assert router.processed[0] == 3
