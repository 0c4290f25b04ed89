"""`sampan matcher` (run the matching agent) and `sampan matcher verify`."""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

from sampan.config import settings
from sampan.matcher.agent import MatcherAgent
from sampan.matcher.verify import verify
from sampan.streams import AgentConfig, run_agent


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    current = settings()
    agent = MatcherAgent(current, args.snapshot_commands, args.snapshot_interval_s)
    config = AgentConfig(
        instance_id=os.environ.get("SAMPAN_INSTANCE_ID", "0"),
        batch_size_max=args.batch_size,
        metrics_port=args.metrics_port,
        extra_producer={"message.max.bytes": 64 * 1024 * 1024},
    )
    return run_agent(agent, current, config)


def _verify(args: argparse.Namespace) -> int:
    result = verify(settings(), progress=not args.quiet)
    print(result.summary())
    if result.difference is not None:
        return 1
    return 3 if result.behind is not None else 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "matcher",
        help="run the internal order books as an exactly-once Kafka agent",
        description=(
            "Consumes orders.internal (keyed by security), one book engine per assigned "
            "partition, and commits execution reports (orders.events), fills, trades "
            "(md.trades) and top-5 depth (md.depth) in the transaction that commits its input "
            "offsets. Snapshots its books to matcher.snapshots; on start it loads the latest "
            "snapshot and replays the input up to the committed offset. `sampan matcher verify` "
            "replays orders.internal into fresh books and compares with the committed output."
        ),
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=500,
        help="commands per transaction, at most (default 500)",
    )
    parser.add_argument(
        "--snapshot-commands",
        type=int,
        default=50_000,
        help="snapshot a partition after this many commands",
    )
    parser.add_argument(
        "--snapshot-interval-s", type=float, default=30.0, help="... or after this many seconds"
    )
    parser.add_argument(
        "--metrics-port", type=int, default=0, help="serve Prometheus metrics here (0: off)"
    )
    parser.set_defaults(handler=_run)
    sub = parser.add_subparsers(dest="matcher_command", metavar="SUBCOMMAND")
    check = sub.add_parser(
        "verify",
        help="replay orders.internal and compare with the committed output",
        description=(
            "Replays orders.internal into fresh books and compares, record by record, with "
            "what the matcher committed. Exit status: 0 identical; 1 DIFFERENT (the matcher "
            "committed something the replay does not produce, or lost something it had "
            "committed its input for); 3 BEHIND (what it committed is identical, and it has "
            "input left to process: how many commands per partition is printed)."
        ),
    )
    check.add_argument("--quiet", action="store_true", help="no progress lines")
    check.set_defaults(handler=_verify)
