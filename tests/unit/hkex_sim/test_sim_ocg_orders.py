"""Order entry's business core without sockets: the real simulated market, FIX messages in."""

from __future__ import annotations

import pytest

from sampan.fix.codec import FixMessage
from sampan.fix.messages import (
    BusinessMessageReject,
    CxlRejResponseTo,
    ExecType,
    ExecutionReport,
    NewOrderSingle,
    OrderCancelReject,
    OrderCancelReplaceRequest,
    OrderCancelRequest,
    OrdStatus,
    OrdType,
    Side,
    TimeInForce,
)
from sampan.hkex_sim.market import MAKER_ACCOUNT, MAKER_MEMBER, ListedSecurity, Market
from sampan.hkex_sim.ocg_ids import ID_RUN_SPAN, ClOrdIdMemory, IdAllocator
from sampan.hkex_sim.ocg_orders import FirmOrderEntry, Outbound
from sampan.matching import Side as MSide

T0 = 1_767_323_045_000_000_000
S = 1_000_000_000
HSBC = ListedSecurity(5, "HSBC HOLDINGS", 400, 98_550)


class Firm:
    def __init__(self, throttle_per_s: int = 0, comp_id: str = "SAMPAN") -> None:
        self.market = Market([HSBC])
        self.out: list[Outbound] = []
        self.entry = FirmOrderEntry(
            comp_id,
            self.market,
            IdAllocator(3),
            self.out.append,
            throttle_per_s=throttle_per_s,
        )
        self.now = T0

    def send(self, msg: NewOrderSingle | OrderCancelRequest | OrderCancelReplaceRequest) -> list:
        self.out.clear()
        self.entry.on_message(msg.to_fix(), self.now)
        return list(self.out)

    def maker(self, side: MSide, qty: int, price_e3: int) -> list:
        self.out.clear()
        self.market.place(
            ts_ns=self.now,
            security=5,
            account=MAKER_ACCOUNT,
            member=MAKER_MEMBER,
            side=side,
            qty=qty,
            price_e3=price_e3,
        )
        return list(self.out)


def nos(
    cl: str, qty: int = 400, price_e3: int | None = 98_550, side: Side = Side.BUY, **kw: object
) -> NewOrderSingle:
    fields: dict = dict(
        cl_ord_id=cl,
        security_id="5",
        side=side,
        ord_type=OrdType.LIMIT,
        order_qty=qty,
        price_e3=price_e3,
        time_in_force=TimeInForce.DAY,
        transact_time_ns=T0,
    )
    fields.update(kw)
    return NewOrderSingle(**fields)


def cancel(cl: str, orig: str, side: Side = Side.BUY) -> OrderCancelRequest:
    return OrderCancelRequest(cl, orig, "5", side, T0)


def replace(cl: str, orig: str, qty: int, price_e3: int) -> OrderCancelReplaceRequest:
    return OrderCancelReplaceRequest(
        cl, orig, "5", Side.BUY, OrdType.LIMIT, qty, price_e3, TimeInForce.DAY, T0
    )


def er(out: list, i: int = 0) -> ExecutionReport:
    item = out[i]
    assert isinstance(item, ExecutionReport), item
    return item


def test_new_order_rests_and_ids_have_the_documented_format() -> None:
    f = Firm()
    (new,) = f.send(nos("1"))
    assert (new.exec_type, new.ord_status, new.leaves_qty, new.cum_qty) == (
        ExecType.NEW,
        OrdStatus.NEW,
        400,
        0,
    )
    assert new.order_id == str(3 * ID_RUN_SPAN + 1) and new.exec_id == str(3 * ID_RUN_SPAN + 1)
    assert new.security_id == "5" and new.price_e3 == 98_550
    assert f.entry.open_order_count() == 1
    # Round trip through FIX text: what the client parses is what we built.
    assert ExecutionReport.from_fix(new.to_fix()) == new


def test_aggressive_order_trades_with_last_px_qty_and_avg_px() -> None:
    f = Firm()
    f.maker(MSide.SELL, 400, 98_550)
    f.maker(MSide.SELL, 400, 98_600)
    out = f.send(nos("1", qty=800, price_e3=98_600, ord_type=OrdType.LIMIT))
    # HKEX limit orders match only at the best price: 98.600 is through the best, rejected.
    assert er(out).exec_type is ExecType.REJECTED and er(out).ord_rej_reason == 16
    out = f.send(nos("2", qty=800, price_e3=98_550))
    assert [r.exec_type for r in out] == [ExecType.NEW, ExecType.TRADE]
    trade = er(out, 1)
    assert (trade.last_px_e3, trade.last_qty, trade.cum_qty, trade.leaves_qty) == (
        98_550,
        400,
        400,
        400,
    )
    assert trade.ord_status is OrdStatus.PARTIALLY_FILLED and trade.avg_px_e3 == 98_550
    assert len({r.exec_id for r in out}) == 2


