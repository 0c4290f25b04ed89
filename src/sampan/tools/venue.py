"""A small supervisor for the venue's processes, and the venue's process table.

`Supervisor` starts `sampan` subprocesses with their combined output in one log file each
under a directory, waits until each says it is ready (every `ready_log` substring has appeared
in its log, or its `ready_port` accepts a TCP connection), and stops them: SIGTERM to all, in
reverse start order, then SIGKILL to whatever is still alive after a bounded wait.
`HkexFirm` is another firm's OCG-C session, to rest or take liquidity on the simulator over
FIX while it runs as a separate process. `venue_specs` builds the process table of the whole venue (hkex-sim with OMD-C, omd-ingest,
matcher, router, ledger-sink, dropcopy, recon, analytics, risk, and on request the ledger's outbox
relay) on the ports of one `VenuePorts`.

Guarantees:
- Every wait is bounded (`ready_timeout_s` per process, `stop_timeout_s` for the whole stop)
  and a timeout names the process, what it waited for, and ends with the tail of its log.
- A process that exits while it is awaited, or that is found dead by `check`, raises
  `VenueError` with its exit status and the tail of its log. So does a process whose liveness
  file (`streams.liveness`: touched while its loop commits or is caught up) has gone stale:
  `check` first SIGKILLs it, since a hung process would otherwise never exit.
- `restart_dead` restarts a process that died (or was hung, and is killed first), with the
  same spec, reports the death and the restart, and gives up loudly after a bounded number of
  restarts.
- `stop` (and leaving the `with` block, on any exception including KeyboardInterrupt) never
  leaves a process it started running: SIGKILL follows SIGTERM after `stop_timeout_s`.
  A process is only ever signalled by its own pid (never by name or process group).

Limits: readiness by log text is a convention of each process's log lines (listed in
`venue_specs`); a log line that changes wording makes `start` time out with a clear message,
not pass silently. Free ports come from the kernel and are released before the processes
bind them, so another program could take one in between (unlikely on a test machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

from sampan import credentials
from sampan.config import settings
from sampan.errors import SampanError
from sampan.fix.codec import FixMessage
from sampan.fix.messages import ExecutionReport, NewOrderSingle, OrdType
from sampan.fix.messages import TimeInForce as FixTif
from sampan.fix.transport import SessionConnection
from sampan.market.side import Side as FixSide
from sampan.streams.liveness import is_alive, liveness_path

POLL_S = 0.1
LOG_TAIL_BYTES = 3_000
# A process on a loaded two-core machine may need most of this to import and connect; the
# wait is still bounded and says what it waited for.
READY_TIMEOUT_S_DEFAULT = 60.0
STOP_TIMEOUT_S_DEFAULT = 15.0
KILL_WAIT_S = 5.0
STALL_S_DEFAULT = 300.0


class VenueError(SampanError):
    """A supervised process failed to start, died, or could not be stopped."""


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    """One process: `command` is the full argv (see `sampan_command`)."""

    name: str
    command: tuple[str, ...]
    ready_log: tuple[str, ...] = ()  # every one of these substrings must appear in the log
    ready_port: int | None = None  # and this 127.0.0.1 TCP port must accept a connection
    ready_timeout_s: float = READY_TIMEOUT_S_DEFAULT
    env: Mapping[str, str] = field(default_factory=dict)
    liveness_file: Path | None = None  # `streams.liveness`: stale means hung
    stall_s: float = STALL_S_DEFAULT  # the process's own stall bound (its --stall-s)

    def __post_init__(self) -> None:
        assert self.name and self.command, "a process has a name and a command"
        assert self.ready_timeout_s > 0


def sampan_command(*args: str) -> tuple[str, ...]:
    """`sampan ARGS...` with this interpreter (so the venv is the same as the caller's)."""
    return (sys.executable, "-m", "sampan.cli", *args)


def log_tail(path: Path, size: int = LOG_TAIL_BYTES) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - size))
            return f.read().decode(errors="replace")
    except OSError:
        return "(no log)"


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


