"""Transaction calls: deadlines the process enforces, retries in one place, the abort path;
the stall watchdog and the liveness file."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from sampan.streams import liveness as liveness_module
from sampan.streams import txn as txn_module
from sampan.streams.liveness import (
    EXIT_STALLED,
    CallHung,
    Liveness,
    is_alive,
    stale_after_s,
)
from sampan.streams.txn import Transactions


def _error(retriable: bool = False, abort: bool = False, fatal: bool = False) -> KafkaException:
    code = KafkaError._TIMED_OUT if retriable else KafkaError._STATE
    return KafkaException(
        KafkaError(code, "injected", fatal=fatal, retriable=retriable, txn_requires_abort=abort)
    )


class ScriptedProducer:
    """Raises the scripted errors of each call, in order, then succeeds."""

    def __init__(self, **script: list[KafkaException]) -> None:
        self.script = script
        self.calls: list[str] = []

    def _call(self, name: str) -> None:
        self.calls.append(name)
        errors = self.script.get(name, [])
        if errors:
            raise errors.pop(0)

    def init_transactions(self, timeout: float) -> None:
        self._call("init")

    def begin_transaction(self) -> None:
        self._call("begin")

    def send_offsets_to_transaction(self, offsets: Any, metadata: Any, timeout: float) -> None:
        self._call("offsets")

    def commit_transaction(self, timeout: float) -> None:
        self._call("commit")

    def abort_transaction(self, timeout: float) -> None:
        self._call("abort")


class Stalls:
    def __init__(self) -> None:
        self.reasons: list[str] = []
        self.event = threading.Event()

    def __call__(self, reason: str) -> None:
        self.reasons.append(reason)
        self.event.set()


def _txn(
    producer: ScriptedProducer, timeout_s: float = 5.0, retry_for_s: float = 60.0
) -> tuple[Transactions, Stalls]:
    stalls = Stalls()
    live = Liveness("unit", 60.0, on_stall=stalls)
    return Transactions(producer, "unit", live, timeout_s, retry_for_s), stalls


@pytest.fixture(autouse=True)
def _no_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(txn_module, "RETRY_PAUSE_S", 0.01)


OFFSETS = [TopicPartition("t", 0, 5)]


def test_a_retriable_commit_error_is_retried_and_the_batch_commits() -> None:
    producer = ScriptedProducer(commit=[_error(retriable=True), _error(retriable=True)])
    txn, _ = _txn(producer)
    assert txn.commit(OFFSETS, object()) is True
    assert producer.calls == ["offsets", "commit", "commit", "commit"]
    assert txn.retries == 2


def test_retries_are_bounded_in_time() -> None:
    producer = ScriptedProducer(commit=[_error(retriable=True)] * 10_000)
    txn, _ = _txn(producer, retry_for_s=0.2)
    with pytest.raises(KafkaException):
        txn.commit(OFFSETS, object())
    assert 2 < producer.calls.count("commit") < 10_000


def test_an_abortable_error_aborts_and_reports_it() -> None:
    producer = ScriptedProducer(offsets=[_error(abort=True)], abort=[_error(retriable=True)])
    txn, _ = _txn(producer)
    assert txn.commit(OFFSETS, object()) is False
    assert producer.calls == ["offsets", "abort", "abort"]
    assert txn.aborts == 1


def test_a_fatal_error_raises() -> None:
    producer = ScriptedProducer(commit=[_error(fatal=True, abort=True)])
    txn, _ = _txn(producer)
    with pytest.raises(KafkaException):
        txn.commit(OFFSETS, object())
    assert "abort" not in producer.calls


def test_no_offsets_commits_without_sending_offsets() -> None:
    producer = ScriptedProducer()
    txn, _ = _txn(producer)
    assert txn.commit() is True
    assert producer.calls == ["commit"]


def test_init_retries_retriable_errors_until_its_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sampan.streams.txn.INIT_RETRY_PAUSE_S", 0.01)
    producer = ScriptedProducer(init=[_error(retriable=True)] * 3)
    txn, _ = _txn(producer)
    txn.init(10.0)
    assert producer.calls == ["init"] * 4
    producer = ScriptedProducer(init=[_error(retriable=True)] * 1000)
    txn, _ = _txn(producer)
    with pytest.raises(KafkaException):
        txn.init(0.2)


def test_a_transaction_call_past_its_deadline_is_abandoned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """librdkafka #5456: the call is left to its stuck thread and `CallHung` raised, for the
    caller to replace the producer; the next calls run on a new worker."""
    monkeypatch.setattr(liveness_module, "CALL_GRACE_S", 0.05)
    release = threading.Event()

    class Hangs(ScriptedProducer):
        def send_offsets_to_transaction(self, offsets: Any, metadata: Any, timeout: float) -> None:
            release.wait(10)  # librdkafka #5456: ignores its timeout

    txn, stalls = _txn(Hangs(), timeout_s=0.1)
    with pytest.raises(CallHung, match="send_offsets_to_transaction"):
        txn.commit(OFFSETS, object())
    assert not stalls.reasons and txn.liveness.abandoned == 1
    txn.producer = ScriptedProducer()
    assert txn.commit(OFFSETS, object()) is True, "a new worker serves the next calls"
    release.set()


def test_a_call_past_its_deadline_that_cannot_be_abandoned_is_a_stall(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(liveness_module, "CALL_GRACE_S", 0.05)
    release = threading.Event()

    class Hangs(ScriptedProducer):
        def init_transactions(self, timeout: float) -> None:
            release.wait(10)

    txn, stalls = _txn(Hangs())
    with pytest.raises(TimeoutError):
        txn.init(0.1)
    release.set()
    assert stalls.reasons and "init_transactions" in stalls.reasons[0]


def test_the_watchdog_acts_without_beats_and_the_file_goes_stale(tmp_path: Path) -> None:
    stalls = Stalls()
    path = tmp_path / "health" / "agent-0"
    live = Liveness("unit", 0.3, path, on_stall=stalls)
    live.start()
    try:
        for _ in range(10):
            time.sleep(0.1)
            live.beat()
        assert not stalls.reasons, "beats keep it alive"
        assert path.exists() and is_alive(path, 0.3)
        assert stalls.event.wait(5), "no beat for longer than the bound: a stall"
        assert "no commit" in stalls.reasons[0]
        stale = time.time() + stale_after_s(0.3) + 1
        assert not is_alive(path, 0.3, now=stale)
    finally:
        live.close()
    assert not path.exists(), "a clean stop removes the liveness file"
    assert is_alive(path, 0.3), "no file: not (yet) judged"


def test_die_logs_critical_and_exits_with_the_stalled_status() -> None:
    code = (
        "import logging, threading, time\n"
        "from sampan.streams.liveness import Liveness\n"
        "logging.basicConfig(level='INFO')\n"
        "live = Liveness('stuck', 60.0)\n"
        "live.start()\n"
        "live.bounded('commit_transaction', lambda: time.sleep(60), 0.1)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, timeout=60, env=env, check=False
    )
    assert done.returncode == EXIT_STALLED, done.stderr.decode()
    assert b"CRITICAL" in done.stderr
