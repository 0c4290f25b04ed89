"""Request bodies at the edge: bad input gets a code and a reason."""

from __future__ import annotations

import pytest

from sampan.ui_bridge import validation
from sampan.ui_bridge.validation import BadRequest

LISTED = frozenset({700, 5})
GOOD = {"account": "A1", "security": 700, "side": "BUY", "qty": 100, "price_e3": 512_000}


def test_good_order() -> None:
    order = validation.new_order(GOOD, LISTED)
    assert (order.account, order.security, order.qty, order.route) == ("A1", 700, 100, "INTERNAL")
    assert order.time_in_force == "DAY" and order.cl_ord_id is None


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"qty": 10**30}, "INVALID_FIELD"),
        ({"qty": 0}, "INVALID_FIELD"),
        ({"qty": 1.5}, "INVALID_FIELD"),
        ({"qty": True}, "INVALID_FIELD"),
        ({"qty": "100"}, "INVALID_FIELD"),
        ({"price_e3": -1}, "INVALID_FIELD"),
        ({"security": 7}, "UNKNOWN_SECURITY"),
        ({"security": "700"}, "INVALID_FIELD"),
        ({"side": "HOLD"}, "INVALID_FIELD"),
        ({"route": "MOON"}, "INVALID_FIELD"),
        ({"time_in_force": "GTC"}, "INVALID_FIELD"),
        ({"account": ""}, "INVALID_FIELD"),
        ({"account": "x" * 100}, "INVALID_FIELD"),
        ({"cl_ord_id": "has space"}, "INVALID_FIELD"),
    ],
)
def test_bad_order_fields(change: dict, code: str) -> None:
    with pytest.raises(BadRequest) as raised:
        validation.new_order({**GOOD, **change}, LISTED)
    assert raised.value.code == code and raised.value.reason


def test_malformed_json_and_too_large() -> None:
    with pytest.raises(BadRequest) as raised:
        validation.parse_json(b'{"account":')
    assert raised.value.code == "MALFORMED_JSON"
    with pytest.raises(BadRequest) as raised:
        validation.parse_json(b"[1, 2]")
    assert raised.value.code == "MALFORMED_JSON"
    with pytest.raises(BadRequest) as raised:
        validation.parse_json(b" " * (validation.BODY_BYTES_MAX + 1))
    assert raised.value.status == 413


def test_batch_names_the_bad_order_and_is_for_one_account() -> None:
    account, orders = validation.batch(
        {"account": "A1", "orders": [dict(GOOD), {**GOOD, "security": 5}]}, LISTED
    )
    assert account == "A1" and [o.security for o in orders] == [700, 5]
    with pytest.raises(BadRequest, match="order 2"):
        validation.batch({"account": "A1", "orders": [GOOD, {**GOOD, "qty": 10**30}]}, LISTED)
    with pytest.raises(BadRequest, match="one account"):
        validation.batch({"account": "A1", "orders": [{**GOOD, "account": "A2"}]}, LISTED)
    with pytest.raises(BadRequest):
        validation.batch({"account": "A1", "orders": []}, LISTED)
    with pytest.raises(BadRequest) as raised:
        validation.batch({"account": "A1", "orders": [GOOD] * 201}, LISTED)
    assert raised.value.status == 413


def test_limits() -> None:
    change = validation.limits({"enabled": False})
    assert change.enabled is False and change.credit_line_cents is None
    with pytest.raises(BadRequest):
        validation.limits({})
    with pytest.raises(BadRequest):
        validation.limits({"enabled": "no"})
    with pytest.raises(BadRequest):
        validation.limits({"credit_line_cents": -1})
    with pytest.raises(BadRequest):
        validation.limits({"owner": "me"})
