"""Liveness of a Kafka process: a deadline on every call that may hang, a stall watchdog, and a
file a supervisor can watch.

A thread stuck inside librdkafka cannot be interrupted (librdkafka #5456:
`send_offsets_to_transaction` can block far past its timeout after a broker restart), so the
only action that always works is to end the process: `die` logs CRITICAL and exits with
`EXIT_STALLED` at once, without running cleanup that could block on the stuck client. The
supervisor restarts the process; the new instance's `init_transactions` fences the dead one's
transactional id and aborts its open transaction, and its consumer joins the group as a new
(dynamic) member, so the restarted instance is never fenced by its predecessor (which no longer
runs).

A caller that can do without the stuck client may instead abandon the call (`bounded(...,
abandon=True)`): the worker thread stays stuck in the client, a new worker serves the next
calls, and `CallHung` tells the caller to replace the client (the streams runtime then takes
its transactional id over with a new producer, which fences the stuck one). The watchdog still
ends a process that commits nothing for `stall_s`.

- `Liveness.beat()` is called by the processing loop whenever it is caught up (nothing waiting)
  or has just committed. If no beat comes for `stall_s`, the watchdog thread calls `die`: the
  process had input waiting and committed nothing for that long (a hung call, a transaction
  aborted again and again, a rebuild that never ends).
- While beats come, the watchdog touches the liveness file every `TOUCH_INTERVAL_S`; a
  supervisor treats a file older than `stale_after_s(stall_s)` as a hung process
  (`is_alive`). The file is removed on a clean stop.
- `bounded(what, call, timeout_s)` runs `call` on a worker thread and waits for it at most
  `timeout_s + CALL_GRACE_S`; past that it calls `die` (or, with `abandon`, raises `CallHung`).
  Workers are daemon threads, so a stuck one never keeps the process from exiting.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any, TypeVar

from sampan.config import Settings

log = logging.getLogger(__name__)

EXIT_STALLED = 70  # EX_SOFTWARE: the process gave up on a hung client; restart it
CALL_GRACE_S = 5.0
TOUCH_INTERVAL_S = 1.0
HEALTH_DIR = "health"

T = TypeVar("T")


def liveness_path(settings: Settings, name: str, instance_id: str = "0") -> Path:
    """Where the process `name` (its group or transactional-id stem, without the topic prefix)
    keeps its liveness file: `$SAMPAN_STATE_DIR/health/<prefix><name>-<instance>`."""
    return settings.state_dir / HEALTH_DIR / f"{settings.topic(name)}-{instance_id}"


def stale_after_s(stall_s: float) -> float:
    """How old a liveness file may be before a supervisor takes its process as hung: the
    process exits by itself after `stall_s`; a supervisor acts a little later."""
    return stall_s + 2 * TOUCH_INTERVAL_S + CALL_GRACE_S


def is_alive(path: Path, stall_s: float, now: float | None = None) -> bool:
    """False if the liveness file exists and is stale; True if fresh or not (yet) written."""
    try:
        modified = path.stat().st_mtime
    except FileNotFoundError:
        return True
    return (time.time() if now is None else now) - modified <= stale_after_s(stall_s)


class CallHung(TimeoutError):
    """A bounded call did not return within its deadline and was abandoned: the client it
    was made on must be replaced."""


class _Worker:
    """One daemon thread running calls in order; abandoned (left to its stuck call) when a
    call hangs."""

    def __init__(self, name: str) -> None:
        self._calls: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, call: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        self._calls.put((call, future))
        return future

    def stop(self) -> None:
        self._calls.put(None)

    def _run(self) -> None:
        while True:
            item = self._calls.get()
            if item is None:
                return
            call, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(call())
            except BaseException as error:  # handed to the caller, which raises it
                future.set_exception(error)


def die(reason: str) -> None:
    """Log CRITICAL and end the process now with `EXIT_STALLED` (no cleanup: a thread may be
    stuck in the Kafka client, and closing the client would wait for it)."""
    log.critical("%s; exiting (status %d) so that the process is restarted", reason, EXIT_STALLED)
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):  # a broken handler must not keep the process
            handler.flush()
    sys.stderr.flush()
    os._exit(EXIT_STALLED)


class Liveness:
    """The stall watchdog and liveness file of one processing loop. `start`, `beat`, `close`."""

    def __init__(
        self,
        name: str,
        stall_s: float,
        path: Path | None = None,
        on_stall: Callable[[str], None] = die,
    ) -> None:
        self.name = name
        self.stall_s = stall_s
        self.path = path
        self._on_stall = on_stall
        self._last = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"{name}-watchdog", daemon=True)
        self._worker = _Worker(f"{name}-call")
        self.abandoned = 0  # calls abandoned to a stuck worker

    def start(self) -> None:
        self._last = time.monotonic()
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch()
        self._thread.start()

    def beat(self) -> None:
        self._last = time.monotonic()

    def bounded(
        self, what: str, call: Callable[[], T], timeout_s: float, *, abandon: bool = False
    ) -> T:
        """`call()` on the worker thread; its result or its exception. If it has not returned
        within `timeout_s + CALL_GRACE_S`, the process dies (see `die`); with `abandon`, the
        call is left to its thread instead, a new worker takes the next calls, and `CallHung`
        is raised."""
        future = self._worker.submit(call)
        try:
            return future.result(timeout_s + CALL_GRACE_S)
        except FutureTimeout:
            reason = (
                f"{self.name}: {what} did not return within {timeout_s + CALL_GRACE_S:.0f} s "
                f"(its timeout is {timeout_s:.0f} s)"
            )
            if abandon:
                log.error("%s; abandoning the call and its client", reason)
                self.abandoned += 1
                self._worker = _Worker(f"{self.name}-call{self.abandoned}")
                raise CallHung(reason) from None
            self._on_stall(reason)
            raise TimeoutError(f"{self.name}: {what} hung") from None

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(TOUCH_INTERVAL_S * 2)
        self._worker.stop()
        if self.path is not None:
            self.path.unlink(missing_ok=True)

    def _watch(self) -> None:
        interval = min(TOUCH_INTERVAL_S, max(self.stall_s / 10, 0.01))
        while not self._stop.wait(interval):
            quiet_s = time.monotonic() - self._last
            if quiet_s > self.stall_s:
                self._on_stall(
                    f"{self.name}: no commit for {quiet_s:.0f} s with input waiting "
                    f"(the bound is {self.stall_s:.0f} s)"
                )
                return
            if self.path is not None:
                try:
                    os.utime(self.path)
                except FileNotFoundError:
                    self.path.touch()
