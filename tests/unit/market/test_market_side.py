"""One `Side` enum for the venue: no other class of that name in src/, FIX's Side (54) maps to
and from it, and a matcher snapshot keeps its side codes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import sampan
from sampan.fix.codec import FieldError, FixMessage
from sampan.fix.messages import SIDE_FROM_WIRE, SIDE_TO_WIRE, NewOrderSingle, OrdType, TimeInForce
from sampan.market.side import Side
from sampan.matching.book import Order, OrderBook
from sampan.matching.instrument import Instrument, Rules
from sampan.matching.model import OrderType, StpMode

SRC = Path(sampan.__file__).parent
HSBC = Instrument(5, 400, nominal_price_e3=60_000)
_STP = StpMode.CANCEL_RESTING


def test_side_has_one_home() -> None:
    homes = [
        f"{path.relative_to(SRC)}:{node.lineno}"
        for path in sorted(SRC.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef) and node.name == "Side"
    ]
    assert homes == ["market/side.py:13"]


def test_fix_wire_codes_map_to_and_from_the_one_side() -> None:
    assert SIDE_TO_WIRE == {Side.BUY: "1", Side.SELL: "2", Side.SELL_SHORT: "5"}
    assert {SIDE_FROM_WIRE[code] for code in SIDE_TO_WIRE.values()} == set(Side)
    nos = NewOrderSingle(
        "C1", "700", Side.SELL_SHORT, OrdType.LIMIT, 100, 1_000, TimeInForce.DAY, 0
    )
    msg = nos.to_fix()
    assert msg.get(54) == "5"
    assert NewOrderSingle.from_fix(msg).side is Side.SELL_SHORT


def test_an_unknown_wire_side_is_refused_naming_the_tag() -> None:
    msg = NewOrderSingle("C1", "700", Side.BUY, OrdType.LIMIT, 100, 1_000, TimeInForce.DAY, 0)
    fields = [(tag, "BUY" if tag == 54 else value) for tag, value in msg.to_fix().fields]
    with pytest.raises(FieldError) as caught:
        NewOrderSingle.from_fix(FixMessage.of("D", *fields))
    assert caught.value.tag == 54


def test_a_book_snapshot_keeps_its_side_codes() -> None:
    """Snapshots on matcher.snapshots written before the one enum say 1 and 2."""
    book = OrderBook(HSBC, Rules.internal())
    for order_id, side, price_e3 in ((1, Side.BUY, 59_950), (2, Side.SELL, 60_000)):
        book.rest(Order(order_id, "a", "m", side, price_e3, 400, OrderType.LIMIT, _STP, 1))
    data = book.snapshot()
    assert [row[3] for row in data["orders"]] == [1, 2]
    restored = OrderBook(HSBC, Rules.internal())
    restored.load(data)
    assert [restored.orders[1].side, restored.orders[2].side] == [Side.BUY, Side.SELL]