def test_resting_order_hit_by_someone_else_is_reported() -> None:
    f = Firm()
    f.send(nos("1", side=Side.SELL, qty=800))
    out = f.maker(MSide.BUY, 400, 98_550)
    (trade,) = out
    assert trade.exec_type is ExecType.TRADE and trade.side is Side.SELL
    assert (trade.cl_ord_id, trade.last_qty, trade.leaves_qty) == ("1", 400, 400)
    (trade2,) = f.maker(MSide.BUY, 400, 98_550)
    assert trade2.ord_status is OrdStatus.FILLED and trade2.cum_qty == 800
    assert f.entry.open_order_count() == 0


def test_avg_px_is_volume_weighted_over_the_order_life() -> None:
    f = Firm()
    f.send(nos("1", qty=800, price_e3=98_550))
    f.maker(MSide.SELL, 400, 98_550)
    f.maker(MSide.SELL, 400, 98_600)
    out = f.send(replace("2", "1", 800, 98_600))
    assert [r.exec_type for r in out] == [ExecType.REPLACED, ExecType.TRADE]
    assert er(out, 1).ord_status is OrdStatus.FILLED
    assert er(out, 1).avg_px_e3 == 98_575  # (98.550 x 400 + 98.600 x 400) / 800


def test_duplicate_cl_ord_id_is_rejected_and_changes_nothing() -> None:
    f = Firm()
    f.send(nos("7"))
    (dup,) = f.send(nos("7", qty=800))
    assert dup.exec_type is ExecType.REJECTED and dup.ord_rej_reason == 6
    assert dup.order_id == "NONE" and f.entry.open_order_count() == 1
    (cxl_dup,) = f.send(cancel("7", "7"))
    assert isinstance(cxl_dup, OrderCancelReject) and cxl_dup.cxl_rej_reason == 6
    assert f.entry.open_order_count() == 1


def test_cl_ord_ids_persist_across_a_restart(tmp_path) -> None:  # type: ignore[no-untyped-def]
    memory = ClOrdIdMemory(tmp_path)
    memory.add("1")
    memory.add("2")
    with open(tmp_path / "clordids.log", "a") as f:
        f.write("3")  # a torn append: never acknowledged, so forgotten
    again = ClOrdIdMemory(tmp_path)
    assert "1" in again and "2" in again and "3" not in again
    full = ClOrdIdMemory(None, ids_max=1)
    full.add("x")
    assert full.full


def test_throttle_rejects_with_reason_8_and_resets_next_second() -> None:
    f = Firm(throttle_per_s=2)
    assert er(f.send(nos("1"))).exec_type is ExecType.NEW
    assert er(f.send(nos("2"))).exec_type is ExecType.NEW
    (reject,) = f.send(nos("3"))
    assert isinstance(reject, BusinessMessageReject)
    assert (reject.business_reject_reason, reject.business_reject_ref_id) == (8, "3")
    f.now += S
    # The throttled message did not consume its ClOrdID.
    assert er(f.send(nos("3"))).exec_type is ExecType.NEW


def test_cancel_reports_canceled_with_both_cl_ord_ids() -> None:
    f = Firm()
    order_id = er(f.send(nos("1"))).order_id
    (done,) = f.send(cancel("2", "1"))
    assert (done.exec_type, done.ord_status, done.cl_ord_id, done.orig_cl_ord_id) == (
        ExecType.CANCELED,
        OrdStatus.CANCELED,
        "2",
        "1",
    )
    assert done.order_id == order_id and done.leaves_qty == 0
    (late,) = f.send(cancel("3", "1"))
    assert isinstance(late, OrderCancelReject)
    assert (late.cxl_rej_reason, late.ord_status, late.response_to) == (
        0,
        OrdStatus.CANCELED,
        CxlRejResponseTo.CANCEL,
    )
    (unknown,) = f.send(cancel("4", "nope"))
    assert isinstance(unknown, OrderCancelReject)
    assert (unknown.order_id, unknown.cxl_rej_reason) == ("NONE", 1)


def test_replace_keeps_order_id_on_qty_down_and_takes_a_new_one_otherwise() -> None:
    f = Firm()
    first = er(f.send(nos("1", qty=1200)))
    (down,) = f.send(replace("2", "1", 800, 98_550))
    assert down.exec_type is ExecType.REPLACED and down.order_id == first.order_id
    assert (down.cl_ord_id, down.orig_cl_ord_id, down.order_qty) == ("2", "1", 800)
    (moved,) = f.send(replace("3", "2", 800, 98_500))
    assert moved.order_id != first.order_id and moved.price_e3 == 98_500
    (no_change,) = f.send(replace("4", "3", 800, 98_500))
    assert isinstance(no_change, OrderCancelReject)
    assert no_change.response_to is CxlRejResponseTo.REPLACE
    assert no_change.text == "amend_no_change"
    # A replace that becomes marketable trades at once under the new ClOrdID.
    f.maker(MSide.SELL, 400, 98_550)
    out = f.send(replace("5", "3", 800, 98_550))
    assert [r.exec_type for r in out] == [ExecType.REPLACED, ExecType.TRADE]
    assert er(out, 1).cl_ord_id == "5" and er(out, 1).order_id == er(out, 0).order_id