class Managed:
    """A started process: its spec, Popen handle and log path."""

    def __init__(self, spec: ProcessSpec, log_path: Path, base_env: Mapping[str, str]) -> None:
        self.spec = spec
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("ab")
        # A restarted process appends to its log: readiness is judged on this run's lines only.
        self._log_start = self._log.tell()
        self.started_at = time.monotonic()
        try:
            self.popen = subprocess.Popen(
                spec.command,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**base_env, **spec.env},
            )
        except OSError as error:
            self._log.close()
            raise VenueError(f"{spec.name}: could not start {spec.command[0]}: {error}") from None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self) -> str:
        return log_tail(self.log_path)

    def ready(self) -> bool:
        if self.spec.ready_log:
            with self.log_path.open("rb") as f:
                f.seek(self._log_start)
                text = f.read().decode(errors="replace")
            if not all(marker in text for marker in self.spec.ready_log):
                return False
        return self.spec.ready_port is None or _port_open(self.spec.ready_port)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.popen.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(KILL_WAIT_S)

    def hung(self) -> bool:
        path = self.spec.liveness_file
        return path is not None and not is_alive(path, self.spec.stall_s)

    def died(self) -> VenueError:
        return VenueError(
            f"{self.spec.name} (pid {self.pid}) exited with status {self.popen.returncode}; "
            f"log {self.log_path}, last lines:\n{self.tail()}"
        )

    def close_log(self) -> None:
        self._log.close()


