"""The feed handler's Kafka sink rides through a broker restart: a commit that fails is
redone (abort, produce again) and a fenced producer is replaced, instead of stopping the
process. The whole-venue fault test saw omd-ingest exit on every broker restart (messages
failed delivery, then _CONFLICT with an abort in progress, or CONCURRENT_TRANSACTIONS at
init)."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from sampan.config import settings
from sampan.omd_ingest import kafka_out
from sampan.omd_ingest.feed import TradeOut
from sampan.omd_ingest.kafka_out import KafkaSink, SinkFailed
from sampan.streams import txn

T0 = 1_767_323_045_000_000_000


def error(code: int, **kw: Any) -> KafkaException:
    return KafkaException(KafkaError(code, "injected", **kw))


class Scripted:
    """A transactional producer whose calls raise the errors scripted for them, in order."""

    made: list[Scripted] = []
    script: dict[str, list[KafkaException]] = {}

    def __init__(self, config: dict[str, Any]) -> None:
        self.calls: list[str] = []
        self.produced: list[bytes] = []
        Scripted.made.append(self)

    def _call(self, name: str) -> None:
        self.calls.append(name)
        errors = Scripted.script.get(name, [])
        if errors:
            raise errors.pop(0)

    def init_transactions(self, timeout: float) -> None:
        self._call("init")

    def begin_transaction(self) -> None:
        self._call("begin")

    def commit_transaction(self, timeout: float) -> None:
        self._call("commit")

    def abort_transaction(self, timeout: float) -> None:
        self._call("abort")

    def produce(self, topic: str, value: bytes, key: bytes, **kw: Any) -> None:
        self.produced.append(value)

    def poll(self, timeout: float) -> int:
        return 0


@pytest.fixture
def sink(monkeypatch: pytest.MonkeyPatch) -> KafkaSink:
    monkeypatch.setattr(kafka_out, "Producer", Scripted)
    monkeypatch.setattr(txn, "RETRY_PAUSE_S", 0.01)
    monkeypatch.setattr(txn, "INIT_RETRY_PAUSE_S", 0.01)
    Scripted.made = []
    Scripted.script = {"init": [error(KafkaError.CONCURRENT_TRANSACTIONS, retriable=True)]}
    return KafkaSink(settings())


def trade(n: int) -> TradeOut:
    return TradeOut(700, n, 512_000, 100, T0 + n, n, T0 + n)


def test_start_retries_a_concurrent_transaction_of_its_predecessor(sink: KafkaSink) -> None:
    (producer,) = Scripted.made
    assert producer.calls == ["init", "init"]


def test_a_failed_commit_is_redone_and_a_fenced_producer_replaced(sink: KafkaSink) -> None:
    sink.publish([trade(1), trade(2)])
    Scripted.script = {
        # The broker went away: the records failed delivery, so the transaction must abort.
        "commit": [
            error(KafkaError._INCONSISTENT, txn_requires_abort=True),
            error(KafkaError.INVALID_TXN_STATE, fatal=True),
        ],
    }
    sink.commit()
    first, second = Scripted.made
    assert first.calls == ["init", "init", "begin", "commit", "abort", "begin", "commit"]
    assert len(first.produced) == 4, "the aborted transaction's records are produced again"
    assert second.calls == ["init", "begin", "commit"] and len(second.produced) == 2
    assert sink.commits == 1 and sink.txn.producer is second is sink.producer


def test_a_producer_fenced_again_and_again_stops_the_sink(sink: KafkaSink) -> None:
    sink.publish([trade(1)])
    Scripted.script = {"commit": [error(KafkaError._FENCED, fatal=True)] * 10}
    with pytest.raises(SinkFailed, match="renewed"):
        sink.commit()
    assert len(Scripted.made) == 1 + kafka_out.RENEWALS_MAX
