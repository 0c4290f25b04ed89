"""`sampan demo` as an operator runs it: every process comes up, the demo users log in, the
simulated members trade, a process killed from outside is reported and restarted, and SIGTERM
stops everything the demo started."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from topic_namespace import delete_topics_under

from sampan.config import Settings
from sampan.ledger_sink import db
from sampan.tools.venue import free_tcp_ports
from sampan.ui_bridge.store import drop_schema

pytestmark = pytest.mark.integration

LIVE_S = 300.0  # the demo's start, users included, on a busy machine
STEP_S = 120.0  # each later step


class Demo:
    """`sampan demo` in a subprocess, its output collected line by line."""

    def __init__(self, port: int) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sampan.cli", "demo", "--port", str(port), "--rate", "10"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=dict(os.environ),
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout_s: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in list(self.lines):
                found = re.search(pattern, line)
                if found:
                    return found
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.2)
        output = "\n".join(self.lines[-40:])
        raise AssertionError(f"no line matching {pattern!r} in {timeout_s:.0f} s:\n{output}")

    def close(self) -> None:
        """After the process has ended: the reader has read its last line; the pipe is closed."""
        self._reader.join(10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()

    def pids(self) -> dict[str, int]:
        """Every process the demo reported starting, by name (the latest pid of each)."""
        out: dict[str, int] = {}
        for line in self.lines:
            found = re.search(r"(\S+) (?:ready|restarted) \(pid (\d+)", line)
            if found:
                out[found.group(1)] = int(found.group(2))
        return out


@pytest.fixture
def demo(stack_settings: Settings) -> Iterator[Demo]:
    (port,) = free_tcp_ports(1)
    running = Demo(port)
    running.port = port  # type: ignore[attr-defined]
    try:
        yield running
    finally:
        if running.proc.poll() is None:
            running.proc.send_signal(signal.SIGTERM)
            try:
                running.proc.wait(60)
            except subprocess.TimeoutExpired:
                running.proc.kill()
                running.proc.wait(10)
        running.close()
        found = [re.search(r"^\[(live[0-9a-f]+)\]", line) for line in running.lines]
        run_ids = {m.group(1) for m in found if m}
        for run_id in run_ids:
            delete_topics_under(stack_settings, f"{run_id}.")
            drop_schema(stack_settings, f"{run_id}_ui")
            db.drop_schema(stack_settings, run_id)


def test_the_live_demo_trades_restarts_a_killed_process_and_stops_everything(
    demo: Demo,
) -> None:
    demo.wait_for(r"sampan is live: http://127\.0\.0\.1:\d+/", LIVE_S)
    url = f"http://127.0.0.1:{demo.port}"  # type: ignore[attr-defined]
    with httpx.Client(base_url=url, timeout=15) as client:
        login = client.post("/api/login", json={"username": "trader1", "password": "trader1-demo"})
        assert login.status_code == 200, login.text
        assert [a["account"] for a in client.get("/api/accounts").json()] == ["ACC1"]
    with httpx.Client(base_url=url, timeout=15) as risk:
        login = risk.post("/api/login", json={"username": "risk", "password": "risk-demo"})
        assert login.status_code == 200, login.text

        def fills_by_venue() -> set[str]:
            venues: set[str] = set()
            for account in ("SIM1", "SIM2", "SIM3"):
                for row in risk.get(f"/api/accounts/{account}/orders").json():
                    venues.update(f["venue"] for f in row["fills"])
            return venues

        deadline = time.monotonic() + STEP_S
        while "INTERNAL" not in fills_by_venue():
            assert time.monotonic() < deadline, "the simulated members made no internal fill"
            time.sleep(2)

        started = demo.pids()
        assert set(started) >= {
            "hkex-sim",
            "omd-ingest",
            "matcher",
            "router",
            "ledger-sink",
            "dropcopy",
            "recon",
            "ui",
        }, started
        os.kill(started["router"], signal.SIGKILL)
        demo.wait_for(rf"supervisor: router \(pid {started['router']}\) exited", STEP_S)
        demo.wait_for(r"supervisor: router restarted \(pid \d+, restart 1\)", STEP_S)
        # Orders still flow through the restarted router: a new order of a simulated member is
        # answered after the restart.
        answered = len(risk.get("/api/accounts/SIM1/orders").json())
        deadline = time.monotonic() + STEP_S
        while len(risk.get("/api/accounts/SIM1/orders").json()) <= answered:
            assert time.monotonic() < deadline, "no new order answered after the restart"
            time.sleep(2)

    pids = demo.pids()
    demo.proc.send_signal(signal.SIGTERM)
    assert demo.proc.wait(STEP_S) == 0, "\n".join(demo.lines[-30:])
    demo.wait_for(r"^stopped; \d+ simulated orders were sent", 5)
    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # the demo stopped (and reaped) every process it started
