"""``sampan omd-ingest``: the OMD-C feed handler process (market data flow in design.md).

Receives lines A and B and the refresh channel over UDP, recovers gaps from the
retransmission server, and publishes md.depth, md.trades, md.stats and reference.instruments
to Kafka. At start it reads back the HKEX trades it committed today, so a restart neither
repeats a trade nor (within the retransmission server's reach) misses one. SIGTERM or SIGINT
stops it cleanly: receiving stops, the open transaction is committed and deliveries flushed
(bounded), and it exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from sampan.config import settings
from sampan.omd_ingest.kafka_out import KafkaSink
from sampan.omd_ingest.service import IngestConfig, OmdIngest

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="lines' address (multicast group)")
    parser.add_argument("--port-a", type=int, default=51_000)
    parser.add_argument("--port-b", type=int, default=51_001)
    parser.add_argument("--refresh-port", type=int, default=51_002)
    parser.add_argument("--rts-host", default="127.0.0.1")
    parser.add_argument("--rts-port", type=int, default=51_003)
    parser.add_argument("--rts-username", default="sampan")
    parser.add_argument("--channel", type=int, default=1)
    parser.add_argument(
        "--from-start",
        action="store_true",
        help="expect sequence number 1 next instead of starting from the refresh channel",
    )
    parser.add_argument("--status-interval-s", type=float, default=5.0)
    parser.add_argument("--linger-ms", type=int, default=2, help="Kafka producer linger")


def config_from_args(args: argparse.Namespace, trades_through: int | None = None) -> IngestConfig:
    return IngestConfig(
        host=args.host,
        port_a=args.port_a,
        port_b=args.port_b,
        refresh_port=args.refresh_port,
        rts_host=args.rts_host,
        rts_port=args.rts_port,
        rts_username=args.rts_username,
        channel_id=args.channel,
        late_join=not args.from_start,
        status_interval_s=args.status_interval_s,
        trades_through=trades_through,
    )


async def run_ingest(args: argparse.Namespace) -> int:
    sink = KafkaSink(settings(), linger_ms=args.linger_ms, channel_id=args.channel)
    recovered = sink.recover()
    log.info(
        "omd-ingest: read back %d HKEX trades committed today; last at sequence number %s",
        recovered.trades,
        recovered.last_seq_num,
    )
    # Only a late joiner completes trades: starting from sequence number 1 replays the day.
    through = recovered.last_seq_num if not args.from_start else None
    ingest = OmdIngest(config_from_args(args, through), sink)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await ingest.start()
        log.info(
            "omd-ingest: listening A :%d B :%d refresh :%d",
            args.port_a,
            args.port_b,
            args.refresh_port,
        )
        await ingest.run(stop)
    finally:
        await ingest.close()
        remaining = sink.close()
    log.info(
        "omd-ingest: stopped: %s; kafka produced=%d delivered=%d undelivered=%d",
        ingest.status_line(),
        sink.produced,
        sink.delivered,
        remaining,
    )
    return 0 if remaining == 0 else 1


def _handler(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return asyncio.run(run_ingest(args))


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "omd-ingest", help="HKEX OMD-C feed handler: lines A/B -> md.depth, md.trades, md.stats"
    )
    add_arguments(parser)
    parser.set_defaults(handler=_handler)
