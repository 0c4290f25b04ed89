"""`sampan ledger-sink` and `sampan ledger migrate | verify | rebuild | deposit | withdraw`.

`deposit` and `withdraw` post one cash movement (cash.py, movements.py) in one database
transaction, then publish the account's snapshot; the same `--ref` again changes nothing.
Exit status: 0 posted or already posted, 1 refused (nothing changed), 2 bad arguments.

Settings beyond config.py's, all from the environment so the sink and `rebuild` post with the
same rules:

| variable | default | meaning |
|---|---|---|
| SAMPAN_LEDGER_SCHEMA | ledger | PostgreSQL schema of the ledger |
| SAMPAN_LEDGER_COMMISSION_E7 | 2500 | commission rate in parts per 10^7 (2500 = 0.025%) |
| SAMPAN_LEDGER_COMMISSION_MIN_CENTS | 5000 | minimum commission per side (HK$50) |
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from typing import Any

from sampan.config import settings
from sampan.errors import ConfigError
from sampan.ledger_sink import db
from sampan.ledger_sink.rules import ChargeRule, default_schedule
from sampan.ledger_sink.store import DEFAULT_GROUP


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name) or str(default)
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if value < 0:
        raise ConfigError(f"{name}={value} must not be negative")
    return value


def schedule_from_env() -> tuple[ChargeRule, ...]:
    return default_schedule(
        commission_rate_e7=_env_int("SAMPAN_LEDGER_COMMISSION_E7", 2_500),
        commission_min_cents=_env_int("SAMPAN_LEDGER_COMMISSION_MIN_CENTS", 5_000),
    )


def _logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _schema(args: argparse.Namespace) -> str:
    return db.checked_schema(args.schema) if args.schema else db.ledger_schema()


def run_sink(args: argparse.Namespace) -> int:
    from sampan.ledger_sink.sink import LedgerSink, SinkOptions

    _logging()
    current = settings()
    schema = _schema(args)
    if not args.no_migrate:
        db.connect_waiting(current, "public", args.db_wait_max_s).close()
        db.migrate(current, schema)
    sink = LedgerSink(
        current,
        SinkOptions(
            schema=schema,
            group_id=args.group,
            batch_max=args.batch_max,
            db_wait_max_s=args.db_wait_max_s,
            schedule=schedule_from_env(),
            instance_id=os.environ.get("SAMPAN_INSTANCE_ID") or "0",
        ),
    )

    def on_signal(signum: int, _frame: Any) -> None:
        logging.getLogger(__name__).info("signal %d: stopping after the batch in hand", signum)
        sink.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return sink.run()


def run_migrate(args: argparse.Namespace) -> int:
    _logging()
    schema = _schema(args)
    print(f"ledger schema {schema} at revision {db.migrate(settings(), schema)}")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from sampan.ledger_sink.audit import verify

    problems = verify(settings(), _schema(args))
    for problem in problems:
        print(f"DIFFERENCE {problem}")
    print("ledger verified: balanced" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


def run_relay(args: argparse.Namespace) -> int:
    import threading

    from sampan.ledger_sink.relay import Relay

    _logging()
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        logging.getLogger(__name__).info("signal %d: stopping after the batch in hand", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    relayed = Relay(settings(), _schema(args), batch_max=args.batch_max).run(stop)
    logging.getLogger(__name__).info("ledger relay: %d entries relayed; stopped", relayed)
    return 0


def run_rebuild(args: argparse.Namespace) -> int:
    from sampan.ledger_sink.audit import rebuild

    _logging()
    logging.getLogger("sampan.ledger_sink").setLevel(logging.WARNING)
    live = _schema(args)
    scratch = db.checked_schema(args.scratch_schema or f"{live}_rebuild")
    if args.from_topics:
        from sampan.ledger_sink.from_topics import rebuild_from_topics

        problems = rebuild_from_topics(settings(), live, scratch, keep=args.keep)
        for problem in problems:
            print(f"DIFFERENCE {problem}")
        print("identical" if not problems else f"{len(problems)} problem(s)")
        return 1 if problems else 0
    differences = rebuild(
        settings(),
        live,
        scratch,
        args.group,
        args.batch_max,
        keep=args.keep,
    )
    if differences:
        print(f"first difference: {differences[0]}")
        return 1
    print("identical")
    return 0


def run_movement(args: argparse.Namespace) -> int:
    import time

    from sampan.ledger_sink.cash import CashMovement, CashReason, Direction
    from sampan.ledger_sink.movements import MovementRefused, post_movement, publish_snapshots

    direction = Direction.DEPOSIT if args.action == "deposit" else Direction.WITHDRAWAL
    default = CashReason.TOP_UP if direction is Direction.DEPOSIT else CashReason.PAYOUT
    movement = CashMovement(
        args.ref,
        args.account,
        direction,
        args.amount_cents,
        CashReason(args.reason) if args.reason else default,
        time.time_ns(),
    )
    current = settings()
    db.require_migrated(current, _schema(args))
    with db.connect(current, _schema(args)) as conn:
        try:
            result = post_movement(conn, movement, args.member)
        except MovementRefused as error:
            print(f"refused: {error}")
            return 1
        if not result.posted:
            print(f"{direction.value} {args.ref} already posted: nothing changed")
            return 0
        publish_snapshots(current, conn, [args.account])
    print(
        f"posted {direction.value} {args.ref}: {args.amount_cents} cents "
        f"({movement.reason.value}) for {args.account}; cash now {result.cash_cents} cents"
    )
    return 0


def _movement_parser(actions: Any, name: str, help_text: str) -> None:
    from sampan.ledger_sink.cash import CashReason

    parser = actions.add_parser(name, help=help_text)
    _common(parser)
    parser.add_argument("account")
    parser.add_argument("amount_cents", type=int, metavar="AMOUNT_CENTS", help="HK cents, > 0")
    parser.add_argument("--ref", required=True, help="unique reference (the idempotency key)")
    parser.add_argument(
        "--reason", choices=[r.value for r in CashReason], help="reason code (default by kind)"
    )
    parser.add_argument(
        "--member", help="the account's member (required if the ledger does not know it yet)"
    )
    parser.set_defaults(handler=run_movement)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--schema", help="ledger schema (default: SAMPAN_LEDGER_SCHEMA or ledger)")


def register(subparsers: Any) -> None:
    sink = subparsers.add_parser(
        "ledger-sink",
        help="post fills to the PostgreSQL ledger, publish ledger.balances",
    )
    _common(sink)
    sink.add_argument(
        "--group",
        default=DEFAULT_GROUP,
        help="consumer group, after SAMPAN_TOPIC_PREFIX (default %(default)s)",
    )
    sink.add_argument(
        "--batch-max",
        type=int,
        default=2_000,
        help="records per poll and per transaction (default %(default)s)",
    )
    sink.add_argument(
        "--db-wait-max-s",
        type=float,
        default=db.DB_WAIT_MAX_S,
        help="how long to wait for PostgreSQL before exiting (default %(default)s)",
    )
    sink.add_argument("--no-migrate", action="store_true", help="do not migrate at start")
    sink.set_defaults(handler=run_sink)

    ledger = subparsers.add_parser("ledger", help="ledger administration and audit")
    actions = ledger.add_subparsers(dest="action", metavar="ACTION", required=True)
    migrate = actions.add_parser("migrate", help="create or upgrade the ledger schema")
    _common(migrate)
    migrate.set_defaults(handler=run_migrate)
    check = actions.add_parser(
        "verify",
        help="debits = credits per asset, balances = journal, no forbidden negative",
    )
    _common(check)
    check.set_defaults(handler=run_verify)
    replay = actions.add_parser(
        "rebuild",
        help="replay fills into a scratch schema and compare with the live ledger",
    )
    _common(replay)
    replay.add_argument("--scratch-schema", help="scratch schema (default <schema>_rebuild)")
    replay.add_argument(
        "--group",
        default=DEFAULT_GROUP,
        help="the live sink's consumer group (default %(default)s)",
    )
    replay.add_argument("--batch-max", type=int, default=2_000)
    replay.add_argument("--keep", action="store_true", help="keep the scratch schema")
    replay.add_argument(
        "--from-topics",
        action="store_true",
        help="rebuild from ledger.postings alone (no posting rule runs) and compare",
    )
    replay.set_defaults(handler=run_rebuild)
    relay = actions.add_parser(
        "relay", help="relay the ledger's outbox to ledger.postings, exactly once, until stopped"
    )
    _common(relay)
    relay.add_argument("--batch-max", type=int, default=1_000, help="entries per transaction")
    relay.set_defaults(handler=run_relay)
    _movement_parser(actions, "deposit", "credit a member account with cash from the bank")
    _movement_parser(actions, "withdraw", "pay cash from a member account back to the bank")


def main(argv: list[str] | None = None) -> int:
    """Run these commands without the top-level `sampan` (python -m sampan.ledger_sink.cli)."""
    from sampan.errors import SampanError

    parser = argparse.ArgumentParser(prog="sampan")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        status: int = args.handler(args)
    except SampanError as error:
        print(f"sampan {args.command}: {error}", file=sys.stderr)
        return 2
    return status


if __name__ == "__main__":
    sys.exit(main())
