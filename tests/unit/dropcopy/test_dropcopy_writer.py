"""The drop copy as a streams agent: a batch is taken from the queue, written again after an
abort, and advances the committed MsgSeqNum only once committed; an unmappable report becomes
a dead letter in the same batch. (The transaction calls themselves are `streams.txn`'s.)"""

from __future__ import annotations

from typing import Any

from sampan.config import settings
from sampan.dropcopy.client import ClientConfig, DropCopyClient
from sampan.dropcopy.writer import Unmappable
from sampan.fix.codec import FixMessage
from sampan.fix.messages import ExecType, ExecutionReport, OrdStatus, Side
from sampan.schemas import registry

T0 = 1_767_323_045_000_000_000


def record(seq: int) -> dict[str, Any]:
    return {
        "exec_id": str(seq),
        "order_id": "1",
        "cl_ord_id": "1",
        "security": 5,
        "side": "BUY",
        "exec_type": "F",
        "last_px_e3": 1,
        "last_qty": 1,
        "msg_seq_num": seq,
        "sending_time_ns": T0,
        "raw": "35=8|",
    }


def client() -> DropCopyClient:
    return DropCopyClient(ClientConfig("127.0.0.1", 1, "SAMPANDC"), settings())


def test_an_aborted_batch_is_written_again_and_committed_once() -> None:
    dc = client()
    dc._queue.extend([record(1), record(2)])
    assert dc.pending()
    first = list(dc.end_batch())
    assert [o.key for o in first] == [b"1", b"2"] and not dc.pending()
    dc._queue.append(record(3))
    dc.reset()  # the transaction aborted
    assert dc.last_committed_seq == 0
    again = list(dc.end_batch())
    assert [o.key for o in again] == [b"1", b"2", b"3"], "the batch first, in order"
    assert not dc._committed_all(), "the session must not reconnect before the commit"
    dc.committed()
    assert dc.last_committed_seq == 3 and dc.records_written == 3
    assert dc._committed_all()


def test_an_unmappable_report_is_dead_lettered_in_the_batch() -> None:
    dc = client()
    odd = ExecutionReport(
        "1", "1", "2", ExecType.TRADE, OrdStatus.FILLED, "X5", Side.BUY, 400, 400, 0, T0
    )
    header = ((49, "HKEX"), (56, "SAMPANDC"), (34, "8"), (52, "20260102-03:04:05.000"))
    dc.on_message(None, FixMessage.of("8", *header, *odd.to_fix().fields[1:]))  # type: ignore[arg-type]
    assert len(dc._queue) == 1 and isinstance(dc._queue[0], Unmappable)
    dc._queue.insert(0, record(7))
    (execution, dead) = dc.end_batch()
    assert (execution.topic, execution.key) == ("hkex.dropcopy", b"7")
    assert dead.topic == "hkex.dropcopy.dlq" and dead.key is None
    assert dead.value is not None
    letter = registry().decode("DeadLetter", dead.value)
    assert (letter["source_topic"], letter["source_offset"], letter["agent"]) == (
        "fix:SAMPANDC",
        8,
        "dropcopy",
    )
    assert b"\x0148=X5\x01" in letter["value"] and "FieldError" in letter["error"]
    dc.committed()
    assert dc.last_committed_seq == 8
