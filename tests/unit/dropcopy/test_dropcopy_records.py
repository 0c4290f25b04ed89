"""The drop-copy record mapping: integers, the raw text, the CompID filter, the trading day."""

from __future__ import annotations

import pytest

from sampan.dropcopy.records import addressed_to, to_record
from sampan.fix.codec import FieldError, FixMessage
from sampan.fix.messages import ExecType, ExecutionReport, OrdStatus, Side
from sampan.market.calendar import trading_day_iso
from sampan.schemas import registry

T0 = 1_767_323_045_000_000_000  # 2026-01-02T03:04:05Z, 11:04 in Hong Kong


def wire(report: ExecutionReport, seq: int = 7) -> FixMessage:
    header = ((49, "HKEX"), (56, "SAMPANDC"), (34, str(seq)), (52, "20260102-03:04:05.000"))
    body = report.to_fix().fields[1:]
    return FixMessage.of("8", *header, *body)


def test_trade_report_maps_to_a_record_that_encodes() -> None:
    report = ExecutionReport(
        "10000000001",
        "42",
        "10000000007",
        ExecType.TRADE,
        OrdStatus.FILLED,
        "700",
        Side.SELL_SHORT,
        400,
        400,
        0,
        T0,
        price_e3=512_000,
        last_px_e3=512_500,
        last_qty=400,
    )
    record = to_record(wire(report))
    assert record["exec_id"] == "10000000007" and record["security"] == 700
    assert (record["last_px_e3"], record["last_qty"], record["side"]) == (
        512_500,
        400,
        "SELL_SHORT",
    )
    assert (record["msg_seq_num"], record["sending_time_ns"], record["exec_type"]) == (7, T0, "F")
    assert "|56=SAMPANDC|" in record["raw"] and "\x01" not in record["raw"]
    assert addressed_to(record, "SAMPANDC") and not addressed_to(record, "SAMPAN")
    assert (
        registry().decode("DropCopyExecution", registry().encode("DropCopyExecution", record))
        == record
    )


def test_non_trade_reports_carry_zero_and_bad_ones_raise() -> None:
    new = ExecutionReport(
        "1", "1", "2", ExecType.NEW, OrdStatus.NEW, "5", Side.BUY, 400, 0, 400, T0
    )
    assert (to_record(wire(new))["last_px_e3"], to_record(wire(new))["last_qty"]) == (0, 0)
    odd = ExecutionReport(
        "1", "1", "2", ExecType.NEW, OrdStatus.NEW, "X5", Side.BUY, 400, 0, 400, T0
    )
    with pytest.raises(FieldError):
        to_record(wire(odd))


def test_trading_day_is_the_hong_kong_date() -> None:
    assert trading_day_iso(T0) == "2026-01-02"
    assert trading_day_iso(1_767_369_600_000_000_000) == "2026-01-03"  # 16:00Z = midnight HKT
