"""`sampan bench matcher`: the pure core's command rate and latency, then end to end on Kafka."""

from __future__ import annotations

import argparse
from typing import Any

from sampan.config import settings
from sampan.tools.bench.matcher_e2e import run_e2e_bench

E2E_MAX_ORDERS = 30_000
E2E_PACED_S = 5.0


def run(args: argparse.Namespace) -> dict[str, Any]:
    from sampan.tools.bench.matcher_core import run_core_bench

    results: dict[str, Any] = dict(
        run_core_bench(seed=42, books=10, commands=args.records or 300_000)
    )
    results.update(run_e2e_bench(settings(), E2E_MAX_ORDERS, E2E_PACED_S))
    return results
