"""Command-line face of the simulator's OMD-C side: flags, and the asyncio process body.

``add_omd_arguments(parser)`` adds the ``--omd-*`` and ``--market-*`` flags; ``run_omd(args)``
runs the market and its OMD-C publisher until SIGTERM/SIGINT (or ``--omd-duration-s``).
``sampan hkex-sim`` composes these with the FIX side: build one ``Market`` with
``market_from_args(args)`` and pass it to ``run_omd(args, market=...)`` so both sides share the
books. ``register(subparsers)`` adds the standalone ``sampan hkex-sim-omd``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import time

from sampan.hkex_sim.market import LiquidityConfig, Market
from sampan.hkex_sim.omd_lines import LINE_B_PAYLOAD_BYTES_DEFAULT, LineFaults
from sampan.hkex_sim.omd_publisher import trade_id_base_at
from sampan.hkex_sim.omd_server import OmdConfig, OmdSimulator
from sampan.hkex_sim.rts import RtsLimits

log = logging.getLogger(__name__)


def add_omd_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("OMD-C market data")
    g.add_argument("--omd-host", default="127.0.0.1", help="UDP destination (multicast group)")
    g.add_argument("--omd-port-a", type=int, default=51_000, help="line A UDP port")
    g.add_argument("--omd-port-b", type=int, default=51_001, help="line B UDP port")
    g.add_argument("--omd-refresh-port", type=int, default=51_002, help="refresh UDP port")
    g.add_argument("--omd-rts-host", default="127.0.0.1", help="retransmission server bind")
    g.add_argument("--omd-rts-port", type=int, default=51_003, help="retransmission TCP port")
    g.add_argument("--omd-rts-users", default="", help="comma-separated usernames (empty: any)")
    g.add_argument("--omd-rts-requests-per-day", type=int, default=RtsLimits().requests_per_day_max)
    g.add_argument("--omd-channel", type=int, default=1, help="channel id")
    g.add_argument("--omd-tick-ms", type=float, default=5.0, help="publish interval")
    g.add_argument("--omd-heartbeat-s", type=float, default=2.0)
    g.add_argument("--omd-refresh-interval-s", type=float, default=1.0)
    g.add_argument(
        "--omd-payload-b",
        type=int,
        default=LINE_B_PAYLOAD_BYTES_DEFAULT,
        help="line B's payload limit per packet (line A uses the maximum)",
    )
    g.add_argument("--omd-duration-s", type=float, default=0.0, help="stop after (0: never)")
    g.add_argument("--omd-fault-seed", type=int, default=0)
    for line in ("a", "b"):
        for fault in ("drop", "dup", "reorder"):
            g.add_argument(
                f"--omd-{fault}-{line}",
                type=float,
                default=0.0,
                help=f"probability a line {line.upper()} packet is {fault}ped",
            )
    m = parser.add_argument_group("simulated market")
    m.add_argument("--market-seed", type=int, default=1, help="seed of the synthetic liquidity")
    m.add_argument("--market-rate", type=int, default=200, help="synthetic actions per second")


def market_from_args(args: argparse.Namespace) -> Market:
    return Market(liquidity=LiquidityConfig(seed=args.market_seed, actions_per_s=args.market_rate))


def config_from_args(args: argparse.Namespace) -> OmdConfig:
    def faults(line: str, salt: int) -> LineFaults:
        return LineFaults(
            getattr(args, f"omd_drop_{line}"),
            getattr(args, f"omd_dup_{line}"),
            getattr(args, f"omd_reorder_{line}"),
            args.omd_fault_seed * 2 + salt,
        )

    return OmdConfig(
        host=args.omd_host,
        port_a=args.omd_port_a,
        port_b=args.omd_port_b,
        refresh_port=args.omd_refresh_port,
        rts_host=args.omd_rts_host,
        rts_port=args.omd_rts_port,
        channel_id=args.omd_channel,
        tick_s=args.omd_tick_ms / 1000,
        heartbeat_s=args.omd_heartbeat_s,
        refresh_interval_s=args.omd_refresh_interval_s,
        line_b_payload_bytes_max=args.omd_payload_b,
        faults_a=faults("a", 0),
        faults_b=faults("b", 1),
        rts_limits=RtsLimits(requests_per_day_max=args.omd_rts_requests_per_day),
        rts_users=frozenset(u for u in args.omd_rts_users.split(",") if u),
        # A restart the same day must not reuse a TradeID (HKEX's are unique per day).
        trade_id_base=trade_id_base_at(time.time_ns()),
    )


async def run_omd(
    args: argparse.Namespace, market: Market | None = None, stop: asyncio.Event | None = None
) -> int:
    """Run the OMD-C side until ``stop`` (SIGTERM/SIGINT set it) or the duration ends."""
    market = market if market is not None else market_from_args(args)
    stop = stop if stop is not None else asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    sim = OmdSimulator(market, config_from_args(args))
    try:
        await sim.start()
        log.info(
            "hkex-sim omd: lines A %s:%d B %s:%d refresh :%d rts :%d",
            args.omd_host,
            args.omd_port_a,
            args.omd_host,
            args.omd_port_b,
            args.omd_refresh_port,
            sim.rts.port,
        )
        await sim.run(stop, args.omd_duration_s or None)
    finally:
        await sim.close()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    log.info("hkex-sim omd: stopped: %s", sim.status_line())
    return 0


def _handler(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return asyncio.run(run_omd(args))


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "hkex-sim-omd",
        help="the simulated HKEX market publishing OMD-C (lines A/B, refresh, retransmission)",
    )
    add_omd_arguments(parser)
    parser.set_defaults(handler=_handler)
