"""The venue supervisor with trivial subprocesses: readiness, stop, a death, a stubborn one."""

from __future__ import annotations

import socket
import sys
import time
from dataclasses import astuple
from pathlib import Path

import pytest

from sampan.tools.venue import (
    ProcessSpec,
    Supervisor,
    VenueError,
    VenueOptions,
    VenuePorts,
    free_tcp_ports,
    venue_specs,
)


def py(code: str) -> tuple[str, ...]:
    return (sys.executable, "-u", "-c", code)


SERVE = "import time; print('ready now', flush=True); time.sleep(60)"


def test_start_waits_for_the_log_line_and_stop_terminates(tmp_path: Path) -> None:
    with Supervisor(tmp_path, stop_timeout_s=5) as sup:
        sup.start(
            [
                ProcessSpec(
                    "slow", py("import time; time.sleep(0.5); " + SERVE), ready_log=("ready",)
                ),
                ProcessSpec("fast", py(SERVE), ready_log=("ready now",)),
            ]
        )
        assert "ready now" in (tmp_path / "slow.log").read_text()
        sup.check()
        pids = [sup["slow"].pid, sup["fast"].pid]
        statuses = sup.stop()
    assert statuses == {"fast": -15, "slow": -15}
    assert not sup.processes and len(set(pids)) == 2


def test_ready_port(tmp_path: Path) -> None:
    (port,) = free_tcp_ports(1)
    # The process listens only after a second: `start` must wait for the port, so the
    # connection right after it succeeds on the first try.
    code = (
        "import socket, time; time.sleep(1); s = socket.socket(); "
        f"s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(60)"
    )
    with Supervisor(tmp_path, stop_timeout_s=5) as sup:
        started = time.monotonic()
        sup.start([ProcessSpec("listener", py(code), ready_port=port)])
        assert time.monotonic() - started >= 1.0
        with socket.create_connection(("127.0.0.1", port), 2):
            pass


def test_a_process_that_dies_at_start_is_a_clear_error(tmp_path: Path) -> None:
    code = "import sys; print('cannot open the widget', flush=True); sys.exit(3)"
    with Supervisor(tmp_path, stop_timeout_s=5) as sup, pytest.raises(VenueError) as error:
        sup.start([ProcessSpec("broken", py(code), ready_log=("never",))])
    message = str(error.value)
    assert "broken" in message and "status 3" in message
    assert "cannot open the widget" in message  # the log's tail


def test_a_process_that_dies_later_is_found_by_check(tmp_path: Path) -> None:
    code = "import time; print('ready', flush=True); time.sleep(0.3); raise SystemExit('gone')"
    with Supervisor(tmp_path, stop_timeout_s=5) as sup:
        sup.start([ProcessSpec("flaky", py(code), ready_log=("ready",))])
        time.sleep(1.0)
        with pytest.raises(VenueError, match=r"(?s)flaky .* exited with status 1.*gone"):
            sup.check()


def test_readiness_timeout_names_what_it_waited_for(tmp_path: Path) -> None:
    spec = ProcessSpec("mute", py(SERVE), ready_log=("listening",), ready_timeout_s=0.5)
    with Supervisor(tmp_path, stop_timeout_s=5) as sup, pytest.raises(VenueError) as error:
        sup.start([spec])
    assert "mute not ready after" in str(error.value)
    assert "'listening'" in str(error.value) and "ready now" in str(error.value)
    assert not sup.processes  # leaving the block stopped it


def test_sigterm_ignored_means_sigkill_after_the_grace(tmp_path: Path) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    with Supervisor(tmp_path, stop_timeout_s=0.5) as sup:
        sup.start([ProcessSpec("stubborn", py(code), ready_log=("ready",))])
        started = time.monotonic()
        assert sup.stop() == {"stubborn": -9}
        assert time.monotonic() - started < 5


def test_an_exception_inside_the_block_still_stops_everything(tmp_path: Path) -> None:
    sup = Supervisor(tmp_path, stop_timeout_s=5)
    with pytest.raises(KeyboardInterrupt), sup:
        sup.start([ProcessSpec("svc", py(SERVE), ready_log=("ready",))])
        popen = sup["svc"].popen
        raise KeyboardInterrupt
    assert popen.poll() == -15


def test_venue_specs_start_with_the_simulator_on_its_ports(tmp_path: Path) -> None:
    ports = VenuePorts.free()
    specs = venue_specs(ports, VenueOptions(tmp_path, "x1"))
    names = [s.name for s in specs]
    assert names[0] == "hkex-sim" and specs[0].ready_port == ports.admin
    assert set(names) == {
        "hkex-sim",
        "matcher",
        "router",
        "ledger-sink",
        "dropcopy",
        "recon",
        "omd-ingest",
        "analytics",
        "risk",
    }
    analytics = next(s for s in specs if s.name == "analytics")
    assert analytics.command[-1] == "analytics" and analytics.ready_log
    router = next(s for s in specs if s.name == "router")
    assert str(ports.ocg) in router.command
    assert len(set(astuple(ports))) == 7


def test_restart_dead_reports_restarts_and_gives_up_after_the_bound(tmp_path: Path) -> None:
    # The process prints its start, then dies after a moment: each restart appends to its log.
    code = "import time; print('up', flush=True); time.sleep(0.3); raise SystemExit(3)"
    lines: list[str] = []
    with Supervisor(tmp_path, stop_timeout_s=5) as sup:
        sup.start(
            [
                ProcessSpec("flaky", py(code), ready_log=("up",)),
                ProcessSpec("steady", py(SERVE), ready_log=("ready",)),
            ]
        )
        steady = sup["steady"].pid
        for attempt in (1, 2):
            deadline = time.monotonic() + 5
            while sup["flaky"].alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            before = sup["flaky"].pid
            assert sup.restart_dead(2, lines.append) == ["flaky"]
            assert sup["flaky"].pid != before and sup.restarts["flaky"] == attempt
        assert any("exited with status 3" in line for line in lines)
        assert sum("restarted" in line for line in lines) == 2
        assert sup["steady"].pid == steady and sup["steady"].alive()
        deadline = time.monotonic() + 5
        while sup["flaky"].alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(VenueError, match="died 3 times"):
            sup.restart_dead(2, lines.append)
    assert (tmp_path / "flaky.log").read_text().count("up") == 3
