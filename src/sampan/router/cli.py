"""`sampan router`: pre-trade risk and routing, with the OCG-C session to HKEX.

Connections come from the environment (`sampan.config`); the OCG-C gateway, CompIDs and
limits from the flags below. SIGTERM or SIGINT finishes the current batch, logs out of HKEX
and exits 0; an aborted transaction is rewound and redone in the process; a lost fence or a
fatal Kafka error exits 1, a router that commits nothing for `--stall-s` with work waiting
exits 70 (`streams.liveness`); a restart recovers.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from sampan.config import settings
from sampan.router.core import CoreConfig
from sampan.router.fixlink import LinkConfig
from sampan.router.risk import RiskConfig
from sampan.router.service import RouterConfig, serve


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("OCG-C order entry (FIX 5.0 SP2 / FIXT.1.1)")
    g.add_argument("--ocg-host", default="127.0.0.1", help="gateway host (default %(default)s)")
    g.add_argument("--ocg-port", type=int, default=52_000, help="order-entry port (%(default)s)")
    g.add_argument("--comp-id", default="SAMPAN", help="our CompID (default %(default)s)")
    g.add_argument("--gateway-comp-id", default="HKEX", help="the gateway's CompID")
    g.add_argument("--heartbeat-s", type=int, default=20, help="HeartBtInt (default 20)")
    g.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="outbound FIX sequence numbers and sent messages (default $SAMPAN_STATE_DIR/router)",
    )
    g.add_argument(
        "--no-fsync",
        action="store_true",
        help="do not fsync the FIX store per message (tests and benchmarks only)",
    )
    g.add_argument(
        "--cl-ord-id-base",
        type=int,
        default=0,
        help="prefix number of our HKEX ClOrdIDs: change it when orders.requests is recreated "
        "within a trading day",
    )
    r = parser.add_argument_group("risk")
    r.add_argument("--collar-bps", type=int, default=1_000, help="price collar (default 1000)")
    r.add_argument("--market-hold-bps", type=int, default=500, help="market order hold margin")
    r.add_argument("--charges-margin-bps", type=int, default=20, help="charges held on buys")
    r.add_argument("--open-orders-max", type=int, default=100_000)
    p = parser.add_argument_group("process")
    p.add_argument("--instance-id", default="0", help="transactional id suffix")
    p.add_argument("--batch-max", type=int, default=500, help="records per transaction")
    p.add_argument(
        "--stall-s",
        type=float,
        default=300.0,
        help="exit (status 70) after this long with work waiting and nothing committed",
    )
    p.add_argument("--log-level", default="INFO")


def config_from(args: argparse.Namespace) -> RouterConfig:
    state_dir = args.state_dir or settings().state_dir / "router"
    return RouterConfig(
        link=LinkConfig(
            host=args.ocg_host,
            port=args.ocg_port,
            comp_id=args.comp_id,
            gateway_comp_id=args.gateway_comp_id,
            heartbeat_interval_s=args.heartbeat_s,
            state_dir=state_dir,
            fsync=not args.no_fsync,
        ),
        core=CoreConfig(
            cl_ord_id_base=args.cl_ord_id_base,
            open_orders_max=args.open_orders_max,
            risk=RiskConfig(
                collar_bps=args.collar_bps,
                market_hold_bps=args.market_hold_bps,
                charges_margin_bps=args.charges_margin_bps,
            ),
        ),
        instance_id=args.instance_id,
        batch_size_max=args.batch_max,
        stall_timeout_s=args.stall_s,
    )


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    return serve(settings(), config_from(args))


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "router",
        help="pre-trade risk and routing: internal book, HKEX (OCG-C) or smart",
        description="Consumes orders.requests; writes orders.internal, orders.events, fills "
        "and router.state; holds the OCG-C order-entry session to HKEX.",
    )
    add_arguments(parser)
    parser.set_defaults(handler=_run)


def main() -> int:
    """`python -m sampan.router.cli`: the router without the umbrella command."""
    parser = argparse.ArgumentParser(prog="sampan router")
    add_arguments(parser)
    return _run(parser.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
