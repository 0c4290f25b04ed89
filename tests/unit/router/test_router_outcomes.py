"""The core's answers to what a venue or a member does wrong: a SMART parent whose HKEX child
is refused (by a report, a business reject or a session-level Reject), HKEX forgetting an
order, reused ClOrdIDs, mass cancels that match nothing or repeat themselves, oversized or
ill-stamped requests, and HKEX reports without OrderQty or TransactTime."""

from __future__ import annotations

from typing import Any

from sampan.fix.codec import FixMessage
from sampan.fix.messages import (
    TAG_CL_ORD_ID,
    CxlRejResponseTo,
    ExecType,
    ExecutionReport,
    NewOrderSingle,
    OrderCancelReject,
    OrdStatus,
    Side,
)
from sampan.router.core import CoreConfig, RouterCore
from sampan.router.ids import Kind, Origin, hkex_cl_ord_id
from sampan.router.mapping import STRING_LEN_MAX
from sampan.router.orders import Status
from sampan.router.records import Out
from sampan.router.risk import hold_cents
from sampan.router.tables import Tables
from sampan.schemas import registry

PRICE_E3 = 512_000
T0 = 1_767_323_045_000_000_000  # 2026-01-02T03:04:05Z, 11:04 in Hong Kong
DAY_NS = 86_400 * 10**9


def command(kind: str = "NEW", route: str = "SMART", qty: int = 1_000, **kw: object) -> dict:
    base = {
        "command_id": "c1", "kind": kind, "account": "A1", "member": "M1", "security": 700,
        "cl_ord_id": "p1", "orig_cl_ord_id": None, "side": "BUY", "ord_type": "LIMIT",
        "time_in_force": "DAY", "price_e3": PRICE_E3, "qty": qty, "route": route,
        "batch_id": None, "parent_id": None, "user": None, "ts_ns": T0, "stp": None,
    }  # fmt: skip
    base.update(kw)
    return base


def core() -> RouterCore:
    tables = Tables()
    tables.apply(
        "reference.accounts",
        {
            "account": "A1", "member": "M1", "credit_line_cents": 10**12, "cut_loss_cents": -1,
            "max_order_notional_cents": 10**12, "allow_short": False, "stp": "CANCEL_BOTH",
            "enabled": True, "ts_ns": 0,
        },
    )  # fmt: skip
    return RouterCore(CoreConfig(), tables)


def matcher_report(exec_type: str, status: str, cl: str, last_qty: int = 0, cum: int = 0) -> dict:
    return {
        "exec_id": f"X{cl}{exec_type}{cum}", "venue": "INTERNAL", "order_id": "X0.1",
        "cl_ord_id": cl, "orig_cl_ord_id": None, "parent_id": None, "account": "A1",
        "member": "M1", "security": 700, "side": "BUY", "exec_type": exec_type,
        "ord_status": status, "price_e3": PRICE_E3, "order_qty": 1_000,
        "last_px_e3": PRICE_E3 if last_qty else 0, "last_qty": last_qty, "cum_qty": cum,
        "leaves_qty": 0, "cum_notional_e3": 0, "reject_reason": None, "text": None,
        "ts_ns": T0 + 1,
    }  # fmt: skip


def inbound(msg: FixMessage) -> FixMessage:
    return FixMessage.of(msg.msg_type, *msg.fields[1:])


def hkex_er(cl: str, exec_type: ExecType, **kw: Any) -> FixMessage:
    fields: dict[str, Any] = dict(
        order_id="1000", cl_ord_id=cl, exec_id=f"E-{cl}-{exec_type}", exec_type=exec_type,
        ord_status=OrdStatus.NEW, security_id="700", side=Side.BUY, order_qty=700, cum_qty=0,
        leaves_qty=700, transact_time_ns=T0 + 2, price_e3=PRICE_E3,
    )  # fmt: skip
    fields.update(kw)
    return inbound(ExecutionReport(**fields).to_fix())


def reports(out: list[Out]) -> list[dict]:
    return [o.value for o in out if o.topic == "orders.events"]


def smart_to_hkex(router: RouterCore, filled_internally: int) -> str:
    """A SMART buy of 1,000 at offset 7 whose internal child fills `filled_internally`; the
    HKEX child's ClOrdID."""
    router.request(0, 7, command())
    if filled_internally:
        router.internal_report(
            matcher_report(
                "TRADE", "PARTIALLY_FILLED", "S0.7", filled_internally, filled_internally
            )
        )
    router.internal_report(matcher_report("CANCELED", "CANCELED", "S0.7", 0, filled_internally))
    return hkex_cl_ord_id(0, Origin(0, 7), Kind.SMART_CHILD)


