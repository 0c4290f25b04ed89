"""`sampan stack up | status | down | reset` from a checkout inside a private (mode 700) folder.

Run as root, PostgreSQL runs as the `postgres` user, which cannot pass through a mode-700
folder: its data must go elsewhere and be found again by `status`, `down` and `reset`. The
stack here is a private one on its own ports (the shared one is never touched).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sampan.stack import PG_LOCATION_FILE

pytestmark = pytest.mark.integration

SAMPAN = [sys.executable, "-m", "sampan.cli"]
STACK_TIMEOUT_S = 240


def _stack(action: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SAMPAN, "stack", action],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=STACK_TIMEOUT_S,
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as another user")
def test_stack_in_a_private_folder(tmp_path: Path) -> None:
    home = tmp_path / "home"
    checkout = home / "sampan"
    checkout.mkdir(parents=True)
    home.chmod(0o700)
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("SAMPAN_STATE_DIR", "SAMPAN_KAFKA_BOOTSTRAP", "SAMPAN_DATABASE_URL")
    }
    env |= {
        "SAMPAN_KAFKA_PORT": "19292",
        "SAMPAN_KAFKA_CONTROLLER_PORT": "19293",
        "SAMPAN_PG_PORT": "15632",
    }
    state = checkout / ".state"
    try:
        up = _stack("up", checkout, env)
        assert up.returncode == 0, up.stdout + up.stderr
        assert "postgres started" in up.stdout and "kafka started" in up.stdout, up.stdout
        recorded = Path((state / PG_LOCATION_FILE).read_text().strip())
        assert not recorded.is_relative_to(home), recorded
        assert (recorded / "data" / "PG_VERSION").exists()
        assert (home.stat().st_mode & 0o777) == 0o700, "the user's own folder was loosened"

        status = _stack("status", checkout, env)
        assert status.returncode == 0, status.stderr
        assert f"data {recorded / 'data'}" in status.stdout
        assert "postgres  running" in status.stdout, status.stdout

        again = _stack("up", checkout, env)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "postgres already running" in again.stdout, again.stdout
    finally:
        reset = _stack("reset", checkout, env)
    assert reset.returncode == 0, reset.stdout + reset.stderr
    assert "postgres (pid" in reset.stdout and "stopped" in reset.stdout, reset.stdout
    assert not recorded.exists(), f"reset left {recorded} behind"
    assert not state.exists()
