"""The pure core: deterministic ClOrdIDs, SMART parent aggregation, HKEX de-duplication,
orphans, and the order status machine."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from sampan.fix.codec import FixMessage
from sampan.fix.messages import ExecType, ExecutionReport, NewOrderSingle, OrdStatus, Side
from sampan.market.side import Side as RiskSide
from sampan.router import hkex
from sampan.router.core import CoreConfig, RouterCore
from sampan.router.ids import (
    Kind,
    Origin,
    hkex_cl_ord_id,
    parse_hkex_cl_ord_id,
)
from sampan.router.orders import IllegalTransition, Order, Route, Status, advance, traded
from sampan.router.tables import BadReference, Tables, account_limits

PRICE_E3 = 512_000
T0 = 1_767_323_045_000_000_000  # 2026-01-02T03:04:05Z


def command(kind: str = "NEW", route: str = "SMART", qty: int = 1_000, **kw: object) -> dict:
    base = {
        "command_id": "c1", "kind": kind, "account": "A1", "member": "M1", "security": 700,
        "cl_ord_id": "p1", "orig_cl_ord_id": None, "side": "BUY", "ord_type": "LIMIT",
        "time_in_force": "DAY", "price_e3": PRICE_E3, "qty": qty, "route": route,
        "batch_id": None, "parent_id": None, "user": None, "ts_ns": T0, "stp": None,
    }  # fmt: skip
    base.update(kw)
    return base


def account_record(**kw: object) -> dict:
    value = {
        "account": "A1", "member": "M1", "credit_line_cents": 10**12, "cut_loss_cents": -1,
        "max_order_notional_cents": 10**12, "allow_short": False, "stp": "CANCEL_BOTH",
        "enabled": True, "ts_ns": 0,
    }  # fmt: skip
    value.update(kw)
    return value


def instrument(**kw: object) -> dict:
    value = {
        "security": 700, "name": "TENCENT", "currency": "HKD", "board_lot": 100,
        "spread_table": "01", "prev_close_e3": PRICE_E3, "enabled": True, "ts_ns": 0,
    }  # fmt: skip
    value.update(kw)
    return value


def core() -> RouterCore:
    tables = Tables()
    tables.apply("reference.accounts", account_record())
    return RouterCore(CoreConfig(), tables)


def matcher_report(exec_type: str, status: str, last_qty: int = 0, cum: int = 0) -> dict:
    return {
        "exec_id": f"X{time.perf_counter_ns()}", "venue": "INTERNAL", "order_id": "X0.1",
        "cl_ord_id": "S0.7", "orig_cl_ord_id": None, "parent_id": "p1", "account": "A1",
        "member": "M1", "security": 700, "side": "BUY", "exec_type": exec_type,
        "ord_status": status, "price_e3": PRICE_E3, "order_qty": 1_000,
        "last_px_e3": PRICE_E3 - 500 if last_qty else 0, "last_qty": last_qty, "cum_qty": cum,
        "leaves_qty": 0, "cum_notional_e3": 0, "reject_reason": None, "text": None, "ts_ns": 2,
    }  # fmt: skip


def hkex_report(cl: str, exec_id: str, exec_type: ExecType, last: int, cum: int) -> FixMessage:
    status = OrdStatus.FILLED if cum == 700 else OrdStatus.PARTIALLY_FILLED
    msg = ExecutionReport(
        order_id="1000", cl_ord_id=cl, exec_id=exec_id, exec_type=exec_type,
        ord_status=OrdStatus.NEW if exec_type is ExecType.NEW else status, security_id="700",
        side=Side.BUY, order_qty=700, cum_qty=cum, leaves_qty=700 - cum, transact_time_ns=3,
        price_e3=PRICE_E3, last_px_e3=PRICE_E3 if last else None, last_qty=last or None,
    ).to_fix()  # fmt: skip
    return FixMessage.of(msg.msg_type, *msg.fields[1:])


def test_cl_ord_ids_are_deterministic_numeric_and_reversible() -> None:
    origin = Origin(2, 123_456)
    first = hkex_cl_ord_id(7, origin, Kind.SMART_CHILD)
    assert first == hkex_cl_ord_id(7, Origin(2, 123_456), Kind.SMART_CHILD)
    assert first.isdigit()
    parsed = parse_hkex_cl_ord_id(first)
    assert parsed is not None and (parsed.base, parsed.origin, parsed.kind) == (
        7, origin, Kind.SMART_CHILD,
    )  # fmt: skip
    ids = {
        hkex_cl_ord_id(0, Origin(p, o), kind, i)
        for p in range(3) for o in range(20) for kind in Kind for i in range(3)
    }  # fmt: skip
    assert len(ids) == 3 * 20 * len(Kind) * 3
    assert parse_hkex_cl_ord_id("S0.1") is None


def test_a_request_processed_twice_sends_the_same_order() -> None:
    first, second = core(), core()
    first.request(0, 7, command(route="HKEX", qty=700))
    second.request(0, 7, command(route="HKEX", qty=700))
    (a,), (b,) = first.take()[1], second.take()[1]
    assert NewOrderSingle.from_fix(a) == NewOrderSingle.from_fix(b)


def test_smart_parent_aggregates_internal_and_hkex_fills_exactly() -> None:
    router = core()
    router.request(0, 7, command())
    out, fix, _ = router.take()
    assert [o.topic for o in out] == ["orders.internal", "orders.events", "router.decisions"]
    child = out[0].value
    assert child["cl_ord_id"] == "S0.7" and child["time_in_force"] == "IOC"
    assert child["parent_id"] == "p1" and child["stp"] == "CANCEL_BOTH" and not fix
    router.internal_report(matcher_report("NEW", "NEW"))
    router.internal_report(matcher_report("TRADE", "PARTIALLY_FILLED", 300, 300))
    router.internal_report(matcher_report("EXPIRED", "EXPIRED", 0, 300))
    out, fix, _ = router.take()
    (nos,) = fix
    order = NewOrderSingle.from_fix(nos)
    assert order.order_qty == 700 and order.cl_ord_id == hkex_cl_ord_id(
        0, Origin(0, 7), Kind.SMART_CHILD
    )
    cl = order.cl_ord_id
    router.fix_message(2, hkex_report(cl, "E1", ExecType.NEW, 0, 0))
    router.fix_message(3, hkex_report(cl, "E2", ExecType.TRADE, 400, 400))
    router.fix_message(3, hkex_report(cl, "E2", ExecType.TRADE, 400, 400))  # a replay
    router.fix_message(4, hkex_report(cl, "E3", ExecType.TRADE, 300, 700))
    out, _, dirty = router.take()
    fills = [o.value for o in out if o.topic == "fills"]
    assert [f["exec_id"] for f in fills] == ["E2", "E3"]
    assert all(f["parent_id"] == "p1" and f["sell_account"] == "HKEX.CLEARING" for f in fills)
    parents = [o.value for o in out if o.topic == "orders.events" and o.value["cl_ord_id"] == "p1"]
    final = parents[-1]
    assert (final["ord_status"], final["cum_qty"], final["leaves_qty"]) == ("FILLED", 1_000, 0)
    notional = 300 * (PRICE_E3 - 500) + 700 * PRICE_E3
    assert final["cum_notional_e3"] == notional
    ((key, done),) = dirty  # done: kept (for its ClOrdIDs), no longer open
    assert key == "0.7" and done is not None and not done.open and not router.orders


def test_executions_before_their_request_wait_and_are_applied_once() -> None:
    router = core()
    cl = hkex_cl_ord_id(0, Origin(0, 9), Kind.NEW)
    router.fix_message(5, hkex_report(cl, "E1", ExecType.NEW, 0, 0))
    router.fix_message(6, hkex_report(cl, "E2", ExecType.TRADE, 400, 400))
    assert router.min_orphan_seq() == 5 and not router.take()[0]
    router.request(0, 9, command(route="HKEX", qty=700))
    out, _, _ = router.take()
    assert router.min_orphan_seq() is None
    assert [o.value["exec_id"] for o in out if o.topic == "fills"] == ["E2"]
    # An execution for an order already done (its request processed) is a replay: dropped.
    router.processed[0] = 20
    router.fix_message(7, hkex_report(hkex_cl_ord_id(0, Origin(0, 3), Kind.NEW), "E9",
                                      ExecType.NEW, 0, 0))  # fmt: skip
    assert router.min_orphan_seq() is None
    assert not router.take()[0], "a replay for a finished order emits nothing"
    # The adopted execution delivered again (a resend) is not applied a second time.
    router.fix_message(6, hkex_report(cl, "E2", ExecType.TRADE, 400, 400))
    assert [o for o in router.take()[0] if o.topic == "fills"] == []


def test_duplicate_cl_ord_id_reject_means_already_sent() -> None:
    router = core()
    router.request(0, 1, command(route="HKEX", qty=700))
    router.take()
    cl = hkex_cl_ord_id(0, Origin(0, 1), Kind.NEW)
    reject = ExecutionReport(
        order_id="NONE", cl_ord_id=cl, exec_id="E5", exec_type=ExecType.REJECTED,
        ord_status=OrdStatus.REJECTED, security_id="700", side=Side.BUY, order_qty=700,
        cum_qty=0, leaves_qty=0, transact_time_ns=3, ord_rej_reason=6,
    ).to_fix()  # fmt: skip
    router.fix_message(2, FixMessage.of(reject.msg_type, *reject.fields[1:]))
    assert not router.take()[0] and router.orders["0.1"].status is Status.PENDING_NEW


def test_holds_follow_open_orders_and_rejects_are_reports() -> None:
    router = core()
    router.tables.accounts["A1"] = replace(
        account_limits(
            {
                "account": "A1",
                "member": "M1",
                "credit_line_cents": 6_000_000,
                "cut_loss_cents": -1,
                "max_order_notional_cents": 10**12,
                "allow_short": False,
                "stp": "CANCEL_RESTING",
                "enabled": True,
            }
        )
    )
    router.request(0, 1, command(route="INTERNAL", qty=100, cl_ord_id="a"))
    router.request(0, 2, command(route="INTERNAL", qty=100, cl_ord_id="b"))
    router.request(0, 3, command(route="INTERNAL", qty=100, cl_ord_id="a"))
    out, _, _ = router.take()
    assert [o.topic for o in out if o.topic != "router.decisions"] == [
        "orders.internal", "orders.events", "orders.events",
    ]  # fmt: skip
    assert [o.value["reject_reason"] for o in out if o.topic == "orders.events"] == [
        "INSUFFICIENT_BUYING_POWER", "DUPLICATE_CL_ORD_ID",
    ]  # fmt: skip
    decided = [o.value for o in out if o.topic == "router.decisions"]
    assert [(d["outcome"], d["reject_reason"]) for d in decided] == [
        ("ACCEPTED", None), ("REJECTED", "INSUFFICIENT_BUYING_POWER"),
        ("REJECTED", "DUPLICATE_CL_ORD_ID"),
    ]  # fmt: skip
    assert router.exposure("A1").holds_cents == 5_130_240


def test_status_machine_rejects_illegal_transitions() -> None:
    assert advance(Status.NEW, Status.PARTIALLY_FILLED) is Status.PARTIALLY_FILLED
    with pytest.raises(IllegalTransition):
        advance(Status.FILLED, Status.NEW)
    order = Order("0.1", "A1", "M1", 700, RiskSide.BUY, "LIMIT", "DAY", Route.HKEX, "x",
                  PRICE_E3, 100, PRICE_E3)  # fmt: skip
    with pytest.raises(IllegalTransition):
        traded(order, PRICE_E3, 200)
    done = traded(traded(order, PRICE_E3, 40), PRICE_E3 + 500, 60)
    assert done.status is Status.FILLED and done.leaves_qty == 0
    assert done.cum_notional_e3 == 40 * PRICE_E3 + 60 * (PRICE_E3 + 500)
    assert done.avg_px_e3() == 512_300


def test_an_hkex_message_that_cannot_apply_is_set_aside_and_the_rest_go_on() -> None:
    router = core()
    router.request(0, 1, command(route="HKEX", qty=700))
    router.take()
    cl = hkex_cl_ord_id(0, Origin(0, 1), Kind.NEW)
    router.fix_message(2, hkex_report(cl, "E1", ExecType.TRADE, 400, 400))
    before = router.orders["0.1"]
    holds = router.exposure("A1").holds_cents
    router.take()
    overfill = hkex_report(cl, "E2", ExecType.TRADE, 400, 700)
    router.fix_message(3, overfill)  # 400 + 400 > 700: IllegalTransition stays in the core
    assert router.take() == ([], [], [])
    assert router.orders["0.1"] == before and router.exposure("A1").holds_cents == holds
    ((seq, msg, error),) = router.take_failed_fix()
    assert (seq, msg) == (3, overfill) and error.startswith("IllegalTransition")
    router.fix_message(4, hkex_report(cl, "E3", ExecType.TRADE, 300, 700))
    out, _, dirty = router.take()
    assert [o.value["exec_id"] for o in out if o.topic == "fills"] == ["E3"]
    ((key, done),) = dirty  # a finished order is kept for its ClOrdIDs, not tombstoned
    assert key == "0.1" and done is not None and done.status is Status.FILLED
    assert not router.take_failed_fix()


def test_a_request_that_raises_leaves_nothing_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    router = core()
    for offset in (1, 2):
        router.request(0, offset, command(route="HKEX", qty=700, cl_ord_id=f"h{offset}"))
    router.take()
    before = dict(router.orders), router.exposure("A1")
    calls = []

    def cancel_then_fail(*args: object) -> FixMessage:
        calls.append(args)
        if len(calls) == 2:
            raise RuntimeError("boom")
        return real(*args)  # type: ignore[arg-type]

    real = hkex.cancel_order
    monkeypatch.setattr(hkex, "cancel_order", cancel_then_fail)
    with pytest.raises(RuntimeError, match="boom"):
        router.request(0, 3, command(kind="MASS_CANCEL", route="HKEX", cl_ord_id="m"))
    out, fix, _ = router.take()
    assert not out and not fix and len(calls) == 2  # the first cancel was made, then dropped
    assert (dict(router.orders), router.exposure("A1")) == before
    assert router.processed[0] == 4  # handled: the service dead-letters it


def test_a_board_lot_of_zero_is_a_reference_error_not_a_crash() -> None:
    tables = Tables()
    with pytest.raises(BadReference, match="board_lot"):
        tables.apply("reference.instruments", instrument(board_lot=0))
    assert 700 not in tables.instruments  # fail closed: orders in 700 reject as unknown
    with pytest.raises(BadReference, match="prev_close_e3"):
        tables.apply("reference.instruments", instrument(prev_close_e3=512_001))
    tables.apply("reference.instruments", instrument())
    assert tables.instruments[700].board_lot == 100
    with pytest.raises(BadReference, match="credit_line_cents"):
        tables.apply("reference.accounts", account_record(credit_line_cents=-1))
    assert "A1" not in tables.accounts