class Supervisor:
    """Starts, watches and stops a set of processes; a context manager that always stops."""

    def __init__(
        self,
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        stop_timeout_s: float = STOP_TIMEOUT_S_DEFAULT,
    ) -> None:
        self.log_dir = log_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ if env is None else env)
        self.stop_timeout_s = stop_timeout_s
        self.processes: dict[str, Managed] = {}
        self.restarts: dict[str, int] = {}  # name → times restarted by `restart_dead`

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, specs: Iterable[ProcessSpec], progress: bool = False) -> None:
        """Start every process now, then wait until each is ready (each within its timeout)."""
        batch: list[Managed] = []
        for spec in specs:
            assert spec.name not in self.processes, f"{spec.name} started twice"
            managed = Managed(spec, self.log_dir / f"{spec.name}.log", self.env)
            self.processes[spec.name] = managed
            batch.append(managed)
        waiting = list(batch)
        while waiting:
            for managed in list(waiting):
                if managed.ready():
                    waiting.remove(managed)
                    if progress:
                        elapsed_s = time.monotonic() - managed.started_at
                        print(f"  {managed.spec.name} ready (pid {managed.pid}, {elapsed_s:.1f} s)")
                elif not managed.alive():
                    raise managed.died()
                elif time.monotonic() - managed.started_at > managed.spec.ready_timeout_s:
                    raise VenueError(
                        f"{managed.spec.name} not ready after {managed.spec.ready_timeout_s:.0f} s"
                        f" (waited for {self._what(managed.spec)}); log {managed.log_path}, "
                        f"last lines:\n{managed.tail()}"
                    )
            if waiting:
                time.sleep(POLL_S)

    @staticmethod
    def _what(spec: ProcessSpec) -> str:
        parts = [f"log line {marker!r}" for marker in spec.ready_log]
        if spec.ready_port is not None:
            parts.append(f"port {spec.ready_port}")
        return " and ".join(parts) or "nothing"

    def check(self) -> None:
        """Raise `VenueError` for the first process that is no longer running, or that is hung
        (its liveness file is stale): that one is SIGKILLed first."""
        for managed in self.processes.values():
            if managed.alive() and managed.hung():
                managed.kill()
                raise VenueError(
                    f"{managed.spec.name} (pid {managed.pid}) was hung (liveness file "
                    f"{managed.spec.liveness_file} not touched for over {managed.spec.stall_s:.0f}"
                    f" s) and was killed; log {managed.log_path}, last lines:\n{managed.tail()}"
                )
            if not managed.alive():
                raise managed.died()

    def restart_dead(self, restarts_max: int, report: Callable[[str], None]) -> list[str]:
        """Restart every process that has exited, with its own spec and log (appended), and
        wait (bounded) until it is ready again; `report` gets one line per death and restart.

        A process that has already been restarted `restarts_max` times is not restarted again:
        `VenueError` with its status and log tail, so a crash loop stops the venue loudly."""
        restarted: list[str] = []
        for name, managed in list(self.processes.items()):
            if managed.alive() and managed.hung():
                report(f"{name} (pid {managed.pid}) is hung (stale liveness file): killing it")
                managed.kill()
            if managed.alive():
                continue
            report(
                f"{name} (pid {managed.pid}) exited with status {managed.popen.returncode}; "
                f"last log lines:\n{_last_lines(managed.tail(), 5)}"
            )
            count = self.restarts.get(name, 0)
            if count >= restarts_max:
                raise VenueError(
                    f"{name} died {count + 1} times; not restarting it again. "
                    f"log {managed.log_path}"
                )
            managed.close_log()
            del self.processes[name]
            self.restarts[name] = count + 1
            self.start([managed.spec])
            report(f"{name} restarted (pid {self.processes[name].pid}, restart {count + 1})")
            restarted.append(name)
        return restarted

    def __getitem__(self, name: str) -> Managed:
        return self.processes[name]

    def stop(self, names: Sequence[str] | None = None) -> dict[str, int]:
        """SIGTERM (reverse start order), wait up to `stop_timeout_s` in all, then SIGKILL.

        Returns each stopped process's exit status (negative: the signal that ended it)."""
        chosen = [
            m for name, m in reversed(self.processes.items()) if names is None or name in names
        ]
        for managed in chosen:
            if managed.alive():
                with contextlib.suppress(ProcessLookupError):
                    managed.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        for managed in chosen:
            with contextlib.suppress(subprocess.TimeoutExpired):
                managed.popen.wait(max(0.0, deadline - time.monotonic()))
        statuses: dict[str, int] = {}
        for managed in chosen:
            if managed.alive():
                # It ignored SIGTERM for the whole grace period: a bounded stop beats a hang.
                with contextlib.suppress(ProcessLookupError):
                    managed.popen.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    managed.popen.wait(KILL_WAIT_S)
            statuses[managed.spec.name] = managed.popen.returncode
            managed.close_log()
            del self.processes[managed.spec.name]
        return statuses


def _last_lines(text: str, count: int) -> str:
    return "\n".join("    " + line for line in text.strip().splitlines()[-count:])


def free_tcp_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on 127.0.0.1 (held open together while choosing)."""
    return _free_ports(count, socket.SOCK_STREAM)


def free_udp_ports(count: int) -> list[int]:
    return _free_ports(count, socket.SOCK_DGRAM)


def _free_ports(count: int, kind: socket.SocketKind) -> list[int]:
    sockets = [socket.socket(socket.AF_INET, kind) for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass(frozen=True, slots=True)
class VenuePorts:
    """Every port one venue's processes use on 127.0.0.1."""

    ocg: int
    dropcopy: int
    admin: int
    rts: int
    omd_a: int
    omd_b: int
    omd_refresh: int

    @classmethod
    def free(cls) -> VenuePorts:
        ocg, dropcopy, admin, rts = free_tcp_ports(4)
        omd_a, omd_b, omd_refresh = free_udp_ports(3)
        return cls(ocg, dropcopy, admin, rts, omd_a, omd_b, omd_refresh)


