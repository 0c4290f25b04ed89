"""Request bodies become typed requests at the edge, or a `BadRequest` with a code and reason. Pure.

Only the shape is checked here: types, ranges that fit the Avro record and the venue (a
quantity of 10^30 is refused before it reaches Kafka), known securities, known enums. Pre-trade
risk (board lot, tick size, credit, collars) stays in the router, whose verdict comes back as
an execution report; the page's own checks only help the trader before sending.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

QTY_MAX = 10**12  # shares: more than every HKEX security's issued capital
PRICE_E3_MAX = 10**10  # HK$10,000,000 a share: above any HKEX price band
CENTS_MAX = 10**17  # HK$10^15: ledger amounts stay far inside a signed 64-bit long
BODY_BYTES_MAX = 256 * 1024
BATCH_ORDERS_MAX = 200
CL_ORD_ID = re.compile(r"^[A-Za-z0-9._:-]{1,40}$")
ACCOUNT = re.compile(r"^[A-Za-z0-9._:-]{1,40}$")
SIDES = ("BUY", "SELL", "SELL_SHORT")
ROUTES = ("INTERNAL", "HKEX", "SMART")
TIFS = ("DAY", "IOC", "FOK")


class BadRequest(Exception):
    def __init__(self, code: str, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.status = status


@dataclass(frozen=True, slots=True)
class NewOrder:
    account: str
    security: int
    side: str
    qty: int
    price_e3: int
    route: str
    time_in_force: str
    cl_ord_id: str | None


@dataclass(frozen=True, slots=True)
class Amend:
    account: str
    qty: int
    price_e3: int


@dataclass(frozen=True, slots=True)
class Limits:
    credit_line_cents: int | None
    cut_loss_cents: int | None
    max_order_notional_cents: int | None
    enabled: bool | None


def parse_json(body: bytes) -> dict[str, Any]:
    if len(body) > BODY_BYTES_MAX:
        raise BadRequest("TOO_LARGE", f"the body is over {BODY_BYTES_MAX} bytes", 413)
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise BadRequest("MALFORMED_JSON", f"the body is not JSON: {error}") from None
    if not isinstance(value, dict):
        raise BadRequest("MALFORMED_JSON", "the body must be a JSON object")
    return value


def _int(body: dict[str, Any], name: str, low: int, high: int) -> int:
    value = body.get(name)
    # bool is an int in Python; true is not a quantity.
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRequest("INVALID_FIELD", f"{name} must be an integer")
    if not low <= value <= high:
        raise BadRequest("INVALID_FIELD", f"{name} must be between {low} and {high}")
    return value


def _choice(
    body: dict[str, Any], name: str, choices: tuple[str, ...], default: str | None = None
) -> str:
    value = body.get(name, default)
    if value not in choices:
        raise BadRequest("INVALID_FIELD", f"{name} must be one of {', '.join(choices)}")
    assert isinstance(value, str)
    return value


def account_of(body: dict[str, Any]) -> str:
    value = body.get("account")
    if not isinstance(value, str) or not ACCOUNT.match(value):
        raise BadRequest("INVALID_FIELD", "account must be an account id")
    return value


def new_order(body: Any, securities: set[int] | frozenset[int]) -> NewOrder:
    if not isinstance(body, dict):
        raise BadRequest("INVALID_FIELD", "an order must be a JSON object")
    account = account_of(body)
    security = _int(body, "security", 1, 99_999)
    if security not in securities:
        raise BadRequest("UNKNOWN_SECURITY", f"security {security} is not listed or not enabled")
    cl_ord_id = body.get("cl_ord_id")
    if cl_ord_id is not None and (not isinstance(cl_ord_id, str) or not CL_ORD_ID.match(cl_ord_id)):
        raise BadRequest("INVALID_FIELD", "cl_ord_id must be 1 to 40 of A-Z a-z 0-9 . _ : -")
    return NewOrder(
        account=account,
        security=security,
        side=_choice(body, "side", SIDES),
        qty=_int(body, "qty", 1, QTY_MAX),
        price_e3=_int(body, "price_e3", 1, PRICE_E3_MAX),
        route=_choice(body, "route", ROUTES, "INTERNAL"),
        time_in_force=_choice(body, "time_in_force", TIFS, "DAY"),
        cl_ord_id=cl_ord_id,
    )


def amend(body: dict[str, Any]) -> Amend:
    return Amend(
        account=account_of(body),
        qty=_int(body, "qty", 1, QTY_MAX),
        price_e3=_int(body, "price_e3", 1, PRICE_E3_MAX),
    )


def batch(
    body: dict[str, Any], securities: set[int] | frozenset[int]
) -> tuple[str, list[NewOrder]]:
    account = account_of(body)
    orders = body.get("orders")
    if not isinstance(orders, list) or not orders:
        raise BadRequest("INVALID_FIELD", "orders must be a non-empty list")
    if len(orders) > BATCH_ORDERS_MAX:
        raise BadRequest("TOO_LARGE", f"a batch holds at most {BATCH_ORDERS_MAX} orders", 413)
    parsed = []
    for i, raw in enumerate(orders):
        item = {**raw, "account": raw.get("account", account)} if isinstance(raw, dict) else raw
        try:
            order = new_order(item, securities)
        except BadRequest as error:
            raise BadRequest(error.code, f"order {i + 1}: {error.reason}", error.status) from None
        if order.account != account:
            raise BadRequest("INVALID_FIELD", f"order {i + 1}: a batch is for one account")
        parsed.append(order)
    ids = [o.cl_ord_id for o in parsed if o.cl_ord_id is not None]
    if len(ids) != len(set(ids)):
        raise BadRequest("INVALID_FIELD", "cl_ord_id repeats within the batch")
    return account, parsed


def limits(body: dict[str, Any]) -> Limits:
    known = {"credit_line_cents", "cut_loss_cents", "max_order_notional_cents", "enabled"}
    unknown = set(body) - known
    if unknown:
        raise BadRequest("INVALID_FIELD", f"unknown fields: {', '.join(sorted(unknown))}")
    if not body:
        raise BadRequest("INVALID_FIELD", f"give at least one of {', '.join(sorted(known))}")
    enabled = body.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise BadRequest("INVALID_FIELD", "enabled must be true or false")

    def cents(name: str, low: int) -> int | None:
        return _int(body, name, low, CENTS_MAX) if name in body else None

    return Limits(
        credit_line_cents=cents("credit_line_cents", 0),
        cut_loss_cents=cents("cut_loss_cents", -CENTS_MAX),
        max_order_notional_cents=cents("max_order_notional_cents", 0),
        enabled=enabled,
    )
