"""The real matcher and the real analytics app as processes for the analytics integration tests,
each with its log under the test's tmp folder, and the waits they need (bounded, saying what
they waited for)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from sampan.config import Settings
from sampan.tools.records import publish_records, read_topic

WAIT_S = 120.0
READY = "[^Worker]: Ready"


class Proc:
    def __init__(self, log_path: Path, *args: str) -> None:
        self.log_path = log_path
        self.args = args
        self.log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sampan.cli", *args],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ),
        )

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> None:
        assert self.proc.poll() is None, f"{self.args} exited:\n{self.output()[-4000:]}"

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"{self.args} ignored SIGTERM for 60 s") from None
        return self.proc.returncode

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        self.log.close()


class Procs:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.started: list[Proc] = []

    def start(self, *args: str) -> Proc:
        proc = Proc(self.folder / f"{args[0]}-{len(self.started)}.log", *args)
        self.started.append(proc)
        return proc

    def analytics(self) -> Proc:
        app = self.start("analytics")
        wait_for("the analytics app's Ready line", lambda: READY in app.output(), app.alive)
        return app

    def matcher(self) -> Proc:
        return self.start("matcher", "--batch-size", "200")

    def check(self) -> None:
        for proc in self.started:
            if proc.proc.returncode is None and proc.proc.poll() is not None:
                raise AssertionError(f"{proc.args} exited:\n{proc.output()[-4000:]}")

    def close(self) -> None:
        for proc in self.started:
            proc.close()


def procs_fixture(tmp_path: Path) -> Iterator[Procs]:
    procs = Procs(tmp_path)
    yield procs
    procs.close()


def wait_for(what: str, probe: Callable[[], Any], check: Callable[[], None]) -> Any:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        check()
        result = probe()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out after {WAIT_S:.0f} s waiting for {what}")


def order(
    account: str,
    member: str,
    security: int,
    side: str,
    qty: int,
    price_e3: int,
    cl_ord_id: str,
    *,
    kind: str = "NEW",
    orig: str | None = None,
) -> dict[str, Any]:
    return {
        "command_id": f"{cl_ord_id}-{uuid.uuid4().hex[:6]}",
        "kind": kind,
        "account": account,
        "member": member,
        "security": security,
        "cl_ord_id": cl_ord_id,
        "orig_cl_ord_id": orig,
        "side": side,
        "ord_type": "LIMIT",
        "time_in_force": "DAY",
        "price_e3": price_e3,
        "qty": qty,
        "route": "INTERNAL",
        "batch_id": None,
        "parent_id": None,
        "user": None,
        "ts_ns": time.time_ns(),
        "stp": None,
    }


def to_matcher(s: Settings, *commands: dict[str, Any]) -> None:
    """Risk-approved commands, as the router would send them: orders.internal keyed by security."""
    publish_records(
        s, "orders.internal", "OrderCommand", [(str(c["security"]), c) for c in commands]
    )


def reports(s: Settings) -> list[dict[str, Any]]:
    return read_topic(s, "orders.events", "ExecutionReport")


def committed_through(s: Settings, group: str, topic: str) -> bool:
    """Whether `group` has committed offsets at the end of every partition of `topic` (the last
    offset of a transactionally written partition is its commit marker, never delivered)."""
    consumer = Consumer(s.kafka(**{"group.id": f"probe-{uuid.uuid4().hex[:6]}"}))
    try:
        name = s.topic(topic)
        parts = consumer.list_topics(name, timeout=10).topics[name].partitions
        tps = [TopicPartition(name, p) for p in parts]
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in tps}
    finally:
        consumer.close()
    reader = Consumer(s.kafka(**{"group.id": group}))
    try:
        committed = reader.committed(tps, timeout=10)
    finally:
        reader.close()
    return all(ends[tp.partition] == 0 or tp.offset >= ends[tp.partition] - 1 for tp in committed)
