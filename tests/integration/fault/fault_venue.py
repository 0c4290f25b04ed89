"""The fault test's tools around a running venue: a supervisor that restarts what exits (as
production's does), a sender of the stream, and a reader of whole topics.

Guarantees: every wait is bounded and names what it waited for; a process is only ever
signalled by its own pid.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from fault_stream import Item

from sampan.config import Settings
from sampan.schemas import registry
from sampan.streams import profiles
from sampan.tools.venue import Managed, Supervisor

RESPAWN_DELAY_S = 0.5  # production's supervisor restarts an exited process after a pause


@dataclass
class Exit:
    name: str
    status: int | None
    killed: bool  # by the test (SIGKILL), not on its own
    at_s: float
    tail: str = ""


def _quiet(text: str) -> str:
    """A log without librdkafka's own lines (`%<level>|...`), which drown the process's."""
    return "\n".join(line for line in text.splitlines() if not line.startswith("%"))


class Restarting(Supervisor):
    """A `Supervisor` that also restarts any process that exited (and records why)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.exits: list[Exit] = []
        self.t0 = time.monotonic()
        self._killed: set[int] = set()
        self._log_from: dict[str, int] = {}  # where each restarted process's log starts anew

    def kill(self, name: str) -> int:
        managed = self.processes[name]
        pid = managed.pid
        self._killed.add(pid)
        managed.popen.kill()  # SIGKILL to its own pid
        managed.popen.wait(10)
        return pid

    def respawn_dead(self) -> list[str]:
        restarted: list[str] = []
        for name, managed in list(self.processes.items()):
            if managed.alive():
                continue
            killed = managed.pid in self._killed
            self.exits.append(
                Exit(
                    name,
                    managed.popen.returncode,
                    killed,
                    time.monotonic() - self.t0,
                    "" if killed else _quiet(managed.tail())[-1500:],
                )
            )
            managed.close_log()
            time.sleep(RESPAWN_DELAY_S)
            with managed.log_path.open("ab") as log:
                log.write(b"\n=== restarted by the fault test's supervisor ===\n")
            self._log_from[name] = managed.log_path.stat().st_size
            self.processes[name] = Managed(managed.spec, managed.log_path, self.env)
            restarted.append(name)
        return restarted

    def ready_again(self, name: str) -> bool:
        """A restarted process logged its ready lines anew (and its port, if any, accepts)."""
        managed = self.processes[name]
        if not managed.alive():
            return False
        with managed.log_path.open("rb") as log:
            log.seek(self._log_from.get(name, 0))
            text = log.read().decode(errors="replace")
        if not all(marker in text for marker in managed.spec.ready_log):
            return False
        return managed.ready()  # the port check (the log markers are in the log too)

    def unexpected_exits(self) -> list[Exit]:
        return [e for e in self.exits if not e.killed]


@dataclass
class Sender:
    """Produces the stream's items (idempotent, acks=all, murmur2 like the venue's writers);
    records each item's partition and offset from its delivery report."""

    settings: Settings
    failed: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.producer = Producer(
            profiles.producer(
                self.settings,
                linger_ms=2,
                # Rides through a broker restart: records wait in the queue meanwhile.
                **{"message.timeout.ms": 480_000, "message.max.bytes": 2_000_000, "log_level": 3},
            )
        )
        OPEN_CLIENTS.append(self.producer)

    def send(self, item: Item) -> None:
        if item.command is not None:
            record = dict(item.command)
            if not item.fixed_ts:
                record["ts_ns"] = time.time_ns()
            value = registry().encode("OrderCommand", record)
        else:
            assert item.payload is not None
            value = item.payload
            if not value:  # a valid OrderCommand cut short in its body
                value = registry().encode("OrderCommand", _sample(time.time_ns()))[:-9]
        item.sent_value = value
        item.sent_ns = time.time_ns()

        def delivered(error: Any, message: Any) -> None:
            if error is not None:
                self.failed.append(f"item {item.n}: {error}")
            else:
                item.partition, item.offset = message.partition(), message.offset()

        self.producer.produce(
            self.settings.topic(item.topic), value, item.key.encode(), on_delivery=delivered
        )
        self.producer.poll(0)

    def flush(self, timeout_s: float) -> None:
        left = self.producer.flush(timeout_s)
        assert left == 0, f"{left} stream records not delivered within {timeout_s} s"
        assert not self.failed, f"stream records failed: {self.failed[:5]}"


def _sample(ts_ns: int) -> dict[str, Any]:
    return {
        "command_id": "cut",
        "kind": "NEW",
        "account": "F1",
        "member": "M1",
        "security": 700,
        "cl_ord_id": "cut",
        "orig_cl_ord_id": None,
        "side": "BUY",
        "ord_type": "LIMIT",
        "time_in_force": "DAY",
        "price_e3": 512_000,
        "qty": 100,
        "route": "INTERNAL",
        "batch_id": None,
        "parent_id": None,
        "user": "fault",
        "ts_ns": ts_ns,
        "stp": None,
    }


OPEN_CLIENTS: list[Any] = []  # closed by `close_clients` before the private stack stops


def close_clients() -> None:
    while OPEN_CLIENTS:
        client = OPEN_CLIENTS.pop()
        if isinstance(client, Consumer):
            client.close()
        else:
            client.flush(5)


class Follower:
    """Reads one topic from the start (read_committed) and keeps what it read."""

    def __init__(self, settings: Settings, topic: str, schema: str | None) -> None:
        self.name = settings.topic(topic)
        self.schema = schema
        self.records: list[Any] = []
        self.undecodable: list[tuple[int, int]] = []
        self.at_end: set[int] = set()
        self.consumer = Consumer(
            profiles.end_reader(settings, f"fault-{uuid.uuid4().hex[:8]}", log_level=3)
        )
        OPEN_CLIENTS.append(self.consumer)
        parts = self.consumer.list_topics(self.name, timeout=30).topics[self.name].partitions
        self.partitions = sorted(parts)
        self.consumer.assign([TopicPartition(self.name, p, 0) for p in self.partitions])

    def read(self, timeout_s: float) -> list[Any]:
        """Read on until every partition reported its end and one more poll found nothing
        new; the records read so far. (A partition's end is reported once per arrival there,
        so it is remembered between calls.)"""
        deadline = time.monotonic() + timeout_s
        while True:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} not read to its end within {timeout_s} s")
            batch = self.consumer.consume(1000, 0.2)
            for m in batch:
                error = m.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        self.at_end.add(m.partition())
                    continue
                self.at_end.discard(m.partition())
                value = m.value()
                if value is None:
                    continue
                if self.schema is None:
                    self.records.append((m.partition(), m.offset(), m.key(), value))
                    continue
                try:
                    self.records.append(registry().decode(self.schema, value))
                except Exception:
                    self.undecodable.append((m.partition(), m.offset()))
            if not batch and len(self.at_end) == len(self.partitions):
                return self.records


def wait_for(
    what: str, predicate: Callable[[], Any], timeout_s: float, tick: Callable[[], Any]
) -> Any:
    """Poll `predicate` (and `tick`, the supervisor's restarts) until truthy, at most
    `timeout_s`; AssertionError naming `what` otherwise."""
    deadline = time.monotonic() + timeout_s
    while True:
        tick()
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.5)
