"""`sampan hkex-sim`: the simulated HKEX as one process, order entry plus market data.

One `Market` is shared by the OCG-C gateway (`ocg_gateway`, order entry and drop copy, with
its admin port) and the OMD-C publisher (`omd_cli`), so orders a member sends over FIX trade
against the same books the feed publishes. `add_ocg_arguments` and `run_ocg` are the order
entry's half; `omd_cli` provides the other. SIGTERM or SIGINT stops both.

Firms are given as `--firm COMPID:DROPCOPYCOMPID[:throttle_per_s[:cod]]`, e.g.
`--firm SAMPAN:SAMPANDC:50:cod` (cod turns cancel-on-disconnect on).

Limits: one trading day per run (see `ocg_gateway`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from sampan.errors import ConfigError
from sampan.hkex_sim import omd_cli
from sampan.hkex_sim.market import Market
from sampan.hkex_sim.ocg_admin import serve_admin
from sampan.hkex_sim.ocg_gateway import GATEWAY_COMP_ID, FirmConfig, Gateway, GatewayConfig

log = logging.getLogger(__name__)

DEFAULT_FIRM = "SAMPAN:SAMPANDC:50"


def parse_firm(spec: str) -> FirmConfig:
    parts = spec.split(":")
    if len(parts) not in (2, 3, 4) or not all(parts[:2]):
        raise ConfigError(f"--firm {spec!r}: expected COMPID:DROPCOPYCOMPID[:throttle[:cod]]")
    throttle = 50
    if len(parts) >= 3:
        if not parts[2].isdigit():
            raise ConfigError(f"--firm {spec!r}: throttle must be a whole number")
        throttle = int(parts[2])
    if len(parts) == 4 and parts[3] != "cod":
        raise ConfigError(f"--firm {spec!r}: the fourth part may only be 'cod'")
    return FirmConfig(parts[0], parts[1], throttle, cancel_on_disconnect=len(parts) == 4)


def add_ocg_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("OCG-C order entry and drop copy (FIX 5.0 SP2 / FIXT.1.1)")
    g.add_argument("--ocg-host", default="127.0.0.1", help="bind address of both FIX ports")
    g.add_argument("--ocg-port", type=int, default=52_000, help="order-entry FIX port")
    g.add_argument("--ocg-dropcopy-port", type=int, default=52_001, help="drop-copy FIX port")
    g.add_argument("--ocg-admin-port", type=int, default=52_002, help="admin port (0: none)")
    g.add_argument("--ocg-comp-id", default=GATEWAY_COMP_ID, help="the gateway's CompID")
    g.add_argument(
        "--firm",
        action="append",
        default=None,
        help=f"COMPID:DROPCOPYCOMPID[:throttle_per_s[:cod]], repeatable (default {DEFAULT_FIRM})",
    )
    g.add_argument(
        "--ocg-state-dir",
        type=Path,
        default=None,
        help="where sequence numbers, sent messages and ClOrdIDs persist "
        "(default: $SAMPAN_STATE_DIR/hkex_sim)",
    )


def gateway_config(args: argparse.Namespace) -> GatewayConfig:
    from sampan.config import settings

    state_dir = args.ocg_state_dir or settings().state_dir / "hkex_sim"
    return GatewayConfig(
        firms=tuple(parse_firm(spec) for spec in (args.firm or [DEFAULT_FIRM])),
        host=args.ocg_host,
        order_port=args.ocg_port,
        drop_copy_port=args.ocg_dropcopy_port,
        gateway_comp_id=args.ocg_comp_id,
        state_dir=state_dir,
    )


async def run_ocg(
    args: argparse.Namespace, market: Market, stop: asyncio.Event | None = None
) -> int:
    """Serve order entry, drop copy and the admin port on `market` until `stop` is set."""
    stop = stop if stop is not None else asyncio.Event()
    gateway = Gateway(gateway_config(args), market)
    await gateway.start()
    admin = None
    if args.ocg_admin_port:
        admin = await serve_admin(gateway, args.ocg_host, args.ocg_admin_port)
        log.info("hkex-sim ocg: admin on %s:%d", args.ocg_host, args.ocg_admin_port)
    try:
        await stop.wait()
    finally:
        if admin is not None:
            admin.close()
            await admin.wait_closed()
        await gateway.close()
    return 0


async def _run_both(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    market = omd_cli.market_from_args(args)
    # The OMD side seeds and steps the market (synthetic liquidity) and sets `stop` on
    # SIGTERM/SIGINT; when it returns, order entry stops too.
    ocg = asyncio.create_task(run_ocg(args, market, stop))
    status = 1
    try:
        status = await omd_cli.run_omd(args, market=market, stop=stop)
    finally:
        stop.set()
        ocg_status = await ocg
    return max(status, ocg_status)


def _handler(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return asyncio.run(_run_both(args))


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "hkex-sim",
        help="the simulated HKEX: OCG-C order entry and drop copy, OMD-C market data",
    )
    add_ocg_arguments(parser)
    omd_cli.add_omd_arguments(parser)
    parser.set_defaults(handler=_handler)


def main(argv: list[str] | None = None) -> int:
    """`python -m sampan.hkex_sim.sim_cli hkex-sim ...`, until cli.py lists this module."""
    parser = argparse.ArgumentParser(prog="sampan")
    register(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    status: int = args.handler(args)
    return status


if __name__ == "__main__":
    import sys

    sys.exit(main())