@dataclass(frozen=True, slots=True)
class VenueOptions:
    """Knobs of `venue_specs`; the defaults suit the demo."""

    state_dir: Path
    group_suffix: str  # makes the ledger sink's consumer group unique to this venue
    market_seed: int = 1
    market_rate: int = 0  # synthetic actions/s: 0 keeps the HKEX book exactly as seeded
    extra_firms: tuple[str, ...] = ()  # more `--firm` specs (e.g. a second firm's session)
    router_heartbeat_s: int = 1
    recon_grace_s: float = 2.0
    with_omd: bool = True  # omd-ingest (the sim always publishes OMD-C)
    with_relay: bool = False  # the ledger's outbox relay to ledger.postings


def venue_specs(ports: VenuePorts, options: VenueOptions) -> list[ProcessSpec]:
    """The whole venue: hkex-sim first (everything else connects to it), then the rest."""
    p, d = ports, options.state_dir
    current = settings()  # the processes inherit this environment (state dir, topic prefix)
    firms = ["--firm", "SAMPAN:SAMPANDC:0"]
    for spec in options.extra_firms:
        firms += ["--firm", spec]
    sim = ProcessSpec(
        "hkex-sim",
        sampan_command(
            "hkex-sim",
            *("--ocg-port", str(p.ocg), "--ocg-dropcopy-port", str(p.dropcopy)),
            *("--ocg-admin-port", str(p.admin), "--ocg-state-dir", str(d / "hkex-sim")),
            *firms,
            *("--omd-port-a", str(p.omd_a), "--omd-port-b", str(p.omd_b)),
            *("--omd-refresh-port", str(p.omd_refresh), "--omd-rts-port", str(p.rts)),
            *("--market-seed", str(options.market_seed)),
            *("--market-rate", str(options.market_rate)),
        ),
        ready_log=("hkex-sim omd: lines",),
        ready_port=p.admin,
    )
    rest = [
        ProcessSpec(
            "matcher",
            sampan_command("matcher", "--batch-size", "200"),
            ready_log=("matcher: partition",),
            ready_timeout_s=45.0,
            liveness_file=liveness_path(current, "sampan-matcher"),
        ),
        ProcessSpec(
            "router",
            sampan_command(
                "router",
                *("--ocg-port", str(p.ocg), "--heartbeat-s", str(options.router_heartbeat_s)),
                *("--state-dir", str(d / "router"), "--no-fsync", "--batch-max", "200"),
            ),
            ready_log=("logged on", "open orders restored"),
            ready_timeout_s=45.0,
            liveness_file=liveness_path(current, "sampan-router"),
        ),
        ProcessSpec(
            "ledger-sink",
            sampan_command("ledger-sink", "--group", f"ledger_sink_{options.group_suffix}"),
            ready_log=("assigned",),
            ready_timeout_s=45.0,
        ),
        ProcessSpec(
            "dropcopy",
            sampan_command(
                "dropcopy",
                *("--port", str(p.dropcopy), "--heartbeat-s", "1"),
                *("--state-dir", str(d / "dropcopy")),
            ),
            ready_log=("logged on",),
            liveness_file=liveness_path(current, "dropcopy-SAMPANDC"),
        ),
        ProcessSpec(
            "recon",
            sampan_command(
                "recon", "run", "--grace-s", str(options.recon_grace_s), "--tick-s", "0.5"
            ),
            ready_log=("following",),
        ),
        ProcessSpec(
            "analytics",
            sampan_command("analytics"),
            # Faust's worker logs this once its partitions are assigned and its agents consume.
            ready_log=("[^Worker]: Ready",),
            ready_timeout_s=60.0,
        ),
        ProcessSpec(
            "risk",
            sampan_command("risk"),
            ready_log=("risk: following",),
            ready_timeout_s=45.0,
            liveness_file=liveness_path(current, "sampan-risk"),
        ),
    ]
    if options.with_relay:
        rest.append(
            ProcessSpec(
                "ledger-relay",
                sampan_command("ledger", "relay"),
                ready_log=("ledger relay: resuming after",),
                ready_timeout_s=45.0,
            )
        )
    if options.with_omd:
        rest.append(
            ProcessSpec(
                "omd-ingest",
                sampan_command(
                    "omd-ingest",
                    *("--port-a", str(p.omd_a), "--port-b", str(p.omd_b)),
                    *("--refresh-port", str(p.omd_refresh), "--rts-port", str(p.rts)),
                ),
                ready_log=("omd-ingest: listening",),
            )
        )
    return [sim, *rest]


