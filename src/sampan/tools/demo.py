"""`sampan demo` (the whole venue: see `demo_venue`), and `sampan demo pipeline`: a live
pipeline on the local stack.

The pipeline: order commands are produced to `orders.requests`; the acknowledging agent (a real
process running on the exactly-once runtime) turns each into an `ExecutionReport` on
`orders.events` in a Kafka transaction; the demo reads the reports back with read_committed,
records the run as a row in PostgreSQL and reads the row back. `sampan demo agent` runs the
acknowledging agent alone, as the demo and the integration tests start it.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sampan import stack, topics_cli
from sampan.config import Settings, settings
from sampan.schemas import SchemaError, records, registry
from sampan.streams import AgentConfig, InRecord, Output, profiles, run_agent
from sampan.tools.records import produce_commands

READ_TIMEOUT_S = 60.0

log = logging.getLogger(__name__)


class AckAgent:
    """Acknowledges every order command with a NEW execution report (or a REJECTED one for a
    non-positive quantity). Stateless; the exec id is the command's origin, so a duplicate
    output would be visible as a repeated exec id."""

    name = "sampan-ack"
    inputs: Mapping[str, str] = {"orders.requests": "OrderCommand"}

    def handle(self, record: InRecord) -> Iterable[Output]:
        command = record.value
        ok = command["qty"] > 0
        report = records.execution_report(
            exec_id=f"ack-{record.partition}-{record.offset}",
            venue="INTERNAL",
            order_id=command["command_id"],
            cl_ord_id=command["cl_ord_id"],
            orig_cl_ord_id=command["orig_cl_ord_id"],
            account=command["account"],
            member=command["member"],
            security=command["security"],
            side=command["side"],
            exec_type="NEW" if ok else "REJECTED",
            ord_status="NEW" if ok else "REJECTED",
            price_e3=command["price_e3"],
            order_qty=command["qty"],
            leaves_qty=command["qty"] if ok else 0,
            reject_reason=None if ok else "INVALID_QTY",
            ts_ns=command["ts_ns"],
        )
        yield Output("orders.events", record.key, registry().encode("ExecutionReport", report))

    def end_batch(self) -> Iterable[Output]:
        return ()

    def stopping(self) -> Iterable[Output]:
        return ()

    def assigned(self, partitions: Sequence[tuple[str, int]], consumer: Any) -> None:
        return None

    def revoked(self, partitions: Sequence[tuple[str, int]]) -> None:
        return None

    def reset(self) -> None:
        return None


def read_reports(
    current: Settings, run_id: str, expected: int, timeout_s: float
) -> list[records.ExecutionReport]:
    """Read execution reports of this run (read_committed) until `expected` or the timeout."""
    from confluent_kafka import Consumer

    consumer = Consumer(profiles.follower(current, f"sampan-demo-reader-{uuid.uuid4().hex[:8]}"))
    consumer.subscribe([current.topic("orders.events")])
    reports: list[records.ExecutionReport] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(reports) < expected and time.monotonic() < deadline:
            for message in consumer.consume(500, 0.2):
                if message.error() is None:
                    try:
                        report = records.read_execution_report(message.value())
                    except SchemaError as error:
                        log.warning(
                            "skipped an undecodable record at %s[%d]@%d: %s",
                            message.topic(),
                            message.partition(),
                            message.offset(),
                            error,
                        )
                        continue
                    if report["cl_ord_id"].startswith(run_id + "-"):
                        reports.append(report)
    finally:
        consumer.close()
    return reports


def record_run(
    current: Settings, run_id: str, commands: int, reports: int, elapsed_ms: int
) -> tuple[Any, ...]:
    import psycopg

    with psycopg.connect(current.database_url, connect_timeout=10) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS demo_runs (run_id text PRIMARY KEY, commands int NOT NULL,"
            " reports int NOT NULL, elapsed_ms bigint NOT NULL, at timestamptz DEFAULT now())"
        )
        conn.execute(
            "INSERT INTO demo_runs (run_id, commands, reports, elapsed_ms) VALUES (%s, %s, %s, %s)",
            (run_id, commands, reports, elapsed_ms),
        )
        conn.commit()
        row = conn.execute(
            "SELECT run_id, commands, reports, elapsed_ms, at FROM demo_runs WHERE run_id = %s",
            (run_id,),
        ).fetchone()
    assert row is not None
    return tuple(row)


def start_agent_process(extra_env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    env = {**os.environ, **(extra_env or {})}
    return subprocess.Popen([sys.executable, "-m", "sampan.cli", "demo", "agent"], env=env)


def _run_demo(args: argparse.Namespace) -> int:
    current = settings()
    if not os.environ.get("SAMPAN_KAFKA_BOOTSTRAP"):
        for line in stack.up(current):
            print(f"stack: {line}")
    result = topics_cli.apply(current)
    print(
        f"topics: {len(result.created)} created, {len(result.unchanged)} present, {len(result.drift)} drift"
    )
    run_id = f"demo{uuid.uuid4().hex[:8]}"
    agent = start_agent_process()
    try:
        started = time.monotonic()
        produce_commands(current, run_id, args.orders)
        print(
            f"produced {args.orders} order commands to {current.topic('orders.requests')} (run {run_id})"
        )
        reports = read_reports(current, run_id, args.orders, READ_TIMEOUT_S)
        elapsed_ms = int((time.monotonic() - started) * 1000)
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=30)
    exec_ids = {r["exec_id"] for r in reports}
    accepted = sum(1 for r in reports if r["exec_type"] == "NEW")
    print(
        f"read {len(reports)} execution reports from {current.topic('orders.events')} "
        f"(read_committed) in {elapsed_ms} ms: {accepted} accepted, "
        f"{len(reports) - len(exec_ids)} duplicates"
    )
    row = record_run(current, run_id, args.orders, len(reports), elapsed_ms)
    print(f"postgres: wrote and read back demo_runs row {row[:4]} at {row[4]:%Y-%m-%d %H:%M:%S}")
    return 0 if len(exec_ids) == args.orders == len(reports) else 1


def _run_agent(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = AgentConfig(
        instance_id=os.environ.get("SAMPAN_INSTANCE_ID", "0"),
        batch_size_max=args.batch_size,
        metrics_port=args.metrics_port,
    )
    return run_agent(AckAgent(), settings(), config)


def register(subparsers: Any) -> None:
    from sampan.tools.demo_live import register_live

    parser = subparsers.add_parser(
        "demo",
        help="run the whole venue live with simulated members, until Ctrl-C",
        description=(
            "Starts the local stack (unless SAMPAN_KAFKA_BOOTSTRAP points elsewhere), applies "
            "the topic catalog under a fresh prefix, seeds reference data and accounts, starts "
            "every venue process (hkex-sim with liquidity, omd-ingest, matcher, router, "
            "ledger-sink, dropcopy, recon, ui) supervised (a process that dies is restarted "
            "and reported), creates the demo users, prints the URL and the logins, and keeps "
            "simulated members trading with each other and with HKEX until Ctrl-C or "
            "--duration. `sampan demo script` runs the scripted session and prints its "
            "summary; `sampan demo pipeline` runs the one-agent pipeline; `sampan demo agent` "
            "runs only its agent."
        ),
    )
    register_live(parser)
    parser.set_defaults(handler=_run_live_demo)
    sub = parser.add_subparsers(dest="demo_command", metavar="SUBCOMMAND")
    script = sub.add_parser(
        "script", help="the scripted session on the whole venue, its summary, then stop"
    )
    script.add_argument(
        "--keep-logs", action="store_true", help="print where the process logs are kept"
    )
    script.set_defaults(handler=_run_venue_demo)
    pipeline = sub.add_parser("pipeline", help="the acknowledging agent's pipeline demo")
    pipeline.add_argument(
        "--orders", type=int, default=1000, help="order commands to send (default 1000)"
    )
    pipeline.set_defaults(handler=_run_demo)
    agent = sub.add_parser("agent", help="run the acknowledging agent until SIGTERM")
    agent.add_argument(
        "--batch-size", type=int, default=500, help="records per transaction, at most"
    )
    agent.add_argument(
        "--metrics-port", type=int, default=0, help="serve Prometheus metrics here (0: off)"
    )
    agent.set_defaults(handler=_run_agent)


def _run_live_demo(args: argparse.Namespace) -> int:
    from sampan.tools.demo_live import run_live_demo

    return run_live_demo(args)


def _run_venue_demo(args: argparse.Namespace) -> int:
    from sampan.tools.demo_venue import run_venue_demo

    return run_venue_demo(keep_logs=args.keep_logs)
