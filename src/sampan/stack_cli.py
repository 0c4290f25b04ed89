"""`sampan stack up | down | status | reset`: the local Kafka broker and PostgreSQL."""

from __future__ import annotations

import argparse
from typing import Any

from sampan import stack
from sampan.config import settings


def _run(args: argparse.Namespace) -> int:
    current = settings()
    actions = {"up": stack.up, "down": stack.down, "status": stack.status, "reset": stack.reset}
    for line in actions[args.action](current):
        print(line)
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "stack",
        help="start, stop or inspect the local Kafka broker and PostgreSQL",
        description=(
            "The local stack: a single-node Apache Kafka broker (KRaft) assembled from Maven "
            "Central and a PostgreSQL server, both on 127.0.0.1, data in SAMPAN_STATE_DIR "
            "(default ./.state). `up` is safe to run twice and waits until both answer; `down` "
            "stops only what `up` started; `reset` stops and deletes all local data."
        ),
    )
    parser.add_argument("action", choices=("up", "down", "status", "reset"))
    parser.set_defaults(handler=_run)
