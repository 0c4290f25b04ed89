"""Business messages: integer prices on the wire, round trips, typed parse errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sampan.fix.codec import FieldError, FixMessage, decode_one, encode
from sampan.fix.messages import (
    BusinessMessageReject,
    BusinessRejectReason,
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
    format_price_e3,
    parse_business,
    parse_price_e3,
)

TS = 1_767_323_045_006_000_000


@pytest.mark.parametrize(
    ("price_e3", "text"),
    [(350_200, "350.200"), (1, "0.001"), (0, "0.000"), (9_995_000, "9995.000"), (-5, "-0.005")],
)
def test_price_format(price_e3: int, text: str) -> None:
    assert format_price_e3(price_e3) == text
    assert parse_price_e3(44, text) == price_e3


@pytest.mark.parametrize(
    ("text", "price_e3"), [("350.2", 350_200), ("350", 350_000), ("0.0010", 1)]
)
def test_price_parse_accepts_short_and_zero_padded(text: str, price_e3: int) -> None:
    assert parse_price_e3(44, text) == price_e3


@pytest.mark.parametrize("text", ["350.2001", "1e3", "", "abc", "1.2.3", "nan"])
def test_price_parse_refuses_what_it_cannot_represent(text: str) -> None:
    with pytest.raises(FieldError):
        parse_price_e3(44, text)


@given(st.integers(-(10**12), 10**12))
def test_price_roundtrip(price_e3: int) -> None:
    assert parse_price_e3(44, format_price_e3(price_e3)) == price_e3


MESSAGES = [
    NewOrderSingle("1001", "700", Side.BUY, OrdType.LIMIT, 100, 350_200, TimeInForce.DAY, TS),
    NewOrderSingle("1002", "5", Side.SELL, OrdType.MARKET, 400, None, TimeInForce.IOC, TS),
    OrderCancelRequest("1003", "1001", "700", Side.BUY, TS, order_id="O1"),
    OrderCancelReplaceRequest(
        "1004", "1001", "700", Side.BUY, OrdType.LIMIT, 200, 350_400, TimeInForce.DAY, TS
    ),
    ExecutionReport(
        "O1",
        "1001",
        "E1",
        ExecType.TRADE,
        OrdStatus.PARTIALLY_FILLED,
        "700",
        Side.BUY,
        order_qty=200,
        cum_qty=100,
        leaves_qty=100,
        transact_time_ns=TS,
        price_e3=350_400,
        last_px_e3=350_200,
        last_qty=100,
        avg_px_e3=350_200,
    ),
    ExecutionReport(
        "NONE",
        "1005",
        "E2",
        ExecType.REJECTED,
        OrdStatus.REJECTED,
        "700",
        Side.SELL_SHORT,
        order_qty=100,
        cum_qty=0,
        leaves_qty=0,
        transact_time_ns=TS,
        ord_rej_reason=99,
        text="price outside collar",
    ),
    OrderCancelReject("O1", "1006", "1001", OrdStatus.FILLED, CxlRejResponseTo.CANCEL, 0, "late"),
    BusinessMessageReject("D", 8, ref_seq_num=17, business_reject_ref_id="1007", text="throttle"),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_roundtrip_through_the_wire(message: object) -> None:
    fix = message.to_fix()  # type: ignore[attr-defined]
    assert parse_business(decode_one(encode(fix))) == message


def test_new_order_wire_fields() -> None:
    fix = MESSAGES[0].to_fix()
    assert (fix.msg_type, fix.get(44), fix.get(22), fix.get(207), fix.get(54)) == (
        "D",
        "350.200",
        "8",
        "XHKG",
        "1",
    )
    assert fix.get(60) == "20260102-03:04:05.006"


def test_limit_order_without_price_is_refused() -> None:
    fix = MESSAGES[0].to_fix().without(44)
    with pytest.raises(FieldError) as exc:
        NewOrderSingle.from_fix(fix)
    assert exc.value.tag == 44


def test_bad_enum_and_exchange_are_typed_errors() -> None:
    fix = MESSAGES[0].to_fix()
    bad_side = FixMessage(tuple((t, "9" if t == 54 else v) for t, v in fix.fields))
    with pytest.raises(FieldError) as exc:
        NewOrderSingle.from_fix(bad_side)
    assert exc.value.tag == 54
    bad_exchange = FixMessage(tuple((t, "XNYS" if t == 207 else v) for t, v in fix.fields))
    with pytest.raises(FieldError):
        NewOrderSingle.from_fix(bad_exchange)


def test_unsupported_type_and_business_reject_helper() -> None:
    msg = FixMessage.of("AE", (34, "9"), (11, "42"))
    with pytest.raises(FieldError):
        parse_business(msg)
    reject = BusinessMessageReject.answering(
        msg, BusinessRejectReason.UNSUPPORTED_MESSAGE_TYPE, "no trade capture"
    )
    assert (reject.ref_msg_type, reject.ref_seq_num, reject.business_reject_ref_id) == (
        "AE",
        9,
        "42",
    )
