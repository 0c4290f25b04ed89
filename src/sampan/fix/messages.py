"""Typed OCG-C business messages: build a `FixMessage` body from a dataclass and parse it back.

Each message class has `to_fix()` (MsgType plus body fields; the session adds the header) and
`from_fix(msg)`, which raises `FieldError` naming the offending tag when a required field is
missing or malformed, so the receiver can answer with a Reject or BusinessMessageReject.

Guarantees: prices are integers in HK$0.001 (`price_e3`) and cross the wire as decimal strings
("350.200") by integer arithmetic only; `parse_price_e3` refuses a value that would need more
than three decimals rather than round it. Instruments always carry SecurityIDSource 8 and
SecurityExchange XHKG. Times are ns since the epoch, written with millisecond precision.

Limits: only the fields sampan uses; no repeating groups, no parties block.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Self, TypeVar

from sampan.fix.codec import (
    TAG_TEXT,
    FieldError,
    FixMessage,
    format_utc_timestamp,
    parse_utc_timestamp,
)
from sampan.market.money import format_price_e3
from sampan.market.side import Side

TAG_AVG_PX = 6
TAG_CL_ORD_ID = 11
TAG_CUM_QTY = 14
TAG_EXEC_ID = 17
TAG_SECURITY_ID_SOURCE = 22
TAG_LAST_PX = 31
TAG_LAST_QTY = 32
TAG_ORDER_ID = 37
TAG_ORDER_QTY = 38
TAG_ORD_STATUS = 39
TAG_ORD_TYPE = 40
TAG_ORIG_CL_ORD_ID = 41
TAG_PRICE = 44
TAG_REF_SEQ_NUM = 45
TAG_SECURITY_ID = 48
TAG_SIDE = 54
TAG_TIME_IN_FORCE = 59
TAG_TRANSACT_TIME = 60
TAG_CXL_REJ_REASON = 102
TAG_ORD_REJ_REASON = 103
TAG_EXEC_TYPE = 150
TAG_LEAVES_QTY = 151
TAG_SECURITY_EXCHANGE = 207
TAG_BUSINESS_REJECT_REF_ID = 379
TAG_BUSINESS_REJECT_REASON = 380
TAG_REF_MSG_TYPE = 372
TAG_CXL_REJ_RESPONSE_TO = 434
TAG_MAX_PRICE_LEVELS = 1090

SECURITY_ID_SOURCE_EXCHANGE = "8"
SECURITY_EXCHANGE_XHKG = "XHKG"
# HKEX's price fields carry 3 implied decimals; the largest order quantity is 3,000 lots of
# at most 100,000 shares, far below this bound, which only stops absurd values early.
PRICE_DECIMALS = 3
QTY_MAX = 10**12
_PRICE_RE = re.compile(r"(-?)([0-9]{1,12})(?:\.([0-9]{1,9}))?")
_ID_MAX_LEN = 64
# An HKEX limit order with MaxPriceLevels (1090) of 10 is an enhanced limit order: it may take
# up to 10 price queues (the best and 9 spreads beyond). A limit without it, or with 1, is a
# plain limit. (How OCG-C's FIX encoding names the enhanced limit is taken from its order
# type table; verify against the current interface specification before going live.)
ENHANCED_LIMIT_PRICE_LEVELS = 10
_E = TypeVar("_E", bound=enum.StrEnum)


# Side (54) on the wire: a mapping to and from the venue's one `Side`.
SIDE_TO_WIRE = {Side.BUY: "1", Side.SELL: "2", Side.SELL_SHORT: "5"}
SIDE_FROM_WIRE = {code: side for side, code in SIDE_TO_WIRE.items()}


class OrdType(enum.StrEnum):
    MARKET = "1"
    LIMIT = "2"


class TimeInForce(enum.StrEnum):
    DAY = "0"
    IOC = "3"
    FOK = "4"


class ExecType(enum.StrEnum):
    NEW = "0"
    CANCELED = "4"
    REPLACED = "5"
    REJECTED = "8"
    EXPIRED = "C"
    TRADE = "F"
    TRADE_CANCEL = "H"


class OrdStatus(enum.StrEnum):
    NEW = "0"
    PARTIALLY_FILLED = "1"
    FILLED = "2"
    CANCELED = "4"
    PENDING_CANCEL = "6"
    REJECTED = "8"
    EXPIRED = "C"
    PENDING_REPLACE = "E"


class CxlRejResponseTo(enum.StrEnum):
    CANCEL = "1"
    REPLACE = "2"


class BusinessRejectReason(enum.IntEnum):
    OTHER = 0
    UNKNOWN_ID = 1
    UNKNOWN_SECURITY = 2
    UNSUPPORTED_MESSAGE_TYPE = 3
    APPLICATION_NOT_AVAILABLE = 4
    CONDITIONALLY_REQUIRED_FIELD_MISSING = 5
    THROTTLE_EXCEEDED = 8  # OCG-C's figure for a member over its message rate


def parse_price_e3(tag: int, value: str) -> int:
    """Parse "350.2" as 350200. Digits past the third decimal must be zeros: we never round."""
    m = _PRICE_RE.fullmatch(value)
    if m is None:
        raise FieldError(tag, f"not a price: {value[:32]!r}")
    sign: str = m.group(1)
    whole: str = m.group(2)
    frac: str = m.group(3) or ""
    if frac[PRICE_DECIMALS:].strip("0"):
        raise FieldError(tag, f"more than {PRICE_DECIMALS} decimals: {value!r}")
    magnitude: int = int(whole) * 10**PRICE_DECIMALS + int(frac[:PRICE_DECIMALS].ljust(3, "0"))
    return -magnitude if sign else magnitude


def _qty(msg: FixMessage, tag: int) -> int:
    q = msg.require_int(tag)
    if not 0 <= q <= QTY_MAX:
        raise FieldError(tag, f"quantity {q} out of range")
    return q


def _opt_qty(msg: FixMessage, tag: int) -> int | None:
    return None if msg.get(tag) is None else _qty(msg, tag)


def _opt_price(msg: FixMessage, tag: int) -> int | None:
    value = msg.get(tag)
    return None if value is None else parse_price_e3(tag, value)


def _id(msg: FixMessage, tag: int) -> str:
    value = msg.require(tag)
    if len(value) > _ID_MAX_LEN:
        raise FieldError(tag, f"longer than {_ID_MAX_LEN} characters")
    return value


def _enum(msg: FixMessage, tag: int, kind: type[_E]) -> _E:
    value = msg.require(tag)
    try:
        return kind(value)
    except ValueError:
        raise FieldError(tag, f"unsupported value {value[:8]!r}") from None


def _side(msg: FixMessage) -> Side:
    value = msg.require(TAG_SIDE)
    side = SIDE_FROM_WIRE.get(value)
    if side is None:
        raise FieldError(TAG_SIDE, f"unsupported value {value[:8]!r}")
    return side


def _instrument(security_id: str) -> tuple[tuple[int, str], ...]:
    return (
        (TAG_SECURITY_ID, security_id),
        (TAG_SECURITY_ID_SOURCE, SECURITY_ID_SOURCE_EXCHANGE),
        (TAG_SECURITY_EXCHANGE, SECURITY_EXCHANGE_XHKG),
    )


def _security_id(msg: FixMessage) -> str:
    source = msg.get(TAG_SECURITY_ID_SOURCE)
    if source is not None and source != SECURITY_ID_SOURCE_EXCHANGE:
        raise FieldError(TAG_SECURITY_ID_SOURCE, "SecurityIDSource must be 8")
    exchange = msg.get(TAG_SECURITY_EXCHANGE)
    if exchange is not None and exchange != SECURITY_EXCHANGE_XHKG:
        raise FieldError(TAG_SECURITY_EXCHANGE, "SecurityExchange must be XHKG")
    return _id(msg, TAG_SECURITY_ID)


def _expect_type(msg: FixMessage, msg_type: str) -> None:
    if msg.msg_type != msg_type:
        raise FieldError(35, f"expected MsgType {msg_type}, got {msg.msg_type}")


def _optional(*pairs: tuple[int, str | None]) -> tuple[tuple[int, str], ...]:
    return tuple((t, v) for t, v in pairs if v is not None)


@dataclass(frozen=True, slots=True)
class NewOrderSingle:
    cl_ord_id: str
    security_id: str
    side: Side
    ord_type: OrdType
    order_qty: int
    price_e3: int | None  # required for limit orders, absent for market orders
    time_in_force: TimeInForce
    transact_time_ns: int
    max_price_levels: int | None = None  # ENHANCED_LIMIT_PRICE_LEVELS: an enhanced limit

    MSG_TYPE = "D"

    def to_fix(self) -> FixMessage:
        return FixMessage.of(
            self.MSG_TYPE,
            (TAG_CL_ORD_ID, self.cl_ord_id),
            *_instrument(self.security_id),
            (TAG_SIDE, SIDE_TO_WIRE[self.side]),
            (TAG_ORD_TYPE, self.ord_type),
            (TAG_ORDER_QTY, str(self.order_qty)),
            *_optional(
                (TAG_PRICE, _fmt_opt_price(self.price_e3)),
                (TAG_MAX_PRICE_LEVELS, _fmt_opt_int(self.max_price_levels)),
            ),
            (TAG_TIME_IN_FORCE, self.time_in_force),
            (TAG_TRANSACT_TIME, format_utc_timestamp(self.transact_time_ns)),
        )

    @classmethod
    def from_fix(cls, msg: FixMessage) -> Self:
        _expect_type(msg, cls.MSG_TYPE)
        ord_type = _enum(msg, TAG_ORD_TYPE, OrdType)
        price_e3 = _opt_price(msg, TAG_PRICE)
        if ord_type is OrdType.LIMIT and price_e3 is None:
            raise FieldError(TAG_PRICE, "required field missing")
        return cls(
            cl_ord_id=_id(msg, TAG_CL_ORD_ID),
            security_id=_security_id(msg),
            side=_side(msg),
            ord_type=ord_type,
            order_qty=_qty(msg, TAG_ORDER_QTY),
            price_e3=price_e3,
            time_in_force=_time_in_force(msg),
            transact_time_ns=_transact_time(msg),
            max_price_levels=msg.get_int(TAG_MAX_PRICE_LEVELS),
        )


@dataclass(frozen=True, slots=True)
class OrderCancelRequest:
    cl_ord_id: str
    orig_cl_ord_id: str
    security_id: str
    side: Side
    transact_time_ns: int
    order_id: str | None = None

    MSG_TYPE = "F"

    def to_fix(self) -> FixMessage:
        return FixMessage.of(
            self.MSG_TYPE,
            (TAG_CL_ORD_ID, self.cl_ord_id),
            (TAG_ORIG_CL_ORD_ID, self.orig_cl_ord_id),
            *_optional((TAG_ORDER_ID, self.order_id)),
            *_instrument(self.security_id),
            (TAG_SIDE, SIDE_TO_WIRE[self.side]),
            (TAG_TRANSACT_TIME, format_utc_timestamp(self.transact_time_ns)),
        )

    @classmethod
    def from_fix(cls, msg: FixMessage) -> Self:
        _expect_type(msg, cls.MSG_TYPE)
        return cls(
            cl_ord_id=_id(msg, TAG_CL_ORD_ID),
            orig_cl_ord_id=_id(msg, TAG_ORIG_CL_ORD_ID),
            security_id=_security_id(msg),
            side=_side(msg),
            transact_time_ns=_transact_time(msg),
            order_id=msg.get(TAG_ORDER_ID),
        )


@dataclass(frozen=True, slots=True)
class OrderCancelReplaceRequest:
    cl_ord_id: str
    orig_cl_ord_id: str
    security_id: str
    side: Side
    ord_type: OrdType
    order_qty: int
    price_e3: int | None
    time_in_force: TimeInForce
    transact_time_ns: int
    order_id: str | None = None

    MSG_TYPE = "G"

    def to_fix(self) -> FixMessage:
        return FixMessage.of(
            self.MSG_TYPE,
            (TAG_CL_ORD_ID, self.cl_ord_id),
            (TAG_ORIG_CL_ORD_ID, self.orig_cl_ord_id),
            *_optional((TAG_ORDER_ID, self.order_id)),
            *_instrument(self.security_id),
            (TAG_SIDE, SIDE_TO_WIRE[self.side]),
            (TAG_ORD_TYPE, self.ord_type),
            (TAG_ORDER_QTY, str(self.order_qty)),
            *_optional((TAG_PRICE, _fmt_opt_price(self.price_e3))),
            (TAG_TIME_IN_FORCE, self.time_in_force),
            (TAG_TRANSACT_TIME, format_utc_timestamp(self.transact_time_ns)),
        )

    @classmethod
    def from_fix(cls, msg: FixMessage) -> Self:
        _expect_type(msg, cls.MSG_TYPE)
        ord_type = _enum(msg, TAG_ORD_TYPE, OrdType)
        price_e3 = _opt_price(msg, TAG_PRICE)
        if ord_type is OrdType.LIMIT and price_e3 is None:
            raise FieldError(TAG_PRICE, "required field missing")
        return cls(
            cl_ord_id=_id(msg, TAG_CL_ORD_ID),
            orig_cl_ord_id=_id(msg, TAG_ORIG_CL_ORD_ID),
            security_id=_security_id(msg),
            side=_side(msg),
            ord_type=ord_type,
            order_qty=_qty(msg, TAG_ORDER_QTY),
            price_e3=price_e3,
            time_in_force=_time_in_force(msg),
            transact_time_ns=_transact_time(msg),
            order_id=msg.get(TAG_ORDER_ID),
        )


@dataclass(frozen=True, slots=True)
class ExecutionReport:
    order_id: str
    cl_ord_id: str
    exec_id: str
    exec_type: ExecType
    ord_status: OrdStatus
    security_id: str
    side: Side
    # OrderQty (38) and TransactTime (60) are optional in an FIX 5.0 SP2 ExecutionReport.
    order_qty: int | None
    cum_qty: int
    leaves_qty: int
    transact_time_ns: int | None
    price_e3: int | None = None
    last_px_e3: int | None = None  # set on trades (ExecType F / H)
    last_qty: int | None = None
    avg_px_e3: int | None = None  # the sender rounds to HK$0.001 and says how
    orig_cl_ord_id: str | None = None
    ord_rej_reason: int | None = None
    text: str | None = None

    MSG_TYPE = "8"

    def to_fix(self) -> FixMessage:
        return FixMessage.of(
            self.MSG_TYPE,
            (TAG_ORDER_ID, self.order_id),
            (TAG_CL_ORD_ID, self.cl_ord_id),
            *_optional((TAG_ORIG_CL_ORD_ID, self.orig_cl_ord_id)),
            (TAG_EXEC_ID, self.exec_id),
            (TAG_EXEC_TYPE, self.exec_type),
            (TAG_ORD_STATUS, self.ord_status),
            *_instrument(self.security_id),
            (TAG_SIDE, SIDE_TO_WIRE[self.side]),
            *_optional(
                (TAG_ORDER_QTY, _fmt_opt_int(self.order_qty)),
                (TAG_PRICE, _fmt_opt_price(self.price_e3)),
                (TAG_LAST_PX, _fmt_opt_price(self.last_px_e3)),
                (TAG_LAST_QTY, _fmt_opt_int(self.last_qty)),
            ),
            (TAG_CUM_QTY, str(self.cum_qty)),
            (TAG_LEAVES_QTY, str(self.leaves_qty)),
            *_optional(
                (TAG_AVG_PX, _fmt_opt_price(self.avg_px_e3)),
                (TAG_ORD_REJ_REASON, _fmt_opt_int(self.ord_rej_reason)),
                (TAG_TRANSACT_TIME, _fmt_opt_time(self.transact_time_ns)),
                (TAG_TEXT, self.text),
            ),
        )

    @classmethod
    def from_fix(cls, msg: FixMessage) -> Self:
        _expect_type(msg, cls.MSG_TYPE)
        exec_type = _enum(msg, TAG_EXEC_TYPE, ExecType)
        last_px_e3 = _opt_price(msg, TAG_LAST_PX)
        last_qty = _opt_qty(msg, TAG_LAST_QTY)
        if exec_type is ExecType.TRADE and (last_px_e3 is None or last_qty is None):
            tag = TAG_LAST_PX if last_px_e3 is None else TAG_LAST_QTY
            raise FieldError(tag, "required field missing")
        return cls(
            order_id=_id(msg, TAG_ORDER_ID),
            cl_ord_id=_id(msg, TAG_CL_ORD_ID),
            exec_id=_id(msg, TAG_EXEC_ID),
            exec_type=exec_type,
            ord_status=_enum(msg, TAG_ORD_STATUS, OrdStatus),
            security_id=_security_id(msg),
            side=_side(msg),
            order_qty=_opt_qty(msg, TAG_ORDER_QTY),
            cum_qty=_qty(msg, TAG_CUM_QTY),
            leaves_qty=_qty(msg, TAG_LEAVES_QTY),
            transact_time_ns=_opt_transact_time(msg),
            price_e3=_opt_price(msg, TAG_PRICE),
            last_px_e3=last_px_e3,
            last_qty=last_qty,
            avg_px_e3=_opt_price(msg, TAG_AVG_PX),
            orig_cl_ord_id=msg.get(TAG_ORIG_CL_ORD_ID),
            ord_rej_reason=msg.get_int(TAG_ORD_REJ_REASON),
            text=msg.get(TAG_TEXT),
        )


@dataclass(frozen=True, slots=True)
class OrderCancelReject:
    order_id: str  # "NONE" when the order is unknown, as FIX prescribes
    cl_ord_id: str
    orig_cl_ord_id: str
    ord_status: OrdStatus
    response_to: CxlRejResponseTo
    cxl_rej_reason: int | None = None
    text: str | None = None

    MSG_TYPE = "9"

    def to_fix(self) -> FixMessage:
        return FixMessage.of(
            self.MSG_TYPE,
            (TAG_ORDER_ID, self.order_id),
            (TAG_CL_ORD_ID, self.cl_ord_id),
            (TAG_ORIG_CL_ORD_ID, self.orig_cl_ord_id),
            (TAG_ORD_STATUS, self.ord_status),
            (TAG_CXL_REJ_RESPONSE_TO, self.response_to),
            *_optional(
                (TAG_CXL_REJ_REASON, _fmt_opt_int(self.cxl_rej_reason)), (TAG_TEXT, self.text)
            ),
        )

    @classmethod
    def from_fix(cls, msg: FixMessage) -> Self:
        _expect_type(msg, cls.MSG_TYPE)
        return cls(
            order_id=_id(msg, TAG_ORDER_ID),
            cl_ord_id=_id(msg, TAG_CL_ORD_ID),
            orig_cl_ord_id=_id(msg, TAG_ORIG_CL_ORD_ID),
            ord_status=_enum(msg, TAG_ORD_STATUS, OrdStatus),
            response_to=_enum(msg, TAG_CXL_REJ_RESPONSE_TO, CxlRejResponseTo),
            cxl_rej_reason=msg.get_int(TAG_CXL_REJ_REASON),
            text=msg.get(TAG_TEXT),
        )


@dataclass(frozen=True, slots=True)
class BusinessMessageReject:
    ref_msg_type: str
    business_reject_reason: int
    ref_seq_num: int | None = None
    business_reject_ref_id: str | None = None  # e.g. the ClOrdID of the rejected order
    text: str | None = None

    MSG_TYPE = "j"

    def to_fix(self) -> FixMessage:
        return FixMessage.of(
            self.MSG_TYPE,
            *_optional((TAG_REF_SEQ_NUM, _fmt_opt_int(self.ref_seq_num))),
            (TAG_REF_MSG_TYPE, self.ref_msg_type),
            *_optional((TAG_BUSINESS_REJECT_REF_ID, self.business_reject_ref_id)),
            (TAG_BUSINESS_REJECT_REASON, str(self.business_reject_reason)),
            *_optional((TAG_TEXT, self.text)),
        )

    @classmethod
    def from_fix(cls, msg: FixMessage) -> Self:
        _expect_type(msg, cls.MSG_TYPE)
        return cls(
            ref_msg_type=msg.require(TAG_REF_MSG_TYPE),
            business_reject_reason=msg.require_int(TAG_BUSINESS_REJECT_REASON),
            ref_seq_num=msg.get_int(TAG_REF_SEQ_NUM),
            business_reject_ref_id=msg.get(TAG_BUSINESS_REJECT_REF_ID),
            text=msg.get(TAG_TEXT),
        )

    @classmethod
    def answering(
        cls, msg: FixMessage, reason: BusinessRejectReason, text: str
    ) -> BusinessMessageReject:
        """The reject for an inbound business message we cannot act on."""
        return cls(
            ref_msg_type=msg.msg_type,
            business_reject_reason=int(reason),
            ref_seq_num=msg.msg_seq_num,
            business_reject_ref_id=msg.get(TAG_CL_ORD_ID),
            text=text[:200],
        )


BusinessMessage = (
    NewOrderSingle
    | OrderCancelRequest
    | OrderCancelReplaceRequest
    | ExecutionReport
    | OrderCancelReject
    | BusinessMessageReject
)
_PARSERS: dict[str, type[BusinessMessage]] = {
    c.MSG_TYPE: c
    for c in (
        NewOrderSingle,
        OrderCancelRequest,
        OrderCancelReplaceRequest,
        ExecutionReport,
        OrderCancelReject,
        BusinessMessageReject,
    )
}


def parse_business(msg: FixMessage) -> BusinessMessage:
    """Parse any supported business message; `FieldError` (tag 35) for unsupported types."""
    parser = _PARSERS.get(msg.msg_type)
    if parser is None:
        raise FieldError(35, f"unsupported MsgType {msg.msg_type!r}")
    return parser.from_fix(msg)


def _time_in_force(msg: FixMessage) -> TimeInForce:
    # FIX's default for an absent TimeInForce is Day.
    return (
        TimeInForce.DAY
        if msg.get(TAG_TIME_IN_FORCE) is None
        else _enum(msg, TAG_TIME_IN_FORCE, TimeInForce)
    )


def _transact_time(msg: FixMessage) -> int:
    return parse_utc_timestamp(TAG_TRANSACT_TIME, msg.require(TAG_TRANSACT_TIME))


def _opt_transact_time(msg: FixMessage) -> int | None:
    value = msg.get(TAG_TRANSACT_TIME)
    return None if value is None else parse_utc_timestamp(TAG_TRANSACT_TIME, value)


def _fmt_opt_time(ts_ns: int | None) -> str | None:
    return None if ts_ns is None else format_utc_timestamp(ts_ns)


def _fmt_opt_price(price_e3: int | None) -> str | None:
    return None if price_e3 is None else format_price_e3(price_e3)


def _fmt_opt_int(value: int | None) -> str | None:
    return None if value is None else str(value)
