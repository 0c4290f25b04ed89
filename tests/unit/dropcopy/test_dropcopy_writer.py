"""The drop-copy writer's transactions against a fake producer: a retriable commit error
retries the commit alone, an abortable one redoes the batch, and an unmappable report becomes
a dead letter in the same transaction."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from sampan.config import settings
from sampan.dropcopy import client as client_module
from sampan.dropcopy import writer as writer_module
from sampan.dropcopy.client import ClientConfig, DropCopyClient
from sampan.dropcopy.writer import DropCopyWriter, Unmappable
from sampan.fix.codec import FixMessage
from sampan.fix.messages import ExecType, ExecutionReport, OrdStatus, Side
from sampan.schemas import registry

T0 = 1_767_323_045_000_000_000


class FakeProducer:
    """Records calls; `commit_errors` are raised by the next commits, one each."""

    def __init__(self, _config: dict[str, Any]) -> None:
        self.calls: list[str] = []
        self.produced: list[tuple[str, bytes, bytes | None]] = []
        self.commit_errors: list[KafkaError] = []

    def init_transactions(self, _timeout_s: float) -> None:
        self.calls.append("init")

    def begin_transaction(self) -> None:
        self.calls.append("begin")

    def produce(self, topic: str, value: bytes, key: bytes | None) -> None:
        self.calls.append("produce")
        self.produced.append((topic, value, key))

    def commit_transaction(self, _timeout_s: float) -> None:
        self.calls.append("commit")
        if self.commit_errors:
            raise KafkaException(self.commit_errors.pop(0))

    def abort_transaction(self, _timeout_s: float) -> None:
        self.calls.append("abort")


@pytest.fixture
def writer(monkeypatch: pytest.MonkeyPatch) -> DropCopyWriter:
    monkeypatch.setattr(writer_module, "Producer", FakeProducer)
    return DropCopyWriter(settings(), "SAMPANDC")


def fake(w: DropCopyWriter) -> FakeProducer:
    producer = w._producer
    assert isinstance(producer, FakeProducer)
    return producer


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


def test_a_retriable_commit_error_retries_the_commit_only(writer: DropCopyWriter) -> None:
    fake(writer).commit_errors = [KafkaError(KafkaError._TIMED_OUT, "slow", retriable=True)]
    writer.write([record(1), record(2)])
    assert fake(writer).calls == ["begin", "produce", "produce", "commit", "commit"]


def test_an_abortable_error_aborts_and_redoes_the_batch(writer: DropCopyWriter) -> None:
    fake(writer).commit_errors = [KafkaError(KafkaError._STATE, "x", txn_requires_abort=True)]
    writer.write([record(1)])
    first, again = ["begin", "produce", "commit", "abort"], ["begin", "produce", "commit"]
    assert fake(writer).calls == [*first, *again]


def test_a_fatal_error_raises_without_retry(writer: DropCopyWriter) -> None:
    fake(writer).commit_errors = [KafkaError(KafkaError._FENCED, "fenced", fatal=True)]
    with pytest.raises(KafkaException):
        writer.write([record(1)])
    assert fake(writer).calls == ["begin", "produce", "commit"]


def test_an_unmappable_report_is_dead_lettered_in_the_batch(
    writer: DropCopyWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_module, "DropCopyWriter", lambda *_a: writer)
    client = DropCopyClient(ClientConfig("127.0.0.1", 1, "SAMPANDC"), settings())
    odd = ExecutionReport(
        "1", "1", "2", ExecType.TRADE, OrdStatus.FILLED, "X5", Side.BUY, 400, 400, 0, T0
    )
    header = ((49, "HKEX"), (56, "SAMPANDC"), (34, "8"), (52, "20260102-03:04:05.000"))
    client.on_message(None, FixMessage.of("8", *header, *odd.to_fix().fields[1:]))  # type: ignore[arg-type]
    queued = client._queue
    assert len(queued) == 1 and isinstance(queued[0], Unmappable)
    writer.write([record(7), queued[0]])
    (dc_topic, _, dc_key), (dlq_topic, value, key) = fake(writer).produced
    assert (dc_topic, dc_key) == (writer.topic, b"7")
    assert dlq_topic == settings().topic("hkex.dropcopy.dlq") and key is None
    letter = registry().decode("DeadLetter", value)
    assert (letter["source_topic"], letter["source_offset"], letter["agent"]) == (
        "fix:SAMPANDC",
        8,
        "dropcopy",
    )
    assert b"\x0148=X5\x01" in letter["value"] and "FieldError" in letter["error"]
    assert fake(writer).calls.count("commit") == 1
