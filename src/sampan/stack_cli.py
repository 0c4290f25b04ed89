"""`sampan stack up | down | status | reset`: the local Kafka broker (or three-node cluster) and
PostgreSQL."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from sampan import stack, stack_cluster
from sampan.config import Settings, settings
from sampan.errors import StackError


def _up(current: Settings, brokers: int | None) -> list[str]:
    """One broker unless asked for three; a state folder that holds a cluster stays one."""
    clustered = stack_cluster.is_cluster(current)
    if brokers == 1 and clustered:
        raise StackError(
            f"{current.state_dir} holds a three-node cluster: `sampan stack reset` it first, or "
            "use another SAMPAN_STATE_DIR for the one-broker stack"
        )
    if brokers == stack_cluster.NODE_COUNT or (brokers is None and clustered):
        return stack_cluster.up(current)
    return stack.up(current)


def _down(current: Settings) -> list[str]:
    return [*stack_cluster.stop_nodes(current), *stack.down(current)]


def _status(current: Settings) -> list[str]:
    lines = stack.status(current)
    if stack_cluster.is_cluster(current):
        others = [line for line in lines if not line.startswith("kafka ")]
        return [*stack_cluster.status_lines(current), *others]
    return lines


def _reset(current: Settings) -> list[str]:
    return [*stack_cluster.stop_nodes(current), *stack.reset(current)]


def _run(args: argparse.Namespace) -> int:
    current = settings()
    actions: dict[str, Callable[[Settings], list[str]]] = {
        "up": lambda s: _up(s, args.brokers),
        "down": _down,
        "status": _status,
        "reset": _reset,
    }
    for line in actions[args.action](current):
        print(line)
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "stack",
        help="start, stop or inspect the local Kafka broker (or cluster) and PostgreSQL",
        description=(
            "The local stack: a single-node Apache Kafka broker (KRaft) assembled from Maven "
            "Central and a PostgreSQL server, both on 127.0.0.1, data in SAMPAN_STATE_DIR "
            "(default ./.state). `up --brokers 3` starts a three-node KRaft cluster instead "
            "(ports SAMPAN_KAFKA_PORT, +2, +4; replication factor 3, min ISR 2). `up` is safe to "
            "run twice and waits until everything answers; `down` stops only what `up` started; "
            "`reset` stops and deletes all local data."
        ),
    )
    parser.add_argument("action", choices=("up", "down", "status", "reset"))
    parser.add_argument(
        "--brokers",
        type=int,
        choices=(1, stack_cluster.NODE_COUNT),
        default=None,
        help="Kafka nodes for `up`: 1 (the default) or 3 (a state folder keeps what it was given)",
    )
    parser.set_defaults(handler=_run)
