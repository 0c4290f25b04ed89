"""The venue supervisor treats a process whose liveness file went stale as hung: it kills it
and says so; a fresh file (or none yet) is fine."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from sampan.streams.liveness import stale_after_s
from sampan.tools.venue import ProcessSpec, Supervisor, VenueError

SERVE = "import time; print('ready now', flush=True); time.sleep(60)"


def test_a_stale_liveness_file_means_hung_and_killed(tmp_path: Path) -> None:
    alive = tmp_path / "health" / "agent-0"
    alive.parent.mkdir()
    alive.touch()
    spec = ProcessSpec(
        "agent",
        (sys.executable, "-u", "-c", SERVE),
        ready_log=("ready now",),
        liveness_file=alive,
        stall_s=1.0,
    )
    with Supervisor(tmp_path / "logs", stop_timeout_s=5) as sup:
        sup.start([spec])
        sup.check()  # fresh: fine
        old = time.time() - stale_after_s(1.0) - 1
        os.utime(alive, (old, old))
        with pytest.raises(VenueError, match=r"agent .* was hung"):
            sup.check()
        assert not sup["agent"].alive(), "a hung process is killed, not left running"


def test_restart_dead_kills_a_hung_process_and_starts_it_again(tmp_path: Path) -> None:
    alive = tmp_path / "health" / "agent-0"
    alive.parent.mkdir()
    alive.touch()
    spec = ProcessSpec(
        "agent",
        (sys.executable, "-u", "-c", SERVE),
        ready_log=("ready now",),
        liveness_file=alive,
        stall_s=1.0,
    )
    reports: list[str] = []
    with Supervisor(tmp_path / "logs", stop_timeout_s=5) as sup:
        sup.start([spec])
        first = sup["agent"].pid
        old = time.time() - stale_after_s(1.0) - 1
        os.utime(alive, (old, old))
        assert sup.restart_dead(3, reports.append) == ["agent"]
        assert sup["agent"].pid != first and sup["agent"].alive()
        assert any("hung" in line for line in reports), reports
