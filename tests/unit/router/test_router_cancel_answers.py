"""Every CANCEL gets an answer under its own ClOrdID, whatever the order does meanwhile: the
order's CANCELED report, or a CANCEL_REJECTED with a reason. The whole-venue fault test found
cancels with no answer: a SMART parent's cancel (answered only through the parent's own
report, or not at all when the parent filled), and a cancel of an HKEX order that filled
before HKEX's refusal of the cancel arrived (that refusal then found no order and was
dropped)."""

from __future__ import annotations

from test_router_outcomes import (
    PRICE_E3,
    command,
    core,
    hkex_er,
    inbound,
    matcher_report,
    reports,
)

from sampan.fix.messages import CxlRejResponseTo, ExecType, OrderCancelReject, OrdStatus
from sampan.router.core import RouterCore
from sampan.router.ids import Kind, Origin, hkex_cl_ord_id


def answers(router: RouterCore, cl: str) -> list[dict]:
    out, _, _ = router.take()
    return [r for r in reports(out) if r["cl_ord_id"] == cl]


def test_a_cancel_of_a_smart_parent_is_answered_by_its_canceled_report() -> None:
    router = core()
    router.request(0, 7, command())
    router.request(0, 8, command("CANCEL", cl_ord_id="x1", orig_cl_ord_id="p1"))
    router.take()
    # The internal IOC child ends by itself with nothing filled; the parent ends CANCELED.
    router.internal_report(matcher_report("CANCELED", "CANCELED", "S0.7"))
    (answer,) = answers(router, "x1")
    assert (answer["exec_type"], answer["ord_status"]) == ("CANCELED", "CANCELED")
    assert answer["orig_cl_ord_id"] == "p1" and answer["order_id"] == "P0.7"
    assert not router.orders


def test_a_cancel_of_a_smart_parent_that_fills_first_is_refused_too_late() -> None:
    router = core()
    router.request(0, 7, command())
    router.request(0, 8, command("CANCEL", cl_ord_id="x1", orig_cl_ord_id="p1"))
    router.take()
    router.internal_report(matcher_report("TRADE", "FILLED", "S0.7", 1_000, 1_000))
    (answer,) = answers(router, "x1")
    assert (answer["exec_type"], answer["reject_reason"]) == (
        "CANCEL_REJECTED",
        "TOO_LATE_TO_CANCEL",
    )
    assert answer["ord_status"] == "FILLED" and answer["orig_cl_ord_id"] == "p1"


def test_a_cancel_of_an_hkex_order_that_fills_first_is_answered_once() -> None:
    router = core()
    router.request(0, 1, command(route="HKEX", qty=700, cl_ord_id="h1"))
    cl = hkex_cl_ord_id(0, Origin(0, 1), Kind.NEW)
    router.fix_message(1, hkex_er(cl, ExecType.NEW))
    router.request(0, 2, command("CANCEL", route="HKEX", cl_ord_id="x1", orig_cl_ord_id="h1"))
    router.take()
    filled = hkex_er(
        cl, ExecType.TRADE, ord_status=OrdStatus.FILLED, last_px_e3=PRICE_E3, last_qty=700,
        cum_qty=700, leaves_qty=0,
    )  # fmt: skip
    router.fix_message(2, filled)
    (answer,) = answers(router, "x1")
    assert (answer["exec_type"], answer["reject_reason"]) == (
        "CANCEL_REJECTED",
        "TOO_LATE_TO_CANCEL",
    )
    # HKEX's own refusal of the cancel comes after the fill: already answered, nothing more.
    cancel_cl = hkex_cl_ord_id(0, Origin(0, 2), Kind.CANCEL)
    too_late = OrderCancelReject(
        "1000", cancel_cl, cl, OrdStatus.FILLED, CxlRejResponseTo.CANCEL, 0, "too late"
    )
    router.fix_message(3, inbound(too_late.to_fix()))
    assert answers(router, "x1") == []


def test_a_second_cancel_while_one_is_pending_is_refused_and_sends_nothing() -> None:
    router = core()
    router.request(0, 1, command(route="HKEX", qty=700, cl_ord_id="h1"))
    router.request(0, 2, command("CANCEL", route="HKEX", cl_ord_id="x1", orig_cl_ord_id="h1"))
    router.take()
    router.request(0, 3, command("CANCEL", route="HKEX", cl_ord_id="x2", orig_cl_ord_id="h1"))
    out, fix, _ = router.take()
    assert not fix
    (answer,) = [r for r in reports(out) if r["cl_ord_id"] == "x2"]
    assert (answer["exec_type"], answer["reject_reason"]) == ("CANCEL_REJECTED", "CANCEL_PENDING")
    # The first cancel is confirmed under its own ClOrdID.
    cancel_cl = hkex_cl_ord_id(0, Origin(0, 2), Kind.CANCEL)
    canceled = hkex_er(
        cancel_cl, ExecType.CANCELED, ord_status=OrdStatus.CANCELED, leaves_qty=0,
        orig_cl_ord_id=hkex_cl_ord_id(0, Origin(0, 1), Kind.NEW),
    )  # fmt: skip
    router.fix_message(1, canceled)
    (answer,) = answers(router, "x1")
    assert (answer["exec_type"], answer["orig_cl_ord_id"]) == ("CANCELED", "h1")


def test_a_cancel_the_matcher_refuses_is_no_longer_pending() -> None:
    router = core()
    router.request(0, 1, command(route="INTERNAL", qty=100, cl_ord_id="i1"))
    router.internal_report(matcher_report("NEW", "NEW", "i1"))
    router.request(0, 2, command("CANCEL", route="INTERNAL", cl_ord_id="x1", orig_cl_ord_id="i1"))
    router.take()
    refused = matcher_report("CANCEL_REJECTED", "NEW", "x1") | {"orig_cl_ord_id": "i1"}
    router.internal_report(refused)
    assert not router.orders["0.1"].cancel_requested
    router.request(0, 3, command("CANCEL", route="INTERNAL", cl_ord_id="x2", orig_cl_ord_id="i1"))
    out, _, _ = router.take()
    assert [o.value["cl_ord_id"] for o in out if o.topic == "orders.internal"] == ["x2"]
