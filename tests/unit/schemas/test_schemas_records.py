"""The typed records are the Avro schemas' shape: same fields, same enum symbols; what a
builder makes encodes, and a reader gives it back."""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any, get_args

import pytest

import sampan.schemas
from sampan.market.parties import Venue
from sampan.market.side import Side
from sampan.schemas import SchemaError, records, registry

AVSC = Path(sampan.schemas.__file__).parent / "avsc"
TYPED = {
    "ExecutionReport": records.ExecutionReport,
    "Fill": records.Fill,
    "TradeTick": records.TradeTick,
    "DropCopyExecution": records.DropCopyExecution,
}


def _symbols(avro_type: Any) -> set[str] | None:
    """The symbols of an enum type (or of the enum in a nullable union), else None."""
    for t in avro_type if isinstance(avro_type, list) else [avro_type]:
        if isinstance(t, dict) and t.get("type") == "enum":
            return set(t["symbols"])
    return None


def _literals(hint: Any) -> set[str]:
    """Every string a type hint admits: its Literal values and its StrEnums' values."""
    found: set[str] = set()
    for arg in get_args(hint) or (hint,):
        if arg is type(None):
            continue
        if isinstance(arg, str):
            found.add(arg)
        elif isinstance(arg, type) and issubclass(arg, str):
            found |= {str(member) for member in arg.__members__.values()}  # type: ignore[attr-defined]
        else:
            found |= _literals(arg)
    return found


@pytest.mark.parametrize("name", sorted(TYPED))
def test_the_typed_record_has_the_schemas_fields_and_enum_symbols(name: str) -> None:
    schema = json.loads((AVSC / f"{name}.avsc").read_text())
    hints = typing.get_type_hints(TYPED[name])
    assert list(hints) == [f["name"] for f in schema["fields"]]
    for f in schema["fields"]:
        symbols = _symbols(f["type"])
        if symbols is not None:
            assert _literals(hints[f["name"]]) == symbols, f["name"]


def test_the_one_side_and_venue_are_the_schemas_symbols() -> None:
    report = json.loads((AVSC / "ExecutionReport.avsc").read_text())
    fields = {f["name"]: f["type"] for f in report["fields"]}
    assert {str(s) for s in Side} == _symbols(fields["side"])
    assert {str(v) for v in Venue} == _symbols(fields["venue"])


def test_a_built_report_encodes_and_reads_back_equal() -> None:
    built = records.execution_report(
        exec_id="X1",
        venue=Venue.INTERNAL,
        order_id="O1",
        cl_ord_id="C1",
        account="ACC1",
        member="M1",
        security=700,
        side=Side.SELL_SHORT,
        exec_type="TRADE",
        ord_status="PARTIALLY_FILLED",
        price_e3=380_200,
        order_qty=1_000,
        last_px_e3=380_000,
        last_qty=100,
        cum_qty=100,
        leaves_qty=900,
        cum_notional_e3=38_000_000,
        ts_ns=1,
    )
    assert built["orig_cl_ord_id"] is None and built["text"] is None
    read = records.read_execution_report(registry().encode("ExecutionReport", built))
    assert read == built
    assert read["side"] is not Side.SELL_SHORT and read["side"] == Side.SELL_SHORT


def test_a_built_fill_names_each_side_and_reads_back_equal() -> None:
    built = records.fill(
        exec_id="E1",
        venue="HKEX",
        security=5,
        price_e3=61_000,
        qty=400,
        buy=("ACC1", "M1", "O1"),
        sell=("HKEX.CLEARING", "HKEX", ""),
        aggressor=Side.BUY,
        ts_ns=2,
    )
    assert (built["sell_account"], built["sell_member"], built["sell_order_id"]) == (
        "HKEX.CLEARING",
        "HKEX",
        "",
    )
    assert records.read_fill(registry().encode("Fill", built)) == built


def test_a_reader_refuses_another_records_bytes() -> None:
    tick = records.trade_tick(
        venue="INTERNAL", security=5, trade_id="X9", price_e3=1, qty=1, aggressor=None, ts_ns=3
    )
    with pytest.raises(SchemaError):
        records.read_fill(registry().encode("TradeTick", tick))