def test_a_smart_remainder_goes_to_hkex_as_an_enhanced_limit() -> None:
    router = core()
    smart_to_hkex(router, 300)
    _, (child,), _ = router.take()
    nos = NewOrderSingle.from_fix(child)
    assert (nos.order_qty, nos.price_e3, nos.max_price_levels) == (700, PRICE_E3, 10)
    router.request(0, 8, command(route="HKEX", qty=100, cl_ord_id="h1"))
    _, (plain,), _ = router.take()
    assert NewOrderSingle.from_fix(plain).max_price_levels is None


def test_smart_parent_without_fills_ends_rejected_when_hkex_rejects_its_child() -> None:
    router = core()
    cl = smart_to_hkex(router, 0)
    assert router.exposure("A1").holds_cents > 0
    router.take()
    router.fix_message(
        1,
        hkex_er(cl, ExecType.REJECTED, ord_status=OrdStatus.REJECTED, leaves_qty=0,
                ord_rej_reason=16, text="price_through_reach"),
    )  # fmt: skip
    out, _, _ = router.take()
    assert not router.take_failed_fix(), "the reject must apply, not be dead-lettered"
    parent = [r for r in reports(out) if r["order_id"].startswith("P")][-1]
    assert (parent["ord_status"], parent["reject_reason"]) == ("REJECTED", "VENUE_REJECTED")
    assert parent["text"] == "price_through_reach" and parent["leaves_qty"] == 0
    assert not router.orders and router.exposure("A1").holds_cents == 0


def test_smart_parent_with_internal_fills_ends_canceled_when_hkex_rejects_its_child() -> None:
    router = core()
    cl = smart_to_hkex(router, 300)
    router.take()
    router.fix_message(
        1,
        hkex_er(cl, ExecType.REJECTED, ord_status=OrdStatus.REJECTED, leaves_qty=0,
                ord_rej_reason=16),
    )  # fmt: skip
    out, _, _ = router.take()
    parent = [r for r in reports(out) if r["order_id"].startswith("P")][-1]
    assert (parent["ord_status"], parent["cum_qty"], parent["leaves_qty"]) == ("CANCELED", 300, 0)
    assert parent["reject_reason"] == "VENUE_REJECTED"
    # Only the 300 bought (until the ledger reports them) is still counted, not the rest.
    bought = hold_cents(PRICE_E3, 300, router.config.risk)
    assert not router.orders and router.exposure("A1").holds_cents == bought


def test_smart_parent_ends_on_every_child_outcome() -> None:
    for end, status in ((ExecType.EXPIRED, "EXPIRED"), (ExecType.CANCELED, "CANCELED")):
        router = core()
        cl = smart_to_hkex(router, 0)
        router.fix_message(1, hkex_er(cl, ExecType.NEW))
        router.fix_message(2, hkex_er(cl, end, ord_status=OrdStatus(end.value), leaves_qty=0))
        out, _, _ = router.take()
        parent = [r for r in reports(out) if r["order_id"].startswith("P")][-1]
        assert parent["ord_status"] == status and not router.orders
        assert router.exposure("A1").holds_cents == 0


def session_reject(seq: int, refused: FixMessage, reason: int = 6) -> FixMessage:
    """A 35=3 as the link queues it: RefSeqNum, and the refused message's ClOrdID and type."""
    return FixMessage.of(
        "3", (34, str(seq)), (45, "17"), (373, str(reason)), (58, "bad"),
        (372, refused.msg_type), (TAG_CL_ORD_ID, refused.get(TAG_CL_ORD_ID) or ""),
    )  # fmt: skip


def test_a_session_reject_of_an_hkex_order_rejects_it_with_the_reason() -> None:
    router = core()
    router.request(0, 1, command(route="HKEX", qty=700))
    _, (nos,), _ = router.take()
    assert router.exposure("A1").holds_cents > 0
    router.fix_message(5, session_reject(5, nos))
    out, _, _ = router.take()
    (rejected,) = reports(out)
    assert (rejected["ord_status"], rejected["reject_reason"]) == ("REJECTED", "VENUE_REJECTED")
    assert "session Reject" in rejected["text"] and "bad" in rejected["text"]
    assert not router.orders and router.exposure("A1").holds_cents == 0


