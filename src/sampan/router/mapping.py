"""Between the records the router reads and its core: a request becomes a typed command where
it enters, or a refusal with a reason; a matcher report becomes a `BookReport`. Pure.

`request_from(record, received_ns)` checks what the Avro schema cannot: every string within
its bound (`STRING_LEN_MAX`) and free of control characters, the security code, quantity and
price within their ranges, `ts_ns` a plausible time. What passes becomes a `NewOrder`,
`CancelRequest`, `AmendRequest` or `MassCancelRequest`; the core never sees a record dict.
What does not becomes a `Refused`, which still carries a bounded copy of the record's fields,
so the reject report that answers it is itself a small record (a 400 kB ClOrdID is answered
with its first `STRING_LEN_MAX` characters and a text saying so, never echoed back whole).

`ts_ns`: with the time Kafka stamped the record (`received_ns`), a command may be stamped at
most `TS_BEHIND_MAX_NS` before it and `TS_AHEAD_MAX_NS` after it; without one (a unit test),
within `TS_MIN_NS`..`TS_MAX_NS`. Both are deterministic functions of the record, so a replay
decides the same way.

Limits: the checks here are about the record's shape; whether the account, instrument, price
and quantity make a good order is `risk`'s business, and which order a cancel addresses is the
core's.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from sampan.market.side import Side
from sampan.router.orders import Route
from sampan.router.risk import RejectReason
from sampan.schemas import records

# Longest accepted value of each string field. FIX allows ClOrdIDs far longer than any member
# needs; 64 is the bound the FIX layer already applies to ids, and nothing sensible is longer.
STRING_LEN_MAX = {
    "command_id": 64,
    "account": 32,
    "member": 32,
    "cl_ord_id": 64,
    "orig_cl_ord_id": 64,
    "batch_id": 64,
    "parent_id": 64,
    "user": 64,
}
SECURITY_MAX = 99_999  # HKEX security codes are 1..99999
QTY_MAX = 10**12  # shares; risk applies the real limits (board lots, 3,000 lots)
PRICE_MAX_E3 = 10**10  # HK$10,000,000: far above any HKEX price, below any overflow
_NS_PER_S = 1_000_000_000
TS_BEHIND_MAX_NS = 3_600 * _NS_PER_S  # a command may wait an hour in a sender's queue
TS_AHEAD_MAX_NS = 60 * _NS_PER_S  # a sender's clock may run a minute fast
TS_MIN_NS = 1_577_836_800 * _NS_PER_S  # 2020-01-01T00:00:00Z
TS_MAX_NS = 4_102_444_800 * _NS_PER_S  # 2100-01-01T00:00:00Z


class Kind(enum.StrEnum):
    NEW = "NEW"
    CANCEL = "CANCEL"
    AMEND = "AMEND"
    MASS_CANCEL = "MASS_CANCEL"


@dataclass(frozen=True, slots=True)
class Request:
    """The fields every OrderCommand carries, typed and bounded."""

    command_id: str
    account: str
    member: str
    security: int  # 0 only on a MASS_CANCEL for every security
    cl_ord_id: str
    side: Side
    ord_type: str  # LIMIT, MARKET or ENHANCED_LIMIT
    time_in_force: str  # DAY, IOC or FOK
    price_e3: int
    qty: int
    route: Route
    ts_ns: int
    orig_cl_ord_id: str | None = None
    batch_id: str | None = None
    user: str | None = None

    @property
    def kind(self) -> Kind:
        return _KIND_OF[type(self)]

    @property
    def market(self) -> bool:
        return self.ord_type == "MARKET"

    def command(self) -> dict[str, Any]:
        """The OrderCommand record of this request (for the matcher), without `stp`."""
        return {
            "command_id": self.command_id,
            "kind": str(self.kind),
            "account": self.account,
            "member": self.member,
            "security": self.security,
            "cl_ord_id": self.cl_ord_id,
            "orig_cl_ord_id": self.orig_cl_ord_id,
            "side": str(self.side),
            "ord_type": self.ord_type,
            "time_in_force": self.time_in_force,
            "price_e3": self.price_e3,
            "qty": self.qty,
            "route": str(self.route),
            "batch_id": self.batch_id,
            "parent_id": None,
            "user": self.user,
            "ts_ns": self.ts_ns,
            "stp": None,
        }


@dataclass(frozen=True, slots=True)
class NewOrder(Request):
    """Place an order on `route`."""


@dataclass(frozen=True, slots=True)
class CancelRequest(Request):
    """Cancel the order whose current ClOrdID is `orig_cl_ord_id`."""


@dataclass(frozen=True, slots=True)
class AmendRequest(Request):
    """Change the price and total quantity of the order `orig_cl_ord_id`."""


@dataclass(frozen=True, slots=True)
class MassCancelRequest(Request):
    """Cancel every open order of the account (of `security` only, unless it is 0)."""


_KIND_OF: dict[type[Request], Kind] = {
    NewOrder: Kind.NEW,
    CancelRequest: Kind.CANCEL,
    AmendRequest: Kind.AMEND,
    MassCancelRequest: Kind.MASS_CANCEL,
}
_CLASS_OF = {kind: cls for cls, kind in _KIND_OF.items()}


@dataclass(frozen=True, slots=True)
class Refused:
    """A record the router will not act on. `request` holds its fields, each cut to its
    bound, for the reject report; `kind` is what the record asked."""

    request: Request
    reason: RejectReason
    text: str


@dataclass(frozen=True, slots=True)
class BookReport:
    """What the router reads of an ExecutionReport on orders.events: a report of our own book
    (the matcher's) about one order, or something else there (`ours` False)."""

    ours: bool  # venue INTERNAL and a matcher exec id (`X...`): not the router's own reports
    account: str
    cl_ord_id: str
    orig_cl_ord_id: str | None
    order_id: str
    exec_type: str
    ord_status: str
    price_e3: int
    order_qty: int
    last_px_e3: int
    last_qty: int
    ts_ns: int


def book_report_from(record: records.ExecutionReport) -> BookReport:
    """The typed view of an ExecutionReport record from orders.events."""
    return BookReport(
        ours=record["venue"] == "INTERNAL" and record["exec_id"].startswith("X"),
        account=record["account"],
        cl_ord_id=record["cl_ord_id"],
        orig_cl_ord_id=record["orig_cl_ord_id"],
        order_id=record["order_id"],
        exec_type=record["exec_type"],
        ord_status=record["ord_status"],
        price_e3=record["price_e3"],
        order_qty=record["order_qty"],
        last_px_e3=record["last_px_e3"],
        last_qty=record["last_qty"],
        ts_ns=record["ts_ns"],
    )


def request_from(record: dict[str, Any], received_ns: int | None = None) -> Request | Refused:
    """The typed request of an OrderCommand record, or why it is refused."""
    kind = Kind(record["kind"])
    problem = _string_problem(record)
    bounded = _build(kind, record, cut=problem is not None)
    if problem is not None:
        return Refused(bounded, RejectReason.INVALID_FIELD, problem)
    problem = _number_problem(kind, record)
    if problem is not None:
        return Refused(bounded, RejectReason.INVALID_FIELD, problem)
    problem = _time_problem(record["ts_ns"], received_ns)
    if problem is not None:
        return Refused(bounded, RejectReason.INVALID_TIMESTAMP, problem)
    return bounded


def _build(kind: Kind, record: dict[str, Any], *, cut: bool) -> Request:
    def text(name: str) -> str:
        value: str = record[name]
        return _cut(value, STRING_LEN_MAX[name]) if cut else value

    def optional(name: str) -> str | None:
        value: str | None = record.get(name)
        return None if value is None else _cut(value, STRING_LEN_MAX[name]) if cut else value

    return _CLASS_OF[kind](
        command_id=text("command_id"),
        account=text("account"),
        member=text("member"),
        security=record["security"],
        cl_ord_id=text("cl_ord_id"),
        side=Side(record["side"]),
        ord_type=record["ord_type"],
        time_in_force=record["time_in_force"],
        price_e3=record["price_e3"],
        qty=record["qty"],
        route=Route(record["route"]),
        ts_ns=record["ts_ns"],
        orig_cl_ord_id=optional("orig_cl_ord_id"),
        batch_id=optional("batch_id"),
        user=optional("user"),
    )


def _cut(value: str, limit: int) -> str:
    value = value[:limit]
    return "".join(c if c.isprintable() else "?" for c in value)


def _string_problem(record: dict[str, Any]) -> str | None:
    for name, limit in STRING_LEN_MAX.items():
        value = record.get(name)
        if value is None:
            continue
        if len(value) > limit:
            return f"{name} is {len(value)} characters long; at most {limit}"
        if not value.isprintable():
            return f"{name} holds a control character"
    for name in ("command_id", "account", "member", "cl_ord_id"):
        if not record[name]:
            return f"{name} is empty"
    return None


def _number_problem(kind: Kind, record: dict[str, Any]) -> str | None:
    security = record["security"]
    low = 0 if kind is Kind.MASS_CANCEL else 1
    if not low <= security <= SECURITY_MAX:
        return f"security {security} outside {low}..{SECURITY_MAX}"
    if not 0 <= record["qty"] <= QTY_MAX:
        return f"quantity {record['qty']} outside 0..{QTY_MAX}"
    if not 0 <= record["price_e3"] <= PRICE_MAX_E3:
        return f"price_e3 {record['price_e3']} outside 0..{PRICE_MAX_E3}"
    if kind in (Kind.CANCEL, Kind.AMEND) and not record.get("orig_cl_ord_id"):
        return f"a {kind} names the order it addresses in orig_cl_ord_id"
    return None


def _time_problem(ts_ns: int, received_ns: int | None) -> str | None:
    if not TS_MIN_NS <= ts_ns <= TS_MAX_NS:
        return f"ts_ns {ts_ns} is not a time between 2020 and 2100"
    if received_ns is None:
        return None
    if ts_ns < received_ns - TS_BEHIND_MAX_NS:
        return f"ts_ns {ts_ns} is more than an hour before the record ({received_ns})"
    if ts_ns > received_ns + TS_AHEAD_MAX_NS:
        return f"ts_ns {ts_ns} is more than a minute after the record ({received_ns})"
    return None
