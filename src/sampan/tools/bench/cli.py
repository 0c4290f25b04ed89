"""`sampan bench <what>`: benchmarks that print a table, the machine, and with `--json` end with
one JSON object holding every number.

Timings on shared machines move from run to run: compare numbers from one run as ratios, and
quote in the README only numbers a run of this command printed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sampan.config import KAFKA_VERSION

SERDE_RECORDS = 50_000


def machine() -> dict[str, Any]:
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        mem_kib = int(meminfo.read_text().split()[1])
    return {
        "cpu": model,
        "cores": os.cpu_count() or 0,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "kafka": KAFKA_VERSION,
        # The machine may be shared: its load when the run started says how far to trust the
        # absolute figures (ratios within one run hold better).
        "load_1m": round(os.getloadavg()[0], 2),
    }


def percentile(sorted_values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of already sorted values."""
    assert sorted_values, "percentile of no values"
    index = min(len(sorted_values) - 1, max(0, math.ceil(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def bench_serde(records: int = SERDE_RECORDS) -> dict[str, Any]:
    """Encode and decode `records` Fill records in single-object encoding."""
    from sampan.schemas import registry

    reg = registry()
    fill = {
        "exec_id": "X700-123456",
        "venue": "INTERNAL",
        "security": 700,
        "price_e3": 380_200,
        "qty": 300,
        "buy_account": "ACC1",
        "buy_member": "M1",
        "buy_order_id": "O-1",
        "sell_account": "ACC2",
        "sell_member": "M2",
        "sell_order_id": "O-2",
        "aggressor": "BUY",
        "parent_id": None,
        "ts_ns": time.time_ns(),
    }
    started = time.perf_counter()
    encoded = [reg.encode("Fill", fill) for _ in range(records)]
    encode_s = time.perf_counter() - started
    started = time.perf_counter()
    for data in encoded:
        reg.decode("Fill", data)
    decode_s = time.perf_counter() - started
    return {
        "serde_records": records,
        "serde_encode_records_per_s": round(records / encode_s),
        "serde_decode_records_per_s": round(records / decode_s),
        "serde_record_bytes": len(encoded[0]),
    }


# Other benchmarks live beside the code they measure; each is `module:function(args) -> dict`.
BENCHES: dict[str, str] = {
    "serde": "sampan.tools.bench.cli:_serde",
    "matcher": "sampan.tools.bench.matcher:run",
    "ledger": "sampan.tools.bench.ledger:run",
    "omd": "sampan.tools.bench.omd:run",
    "route": "sampan.tools.bench.route:run",
    "ui": "sampan.tools.bench.ui:run",
    "auction": "sampan.tools.bench.auction:run",
    "venue": "sampan.tools.bench.venue:run",
    "floor": "sampan.tools.bench.floor:run",
    "analytics": "sampan.tools.bench.analytics:run",
}


def _serde(args: argparse.Namespace) -> dict[str, Any]:
    return bench_serde(args.records or SERDE_RECORDS)


def _resolve(spec: str) -> Callable[[argparse.Namespace], dict[str, Any]]:
    module_name, _, function = spec.partition(":")
    result: Callable[[argparse.Namespace], dict[str, Any]] = getattr(
        importlib.import_module(module_name), function
    )
    return result


def print_table(results: dict[str, Any]) -> None:
    width = max(len(key) for key in results)
    for key, value in results.items():
        if isinstance(value, bool):
            shown = "yes" if value else "no"
        elif isinstance(value, int):
            shown = f"{value:,}"
        elif isinstance(value, float):
            shown = f"{value:,.3f}"
        else:
            shown = value
        print(f"  {key.ljust(width)}  {shown}")


def _run(args: argparse.Namespace) -> int:
    names = list(BENCHES) if args.what == "all" else [args.what]
    host = machine()
    print(
        f"machine: {host['cpu']}, {host['cores']} cores, {host['memory_gib']} GiB, "
        f"Python {host['python']}, Kafka {host['kafka']}, load average {host['load_1m']}"
    )
    results: dict[str, Any] = {}
    for name in names:
        print(f"bench {name}:", flush=True)
        numbers = _resolve(BENCHES[name])(args)
        print_table(numbers)
        results.update(numbers)
    if args.json:
        print(json.dumps({"machine": host, **results}, sort_keys=True))
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="run a benchmark and print its numbers and the machine",
        description=(
            "Benchmarks print a table and the machine they ran on; with --json the output ends "
            "with one JSON object holding every number. Those that need Kafka or PostgreSQL use "
            "SAMPAN_KAFKA_BOOTSTRAP and SAMPAN_DATABASE_URL (start the local stack first)."
        ),
    )
    parser.add_argument("what", choices=[*BENCHES, "all"], help="which benchmark")
    parser.add_argument("--json", action="store_true", help="end with one JSON object")
    parser.add_argument("--records", type=int, default=0, help="size of the run, where it applies")
    parser.add_argument(
        "--clients", type=int, default=0, help="WebSocket clients of `bench ui` (default 1000)"
    )
    parser.add_argument(
        "--rates", default="", help="`bench venue`: offered orders/s, comma separated (250,1000)"
    )
    parser.add_argument(
        "--duration", type=float, default=0.0, help="`bench venue`: seconds per rate (default 10)"
    )
    parser.set_defaults(handler=_run)