def test_a_session_reject_of_a_smart_child_ends_the_parent_and_of_a_cancel_refuses_it() -> None:
    router = core()
    smart_to_hkex(router, 0)
    _, (child,), _ = router.take()
    router.fix_message(3, session_reject(3, child))
    out, _, _ = router.take()
    assert reports(out)[-1]["ord_status"] == "REJECTED" and not router.orders
    router.request(0, 9, command(route="HKEX", qty=700, cl_ord_id="h9"))
    cl = hkex_cl_ord_id(0, Origin(0, 9), Kind.NEW)
    router.fix_message(4, hkex_er(cl, ExecType.NEW))
    router.request(0, 10, command("CANCEL", route="HKEX", cl_ord_id="x9", orig_cl_ord_id="h9"))
    _, fix, _ = router.take()
    router.fix_message(5, session_reject(5, fix[-1]))
    out, _, _ = router.take()
    (refused,) = reports(out)
    assert refused["exec_type"] == "CANCEL_REJECTED" and refused["cl_ord_id"] == "x9"
    assert not router.orders["0.9"].cancel_requested


def test_hkex_not_knowing_an_order_on_cancel_ends_it_with_an_alert(caplog: Any) -> None:
    router = core()
    router.request(0, 1, command(route="HKEX", qty=700, cl_ord_id="h1"))
    cl = hkex_cl_ord_id(0, Origin(0, 1), Kind.NEW)
    router.fix_message(1, hkex_er(cl, ExecType.NEW))
    router.request(0, 2, command("CANCEL", route="HKEX", cl_ord_id="x1", orig_cl_ord_id="h1"))
    router.take()
    cancel_cl = hkex_cl_ord_id(0, Origin(0, 2), Kind.CANCEL)
    unknown = OrderCancelReject(
        "NONE", cancel_cl, cl, OrdStatus.REJECTED, CxlRejResponseTo.CANCEL, 1, "unknown order"
    )
    router.fix_message(2, inbound(unknown.to_fix()))
    out, _, _ = router.take()
    (ended,) = reports(out)
    assert (ended["ord_status"], ended["reject_reason"]) == ("CANCELED", "VENUE_UNKNOWN_ORDER")
    assert ended["cl_ord_id"] == "x1" and ended["orig_cl_ord_id"] == "h1"
    assert not router.orders and router.exposure("A1").holds_cents == 0
    assert any("ALERT" in r.message and r.levelname == "ERROR" for r in caplog.records)


def reasons(out: list[Out]) -> list[str | None]:
    return [r["reject_reason"] for r in reports(out)]


def test_cl_ord_ids_are_unique_per_account_per_day() -> None:
    router = core()
    router.request(0, 1, command(route="INTERNAL", qty=100, cl_ord_id="a"))
    router.request(0, 2, command(route="INTERNAL", qty=100, cl_ord_id="b"))
    router.take()
    # A NEW reusing a live ClOrdID of another security; an amend reusing another live order's.
    router.request(0, 3, command(route="INTERNAL", qty=100, cl_ord_id="a", security=5,
                                 price_e3=98_550))  # fmt: skip
    router.request(0, 4, command("AMEND", route="INTERNAL", qty=200, cl_ord_id="b",
                                 orig_cl_ord_id="a"))  # fmt: skip
    out, _, _ = router.take()
    assert reasons(out) == ["DUPLICATE_CL_ORD_ID", "DUPLICATE_CL_ORD_ID"]
    assert not [o for o in out if o.topic == "orders.internal"]
    # "a" fills: its ClOrdID stays used for the day, through a restart too.
    router.internal_report(matcher_report("NEW", "NEW", "a"))
    router.internal_report(matcher_report("TRADE", "FILLED", "a", 100, 100))
    _, _, dirty = router.take()
    restarted = core()
    restarted.load([o for _, o in dirty if o is not None] + list(router.orders.values()), {0: 5})
    for r in (router, restarted):
        r.request(0, 5, command(route="INTERNAL", qty=100, cl_ord_id="a"))
        out, _, _ = r.take()
        assert reasons(out) == ["DUPLICATE_CL_ORD_ID"]
        assert reports(out)[0]["text"] == "ClOrdID already used today"
        # The next Hong Kong day it is free again, and yesterday's finished orders go.
        r.request(0, 6, command(route="INTERNAL", qty=100, cl_ord_id="a", ts_ns=T0 + DAY_NS))
        out, _, dirty = r.take()
        assert [o.topic for o in out] == ["orders.internal", "router.decisions"]
        assert ("0.1", None) in dirty and "0.1" not in r.done