class HkexFirm:
    """Another firm's OCG-C order session to the simulated HKEX, on a loop in its own thread.

    It rests (or takes) HKEX liquidity the way a real participant would, over FIX, so a test
    or the demo can arrange the simulator's book while the simulator is a separate process.
    `place` waits (bounded) for the order's first execution report and returns every report
    of that order received so far. The session's sequence numbers live in memory: one
    `HkexFirm` per CompID per simulator run.
    """

    def __init__(self, port: int, comp_id: str, timeout_s: float = 10.0) -> None:
        from sampan.fix.session import Session
        from sampan.fix.session_types import SessionConfig, SessionRole
        from sampan.fix.store import MemorySessionStore

        self.comp_id = comp_id
        self.timeout_s = timeout_s
        self.reports: list[ExecutionReport] = []
        self._logged_on = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        config = SessionConfig(
            SessionRole.INITIATOR,
            comp_id,
            "HKEX",
            heartbeat_interval_s=5,
            password=credentials.session_password(comp_id),
        )
        self._session = Session(config, MemorySessionStore())
        self._conn: SessionConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._call(self._connect(port))
        if not self._logged_on.wait(timeout_s):
            self.close()
            raise VenueError(f"firm {comp_id}: no OCG-C logon on port {port} within {timeout_s} s")

    async def _connect(self, port: int) -> None:
        from sampan.fix.transport import open_initiator

        self._conn = await open_initiator("127.0.0.1", port, self._session, self)
        self._task = asyncio.create_task(self._conn.run())

    def _call(self, coro: Coroutine[object, object, object]) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(self.timeout_s)

    # The transport's Application callbacks (on the loop thread).
    def on_logon(self, conn: SessionConnection) -> None:
        self._logged_on.set()

    def on_message(self, conn: SessionConnection, msg: FixMessage) -> None:
        if msg.msg_type == ExecutionReport.MSG_TYPE:
            self.reports.append(ExecutionReport.from_fix(msg))

    def on_session_ended(self, conn: SessionConnection, reason: str, was_logged_on: bool) -> None:
        self._logged_on.clear()

    def place(
        self,
        cl_ord_id: str,
        side: FixSide,
        qty: int,
        price_e3: int,
        tif: FixTif,
        security: int = 700,
    ) -> list[ExecutionReport]:
        """Send a limit order; wait for its first report; return its reports so far."""
        order = NewOrderSingle(
            cl_ord_id, str(security), side, OrdType.LIMIT, qty, price_e3, tif, time.time_ns()
        )

        async def send() -> None:
            assert self._conn is not None
            self._conn.send(order.to_fix())

        self._call(send())
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            mine = [r for r in list(self.reports) if r.cl_ord_id == cl_ord_id]
            if mine and (tif is not FixTif.IOC or mine[-1].leaves_qty == 0):
                return mine
            time.sleep(POLL_S / 2)
        raise VenueError(f"firm {self.comp_id}: no report for {cl_ord_id} in {self.timeout_s} s")

    def close(self) -> None:
        async def shutdown() -> None:
            if self._conn is not None and self._logged_on.is_set():
                self._conn.logout("done")
            if self._task is not None:
                await asyncio.wait({self._task}, timeout=3)
                self._task.cancel()

        with contextlib.suppress(Exception):
            self._call(shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()
