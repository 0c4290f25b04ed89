"""`sampan dropcopy` (the drop-copy client) and `sampan recon run | report`.

`sampan dropcopy --host 127.0.0.1 --port 52001 --comp-id SAMPANDC` logs on to the simulator's
(or HKEX's) drop copy and writes every execution report to `hkex.dropcopy` exactly once.
`sampan recon run` reconciles today's drop copy against `fills` and publishes `recon.breaks`;
`sampan recon report` prints today's state. Kafka comes from the environment (config.py).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from datetime import date
from pathlib import Path

from sampan.config import settings
from sampan.market.calendar import trading_day_iso


def trading_day_arg(text: str) -> str:
    """An argparse `type` for --day: a YYYY-MM-DD date, or a usage error naming the value."""
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a day: give YYYY-MM-DD, e.g. 2025-06-16"
        ) from None


def _logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def run_dropcopy(args: argparse.Namespace) -> int:
    from sampan.dropcopy.client import ClientConfig, run

    _logging()
    current = settings()
    config = ClientConfig(
        host=args.host,
        port=args.port,
        comp_id=args.comp_id,
        gateway_comp_id=args.gateway_comp_id,
        heartbeat_interval_s=args.heartbeat_s,
        state_dir=args.state_dir or current.state_dir / "dropcopy",
    )
    return run(config, current)


def run_recon(args: argparse.Namespace) -> int:
    from sampan.dropcopy.recon_runner import ReconRunner

    _logging()
    runner = ReconRunner(settings(), args.day or trading_day_iso(time.time_ns()), args.grace_s)
    signal.signal(signal.SIGTERM, lambda _s, _f: runner.stop())
    signal.signal(signal.SIGINT, lambda _s, _f: runner.stop())
    return runner.run(args.tick_s)


def run_report(args: argparse.Namespace) -> int:
    from sampan.dropcopy.recon_runner import report

    result = report(settings(), args.day or trading_day_iso(time.time_ns()), args.grace_s)
    for line in result.lines():
        print(line)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    dc = subparsers.add_parser(
        "dropcopy", help="the HKEX drop-copy client: FIX drop copy -> hkex.dropcopy, exactly once"
    )
    dc.add_argument("--host", default="127.0.0.1", help="the gateway's drop-copy host")
    dc.add_argument("--port", type=int, default=52_001, help="the gateway's drop-copy port")
    dc.add_argument("--comp-id", default="SAMPANDC", help="our drop-copy CompID")
    dc.add_argument("--gateway-comp-id", default="HKEX", help="the gateway's CompID")
    dc.add_argument("--heartbeat-s", type=int, default=20, help="HeartBtInt we ask for")
    dc.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where our outbound sequence numbers persist (default $SAMPAN_STATE_DIR/dropcopy)",
    )
    dc.set_defaults(handler=run_dropcopy)

    recon = subparsers.add_parser("recon", help="reconcile HKEX drop copy against fills")
    sub = recon.add_subparsers(dest="recon_command", metavar="ACTION", required=True)
    for name, handler, text in (
        ("run", run_recon, "follow hkex.dropcopy and fills; publish recon.breaks"),
        ("report", run_report, "print the day's matched count, open breaks by kind, healed"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument(
            "--day",
            type=trading_day_arg,
            default=None,
            help="YYYY-MM-DD (Hong Kong); default today",
        )
        p.add_argument(
            "--grace-s",
            type=float,
            default=10.0,
            help="how long one side may wait for the other before it is a break",
        )
        if name == "run":
            p.add_argument("--tick-s", type=float, default=1.0, help="evaluation interval")
        p.set_defaults(handler=handler)


def main(argv: list[str] | None = None) -> int:
    """Run these commands without the `sampan` entry point (`python -m sampan.dropcopy.cli`)."""
    parser = argparse.ArgumentParser(prog="sampan")
    register(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    status: int = args.handler(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