def test_cancel_all_cancels_every_open_order() -> None:
    f = Firm()
    f.send(nos("1"))
    f.send(nos("2", price_e3=98_500))
    f.out.clear()
    f.entry.cancel_all(f.now)
    assert sorted((r.exec_type, r.cl_ord_id, r.orig_cl_ord_id) for r in f.out) == [
        (ExecType.CANCELED, "1", None),
        (ExecType.CANCELED, "2", None),
    ]
    assert all(er(f.out, i).text == "mass_cancel" for i in range(2))
    assert f.entry.open_order_count() == 0
    f.out.clear()
    f.entry.cancel_all(f.now)
    assert f.out == []


@pytest.mark.parametrize(
    ("order", "reason"),
    [
        (nos("1", security_id="99998"), 1),
        (nos("1", security_id="abc"), 1),
        (nos("1", qty=100), 13),
        (nos("1", price_e3=98_551), 18),  # FIX 5.0 SP2: invalid price increment
        (nos("1", ord_type=OrdType.MARKET, price_e3=None, time_in_force=TimeInForce.IOC), 11),
    ],
)
def test_new_order_rejects_carry_a_reason(order: NewOrderSingle, reason: int) -> None:
    (reject,) = Firm().send(order)
    assert reject.exec_type is ExecType.REJECTED and reject.ord_rej_reason == reason
    assert reject.text


def test_unsupported_or_malformed_business_messages_get_business_message_reject() -> None:
    f = Firm()
    f.entry.on_message(FixMessage.of("AE", (571, "x")), T0)
    f.entry.on_message(FixMessage.of("D", (11, "1"), (48, "5")), T0)
    report = er(
        [
            ExecutionReport(
                "1", "1", "1", ExecType.NEW, OrdStatus.NEW, "5", Side.BUY, 400, 0, 400, T0
            )
        ]
    )
    f.entry.on_message(report.to_fix(), T0)
    rejects = f.out
    assert [type(r) for r in rejects] == [BusinessMessageReject] * 3
    assert [r.business_reject_reason for r in rejects] == [3, 5, 3]  # type: ignore[union-attr]


def test_admin_commands_reject_malformed_input() -> None:
    from sampan.hkex_sim.ocg_admin import admin_command
    from sampan.hkex_sim.ocg_gateway import FirmConfig, Gateway, GatewayConfig

    gateway = Gateway(GatewayConfig((FirmConfig("SAMPAN", "SAMPANDC"),)), Market([HSBC]))
    assert admin_command(gateway, "")[0].startswith("ERR")
    assert admin_command(gateway, "LOSE SAMPAN x")[0].startswith("ERR")
    assert admin_command(gateway, "LOSE SAMPAN 99999999")[0].startswith("ERR")
    assert admin_command(gateway, "CUT SAMPAN") == ["ERR SAMPAN is not connected"]
    assert admin_command(gateway, "CUT NOBODY")[0].startswith("ERR")
    assert admin_command(gateway, "lose SAMPAN 2") == ["OK lose SAMPAN 2"]
    assert "lose_pending=2" in admin_command(gateway, "STATUS")[1]


def test_a_non_numeric_cl_ord_id_is_refused_and_not_consumed() -> None:
    f = Firm()
    (reject,) = f.send(nos("A1"))
    assert reject.exec_type is ExecType.REJECTED and reject.ord_rej_reason == 99
    assert "numeric" in (reject.text or "") and f.entry.open_order_count() == 0
    (refused,) = f.send(cancel("B2", "A1"))
    assert isinstance(refused, OrderCancelReject) and "numeric" in (refused.text or "")
    (new,) = f.send(nos("1"))
    assert new.exec_type is ExecType.NEW


def test_max_price_levels_10_is_an_enhanced_limit_that_takes_ten_queues() -> None:
    f = Firm()
    f.maker(MSide.SELL, 400, 98_550)
    f.maker(MSide.SELL, 400, 98_600)
    # A plain limit priced through the best ask is refused; the enhanced limit walks the book
    # to its price and rests the rest there.
    through = nos("1", qty=1_200, price_e3=98_600)
    assert er(f.send(through)).ord_rej_reason == 16
    out = f.send(nos("2", qty=1_200, price_e3=98_600, max_price_levels=10))
    trades = [r for r in out if r.exec_type is ExecType.TRADE]
    assert [(t.last_px_e3, t.last_qty) for t in trades] == [(98_550, 400), (98_600, 400)]
    assert out[-1].leaves_qty == 400 and f.entry.open_order_count() == 1
    assert NewOrderSingle.from_fix(nos("3", max_price_levels=10).to_fix()).max_price_levels == 10
    (odd,) = f.send(nos("4", max_price_levels=5))
    assert odd.exec_type is ExecType.REJECTED and odd.ord_rej_reason == 11
