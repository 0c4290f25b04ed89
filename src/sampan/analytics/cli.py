"""`sampan analytics`: the analytics app (faust-streaming worker) until SIGTERM or SIGINT.

Connections come from the environment (`sampan.config`). Its topics must exist (`sampan
topics apply` creates them from the catalog): Faust creates none. At-least-once with
idempotent outputs (see `sampan.analytics.app`).
"""

from __future__ import annotations

import argparse
import logging
import signal
from typing import Any

from sampan.config import settings


def _stop_while_starting(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _run(args: argparse.Namespace) -> int:
    import faust

    from sampan.analytics.app import build

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Until Faust's worker installs its own handlers, a SIGTERM (a supervisor stopping the venue
    # while the state is still being read) ends the process cleanly instead of by the signal.
    signal.signal(signal.SIGTERM, _stop_while_starting)
    app = build(settings())
    worker = faust.Worker(app, loglevel=args.log_level, redirect_stdouts=False)
    worker.execute_from_commandline()  # exits the process when the worker stops


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "analytics",
        help="session statistics (internal venue) and top/bottom movers (both venues)",
        description=(
            "Reads md.trades of both venues and reference.instruments; writes md.stats for the "
            "internal venue (last, open, high, low, VWAP, volume, turnover, change against the "
            "previous close; HKEX's come from omd-ingest) and md.movers (top and bottom 10 per "
            "venue). Runs as one instance; at-least-once with idempotent outputs."
        ),
    )
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning"))
    parser.set_defaults(handler=_run)
