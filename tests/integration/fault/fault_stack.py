"""A private local stack (Kafka broker and PostgreSQL) that a fault test may kill and restart.

The shared stack must never be stopped, so the whole-venue fault test runs on its own: its own
state folder, broker ports and PostgreSQL port, started here and stopped (and removed) at the
end. Killing is SIGKILL of the one pid this stack started (the broker's pid file, the
postmaster's pid file); restarting is `sampan.stack`'s own start, as `sampan stack up` does.

The state folder is under the test's tmp dir; `sampan stack` places PostgreSQL's data where
the `postgres` user can reach it when that folder is private, and `stack reset` removes both.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from sampan import stack
from sampan.config import Settings, settings
from sampan.errors import StackError

# Below the kernel's ephemeral range (32768-60999 here): while the broker is down, a client
# reconnecting to a port inside that range can be given that very port as its own, connect to
# itself (TCP simultaneous open) and hold it, and the broker then cannot bind it again.
# SAMPAN_FAULT_PORT_OFFSET moves all three, so that two runs on one machine do not meet.
_OFFSET = int(os.environ.get("SAMPAN_FAULT_PORT_OFFSET") or 0)
KAFKA_PORT = 29092 + _OFFSET
KAFKA_CONTROLLER_PORT = 29093 + _OFFSET
PG_PORT = 25432 + _OFFSET
START_TRIES = 5
START_PAUSE_S = 2.0
STACK_CLI_TIMEOUT_S = 240.0
KILL_WAIT_S = 15.0


def stack_env(state_dir: Path) -> dict[str, str]:
    """The environment every process of the private venue gets (on top of os.environ)."""
    return {
        "SAMPAN_STATE_DIR": str(state_dir),
        "SAMPAN_KAFKA_PORT": str(KAFKA_PORT),
        "SAMPAN_KAFKA_CONTROLLER_PORT": str(KAFKA_CONTROLLER_PORT),
        "SAMPAN_PG_PORT": str(PG_PORT),
        "SAMPAN_KAFKA_BOOTSTRAP": f"127.0.0.1:{KAFKA_PORT}",
        "SAMPAN_DATABASE_URL": f"postgresql://sampan@127.0.0.1:{PG_PORT}/sampan",
        "SAMPAN_TOPIC_PREFIX": "",
    }


def _wait_dead(pid: int, what: str) -> None:
    deadline = time.monotonic() + KILL_WAIT_S
    while stack._pid_alive(pid):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} (pid {pid}) still alive {KILL_WAIT_S} s after SIGKILL")
        time.sleep(0.1)


class PrivateStack:
    """The private broker and database. Started and stopped with `sampan stack up` and
    `sampan stack down` in a child process, as an operator would: the broker then is not a
    child of the test (it would be reaped, or warned about, with the test's objects)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.paths = stack.Paths(state_dir)
        self.keep = False  # keep the data and logs for a look (the test found a problem)

    @property
    def settings(self) -> Settings:
        return settings()

    def _stack(self, action: str, timeout_s: float = STACK_CLI_TIMEOUT_S) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "sampan.cli", "stack", action],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=dict(os.environ),
        )
        if out.returncode != 0:
            raise StackError(
                f"sampan stack {action}: exit {out.returncode}\n{out.stdout}{out.stderr}"
            )
        return out.stdout

    def up(self) -> None:
        """`sampan stack up`, tried again a bounded number of times: should another program
        hold a port for a moment (or a killed postmaster's backends still hold its shared
        memory), a second try a moment later succeeds."""
        for attempt in range(1, START_TRIES + 1):
            try:
                self._stack("up")
                return
            except StackError as error:
                if attempt == START_TRIES:
                    raise
                print(f"fault test: stack up {attempt} failed, trying again: {str(error)[-300:]}")
                time.sleep(START_PAUSE_S)

    def down(self) -> None:
        try:
            self._stack("down")
        except (StackError, subprocess.TimeoutExpired) as error:
            print(f"fault test: stack down failed: {error}")

    def kill_broker(self) -> int:
        pid = stack._read_pid(self.paths.kafka_pid)
        assert pid is not None, "the private broker is not running"
        os.kill(pid, signal.SIGKILL)
        _wait_dead(pid, "the Kafka broker")
        return pid

    def kill_postgres(self) -> int:
        pid = stack._read_pid(self.pg_pid_file())
        assert pid is not None, "the private PostgreSQL is not running"
        os.kill(pid, signal.SIGKILL)
        _wait_dead(pid, "the postmaster")
        return pid

    def pg_pid_file(self) -> Path:
        return self.paths.pg_data / "postmaster.pid"


@contextlib.contextmanager
def private_stack(state_dir: Path) -> Iterator[PrivateStack]:
    """Start a private stack in `state_dir` with the env pointing at it; always stop it, and
    remove its data unless the test failed (then its logs are kept there)."""
    saved = {k: os.environ.get(k) for k in stack_env(state_dir)}
    os.environ.update(stack_env(state_dir))
    private = PrivateStack(state_dir)
    print(f"fault test: private stack in {state_dir}")
    ok = False
    try:
        private.up()
        yield private
        ok = not private.keep
    finally:
        if ok:
            try:
                private._stack("reset")
            except (StackError, subprocess.TimeoutExpired) as error:
                print(f"fault test: stack reset failed: {error}")
        else:
            private.down()
            print(f"fault test: the private stack's data and logs are kept in {state_dir}")
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
