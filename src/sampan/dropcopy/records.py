"""Mapping between a drop-copy FIX ExecutionReport and the `DropCopyExecution` record. Pure.

Guarantees: prices stay integers (HK$0.001, parsed without rounding); `raw` is the message as
decoded, re-encoded deterministically with SOH shown as `|`, so it names both CompIDs; a report
that cannot be mapped raises `FieldError` naming the tag (the caller decides what to do).

Limits: reports without LastPx/LastQty (anything but a trade) carry 0 for both.
"""

from __future__ import annotations

from sampan.fix.codec import (
    TAG_MSG_SEQ_NUM,
    TAG_SENDING_TIME,
    FieldError,
    FixMessage,
    encode,
    parse_utc_timestamp,
)
from sampan.fix.messages import ExecutionReport
from sampan.schemas import records

EXEC_TYPE_TRADE = "F"


def raw_text(msg: FixMessage) -> str:
    return encode(msg).decode("latin-1").replace("\x01", "|")


def to_record(msg: FixMessage) -> records.DropCopyExecution:
    """The `DropCopyExecution` of one inbound ExecutionReport (35=8)."""
    report = ExecutionReport.from_fix(msg)
    seq = msg.msg_seq_num
    if seq is None:
        raise FieldError(TAG_MSG_SEQ_NUM, "required field missing")
    security = report.security_id
    if not security.isdigit():
        raise FieldError(48, f"not an HKEX security code: {security[:16]!r}")
    return records.drop_copy_execution(
        exec_id=report.exec_id,
        order_id=report.order_id,
        cl_ord_id=report.cl_ord_id,
        security=int(security),
        side=report.side,
        exec_type=str(report.exec_type),
        last_px_e3=report.last_px_e3 or 0,
        last_qty=report.last_qty or 0,
        msg_seq_num=seq,
        sending_time_ns=parse_utc_timestamp(TAG_SENDING_TIME, msg.require(TAG_SENDING_TIME)),
        raw=raw_text(msg),
    )


def addressed_to(record: records.DropCopyExecution, comp_id: str) -> bool:
    """True when the record came from the drop-copy session of `comp_id` (TargetCompID 56)."""
    raw: str = record["raw"]
    return f"|56={comp_id}|" in raw
