"""HKEX identifiers the simulated OCG-C gateway hands out, ClOrdID memory and the throttle.

Guarantees:
- OrderID (37) and ExecID (17) are decimal strings `boot * 10^10 + n`: `n` counts from 1 per
  kind within one run of the simulator, `boot` counts the simulator's starts on a trading day
  (persisted under the state directory). So no id repeats within a trading day, even across
  restarts, and an id never changes once sent: a resend replays the stored bytes, and the
  drop-copy copy of a report carries the same ExecID as the order-session original.
- ClOrdIDs seen on a CompID are remembered for the trading day (on disk when a state
  directory is given, so a restart still refuses a resend of yesterday-morning's order), up to
  `CL_ORD_IDS_MAX`; beyond that new requests are refused, never silently forgotten.
- The throttle counts business messages per CompID in whole wall-clock seconds.

Limits: one simulator process owns a state directory (no locking). Without a state directory
`boot` is 1 and ClOrdIDs live in memory only.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

from sampan.fix.store import session_directory

ID_RUN_SPAN = 10**10  # ids per kind per run; a simulator run never comes close
CL_ORD_IDS_MAX = 1_000_000  # per CompID per trading day
_NS_PER_S = 1_000_000_000
_BOOT_FILE = "boot"
_CL_ORD_IDS_FILE = "clordids.log"


def next_boot(state_dir: Path | None, day: date) -> int:
    """Count one more start of the simulator on `day`; 1 without a state directory."""
    if state_dir is None:
        return 1
    directory = session_directory(state_dir, "ids", day)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / _BOOT_FILE
    boot = int(path.read_text(encoding="ascii")) + 1 if path.exists() else 1
    tmp = path.with_suffix(".tmp")
    tmp.write_text(str(boot), encoding="ascii")
    os.replace(tmp, path)
    return boot


class IdAllocator:
    """OrderIDs and ExecIDs for one run of the simulator (shared by every CompID)."""

    def __init__(self, boot: int) -> None:
        assert boot >= 1
        self._base = boot * ID_RUN_SPAN
        self._orders = 0
        self._execs = 0

    def order_id(self) -> str:
        self._orders += 1
        assert self._orders < ID_RUN_SPAN, "order id space of this run exhausted"
        return str(self._base + self._orders)

    def exec_id(self) -> str:
        self._execs += 1
        assert self._execs < ID_RUN_SPAN, "exec id space of this run exhausted"
        return str(self._base + self._execs)


class ClOrdIdMemory:
    """The ClOrdIDs one CompID used today; appended to a file when `directory` is given."""

    def __init__(self, directory: Path | None = None, ids_max: int = CL_ORD_IDS_MAX) -> None:
        self._ids: set[str] = set()
        self._ids_max = ids_max
        self._path: Path | None = None
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            self._path = directory / _CL_ORD_IDS_FILE
            if self._path.exists():
                text = self._path.read_text(encoding="latin-1")
                # A torn last line (crash mid-append) was never acknowledged; drop it.
                lines = text.split("\n")[:-1]
                self._ids.update(lines)

    def __contains__(self, cl_ord_id: str) -> bool:
        return cl_ord_id in self._ids

    @property
    def full(self) -> bool:
        return len(self._ids) >= self._ids_max

    def add(self, cl_ord_id: str) -> None:
        assert not self.full and cl_ord_id not in self._ids
        assert "\n" not in cl_ord_id
        self._ids.add(cl_ord_id)
        if self._path is not None:
            with open(self._path, "a", encoding="latin-1") as f:
                f.write(cl_ord_id + "\n")


class Throttle:
    """At most `per_second_max` business messages in each whole second (0: unlimited)."""

    def __init__(self, per_second_max: int) -> None:
        assert per_second_max >= 0
        self.per_second_max = per_second_max
        self._second = -1
        self._count = 0

    def allow(self, now_ns: int) -> bool:
        if self.per_second_max == 0:
            return True
        second = now_ns // _NS_PER_S
        if second != self._second:
            self._second, self._count = second, 0
        if self._count >= self.per_second_max:
            return False
        self._count += 1
        return True