def test_a_cancel_or_amend_reusing_a_cl_ord_id_is_refused() -> None:
    router = core()
    router.request(0, 1, command(route="INTERNAL", qty=100, cl_ord_id="a"))
    router.request(0, 2, command(route="INTERNAL", qty=100, cl_ord_id="b"))
    router.request(0, 3, command("AMEND", route="INTERNAL", qty=200, cl_ord_id="a2",
                                 orig_cl_ord_id="a"))  # fmt: skip
    router.take()
    router.request(0, 4, command("CANCEL", route="INTERNAL", cl_ord_id="a2", orig_cl_ord_id="b"))
    out, _, _ = router.take()
    assert reasons(out) == ["DUPLICATE_CL_ORD_ID"] and not router.orders["0.2"].cancel_requested


def test_a_mass_cancel_matching_nothing_is_answered_and_none_is_sent_twice() -> None:
    router = core()
    router.request(0, 1, command("MASS_CANCEL", route="INTERNAL", cl_ord_id="m1", security=0))
    out, _, _ = router.take()
    (answer,) = reports(out)
    assert (answer["exec_type"], answer["reject_reason"]) == (
        "CANCEL_REJECTED", "NOTHING_TO_CANCEL",
    )  # fmt: skip
    router.request(0, 2, command(route="HKEX", qty=700, cl_ord_id="h2"))
    router.request(0, 3, command(route="INTERNAL", qty=100, cl_ord_id="i3"))
    router.take()
    router.request(0, 4, command("MASS_CANCEL", route="INTERNAL", cl_ord_id="m4", security=0))
    out, fix, _ = router.take()
    assert len(fix) == 1 and len([o for o in out if o.topic == "orders.internal"]) == 1
    # The venues are slow: the member asks again. Nothing more goes out; the member is told.
    router.request(0, 5, command("MASS_CANCEL", route="INTERNAL", cl_ord_id="m5", security=0))
    out, fix, _ = router.take()
    assert not fix and [o.topic for o in out] == ["orders.events", "router.decisions"]
    assert reasons(out) == ["NOTHING_TO_CANCEL"] and "pending" in reports(out)[0]["text"]


def test_an_oversized_request_is_refused_with_a_small_report() -> None:
    router = core()
    huge = "9" * 400_000
    router.request(0, 1, command("CANCEL", command_id=huge, cl_ord_id=huge, orig_cl_ord_id="p"))
    out, fix, _ = router.take()
    (refused, decision) = out
    assert refused.value["reject_reason"] == "INVALID_FIELD" and not fix
    assert len(refused.value["cl_ord_id"]) == STRING_LEN_MAX["cl_ord_id"]
    assert "400000 characters" in refused.value["text"]
    assert len(registry().encode("ExecutionReport", refused.value)) < 1_000
    assert (decision.value["outcome"], decision.value["reject_reason"]) == (
        "REJECTED", "INVALID_FIELD",
    )  # fmt: skip
    assert len(registry().encode("RouterDecision", decision.value)) < 2_000


def test_a_request_stamped_in_1823_is_refused() -> None:
    router = core()
    router.request(0, 1, command(route="HKEX", qty=700, ts_ns=-4_637_000_000 * 10**9))
    router.request(0, 2, command(route="HKEX", qty=700, ts_ns=T0, cl_ord_id="late"), T0 + DAY_NS)
    router.request(0, 3, command(route="HKEX", qty=700, cl_ord_id="ok"), T0 + 10**9)
    out, fix, _ = router.take()
    assert reasons(out) == ["INVALID_TIMESTAMP", "INVALID_TIMESTAMP"] and len(fix) == 1


def test_an_execution_report_without_order_qty_or_transact_time_applies() -> None:
    router = core()
    router.request(0, 1, command(route="HKEX", qty=700))
    cl = hkex_cl_ord_id(0, Origin(0, 1), Kind.NEW)
    router.take()
    trade = hkex_er(
        cl, ExecType.TRADE, ord_status=OrdStatus.FILLED, cum_qty=700, leaves_qty=0,
        last_px_e3=PRICE_E3, last_qty=700, order_qty=None, transact_time_ns=None,
    )  # fmt: skip
    assert trade.get(38) is None and trade.get(60) is None
    sent = FixMessage((*trade.fields, (52, "20260102-03:04:06.000")))
    router.fix_message(1, sent)
    out, _, _ = router.take()
    assert not router.take_failed_fix()
    fill = next(o.value for o in out if o.topic == "fills")
    assert fill["qty"] == 700 and fill["ts_ns"] == T0 + 10**9
    assert reports(out)[0]["ord_status"] == "FILLED"
    assert router.done["0.1"].status is Status.FILLED
