"""End-to-end matcher benchmark on a running Kafka: from producing an order command to
reading its first execution report with read_committed.

It starts a matcher process against a fresh topic prefix, then measures (1) the sustained
maximum: a burst of commands produced as fast as the client can, timed from the first send to
the last report; (2) latency percentiles at fixed offered rates, paced by the sender. Commands
come from the seeded load generator (new limit, IOC, cancel, amend). Every run is bounded in
count and time and stops the matcher it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import replace
from typing import Any

from confluent_kafka import Consumer, Producer

from sampan import topics_cli
from sampan.config import Settings
from sampan.errors import SampanError
from sampan.market.listings import listings
from sampan.schemas import registry
from sampan.streams import profiles
from sampan.tools.bench.cli import percentile
from sampan.tools.loadgen import generate_commands

ACCOUNTS = [f"ACC{n}" for n in range(1, 9)]
RUN_TIMEOUT_S = 180.0
WARMUP_COMMANDS = 2000


class ReportWatcher(threading.Thread):
    """Reads orders.events (read_committed) and notes when each cl_ord_id was first seen."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.seen: dict[str, float] = {}
        self.stop = threading.Event()
        self.consumer = Consumer(
            profiles.follower(
                settings, f"bench-watch-{uuid.uuid4().hex[:8]}", **{"auto.offset.reset": "latest"}
            )
        )
        self.consumer.subscribe([settings.topic("orders.events")])
        self.assigned = threading.Event()

    def run(self) -> None:
        decode = registry().decode
        while not self.stop.is_set():
            messages = self.consumer.consume(1000, 0)
            if not messages:
                first = self.consumer.poll(0.05)
                messages = [first] if first is not None else []
            if self.consumer.assignment():
                self.assigned.set()
            now = time.perf_counter()
            for message in messages:
                if message.error() is None:
                    cl_ord_id = decode("ExecutionReport", message.value())["cl_ord_id"]
                    self.seen.setdefault(cl_ord_id, now)
        self.consumer.close()


def _producer(settings: Settings) -> Producer:
    return Producer(
        profiles.producer(
            settings,
            linger_ms=0,
            **{"socket.nagle.disable": True, "queue.buffering.max.messages": 200_000},
        )
    )


def _send(
    producer: Producer, topic: str, commands: list[dict[str, Any]], rate: int | None
) -> dict[str, float]:
    sent: dict[str, float] = {}
    started = time.perf_counter()
    encode = registry().encode
    for n, command in enumerate(commands):
        if rate is not None:
            due = started + n / rate
            while (now := time.perf_counter()) < due:
                producer.poll(0)
                time.sleep(min(0.0005, due - now))
        sent[command["cl_ord_id"]] = time.perf_counter()
        # The command's own timestamp is its send time, so the matcher's side can be timed too.
        value = encode("OrderCommand", {**command, "ts_ns": time.time_ns()})
        while True:
            try:
                producer.produce(topic, value, str(command["security"]).encode())
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    producer.flush(60)
    return sent


def _wait_all(watcher: ReportWatcher, sent: dict[str, float], what: str) -> None:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while any(cl not in watcher.seen for cl in sent):
        if time.monotonic() > deadline:
            missing = sum(1 for cl in sent if cl not in watcher.seen)
            raise SampanError(
                f"bench {what}: {missing} of {len(sent)} reports missing after {RUN_TIMEOUT_S} s"
            )
        time.sleep(0.05)


def _tagged(commands: list[dict[str, Any]], tag: str) -> list[dict[str, Any]]:
    """Give a run's commands their own client order ids (cancels and amends keep their links)."""
    out = []
    for c in commands:
        orig = f"{tag}{c['orig_cl_ord_id']}" if c["orig_cl_ord_id"] else None
        out.append(
            {
                **c,
                "cl_ord_id": f"{tag}{c['cl_ord_id']}",
                "orig_cl_ord_id": orig,
            }
        )
    return out


def run_e2e_bench(
    settings: Settings, max_orders: int = 30_000, paced_s: float = 5.0
) -> dict[str, Any]:
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    current = replace(settings, topic_prefix=prefix)
    topics_cli.apply(current)
    env = {**os.environ, "SAMPAN_TOPIC_PREFIX": prefix}
    log_path = settings.state_dir / "bench-matcher.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        matcher = subprocess.Popen(
            [sys.executable, "-m", "sampan.cli", "matcher", "--batch-size", "2000"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    watcher = ReportWatcher(current)
    watcher.start()
    try:
        if not watcher.assigned.wait(30):
            raise SampanError("bench: the report reader got no partitions within 30 s")
        producer = _producer(current)
        topic = current.topic("orders.internal")
        stream = list(
            generate_commands(
                42, WARMUP_COMMANDS + max_orders + int(paced_s * 6000), listings(), ACCOUNTS
            )
        )
        warm = _tagged(stream[:WARMUP_COMMANDS], "w")
        _wait_all(watcher, _send(producer, topic, warm, None), "warm-up")
        results: dict[str, Any] = {}
        burst = _tagged(stream[WARMUP_COMMANDS : WARMUP_COMMANDS + max_orders], "m")
        first = time.perf_counter()
        sent = _send(producer, topic, burst, None)
        _wait_all(watcher, sent, "max")
        last = max(watcher.seen[cl] for cl in sent)
        results["e2e_orders_per_s_max"] = round(len(burst) / (last - first))
        offset = WARMUP_COMMANDS + max_orders
        for rate in (1000, 5000):
            count = int(rate * paced_s)
            paced = _tagged(stream[offset : offset + count], f"r{rate}")
            offset += count
            sent = _send(producer, topic, paced, rate)
            _wait_all(watcher, sent, f"at {rate}/s")
            latencies = sorted((watcher.seen[cl] - t) * 1000 for cl, t in sent.items())
            for name, fraction in (("p50", 0.5), ("p99", 0.99), ("p999", 0.999)):
                results[f"e2e_latency_ms_{name}_at_{rate}"] = round(
                    percentile(latencies, fraction), 2
                )
        return results
    finally:
        watcher.stop.set()
        watcher.join(10)
        matcher.send_signal(signal.SIGTERM)
        try:
            matcher.wait(30)
        except subprocess.TimeoutExpired:
            matcher.kill()
