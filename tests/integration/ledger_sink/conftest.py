"""Fixtures for the ledger's integration tests: a private schema, and the sink as a process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sampan.config import Settings
from sampan.ledger_sink import db

SAMPAN = [sys.executable, "-m", "sampan.ledger_sink.cli"]
WAIT_S = 60.0


@pytest.fixture
def schema(env_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh ledger schema for this test, exported for subprocesses; dropped afterwards."""
    name = f"ledger_t{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("SAMPAN_LEDGER_SCHEMA", name)
    db.migrate(env_settings, name)
    yield name
    db.drop_schema(env_settings, name)
    db.drop_schema(env_settings, f"{name}_rebuild")


class SinkProcess:
    def __init__(self, log_path: Path, *extra: str) -> None:
        self.log_path = log_path
        self.log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [*SAMPAN, "ledger-sink", *extra],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),
        )

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def sink_process(tmp_path: Path) -> Iterator[Callable[..., SinkProcess]]:
    started: list[SinkProcess] = []

    def start(*extra: str) -> SinkProcess:
        process = SinkProcess(tmp_path / "sink.log", *extra)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.proc.poll() is None:
            process.kill()
        process.log.close()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SAMPAN, *args], capture_output=True, text=True, timeout=120, env=os.environ.copy()
    )


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.2)


def assert_verified_but_unfunded(verified: subprocess.CompletedProcess[str]) -> None:
    """`ledger verify` of a ledger fed unfunded synthetic fills (accounts without deposits or
    credit lines): every check of the journal passes, and the only problems reported are
    accounts beyond their credit line."""
    problems = [line for line in verified.stdout.splitlines() if line.startswith("DIFFERENCE")]
    assert verified.returncode == (1 if problems else 0), verified.stdout + verified.stderr
    assert all("beyond its credit line" in p for p in problems), verified.stdout
    for line in verified.stderr.splitlines():
        if line.lstrip().startswith("[") and "within their limits" not in line:
            assert ": ok (" in line, verified.stderr
