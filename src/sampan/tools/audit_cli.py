"""`sampan audit order | account | access | export`: what happened, replayed from the topics.

Every answer comes from the committed records of the topics (read_committed, to the end the
broker reports), with the topic, partition and offset of each record, so an auditor can
fetch the original bytes. Tables for people by default, `--json` for machines. An unknown
order or account says so and exits 1; a broker that cannot be reached exits 2.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import sys
from typing import Any, TextIO

from sampan import topics
from sampan.config import settings
from sampan.market.calendar import midnight_ns
from sampan.tools import audit_access, audit_scan
from sampan.tools.audit_trail import (
    ACCOUNT_TOPICS,
    ORDER_TOPICS,
    Entry,
    count_by_topic,
    details,
    jsonable,
    plain,
    summary,
)

HONG_KONG = dt.timezone(dt.timedelta(hours=8), "HKT")
# Internal state rather than records of what happened; named explicitly to export it.
EXPORT_EXCLUDED = frozenset({"matcher.snapshots"})
CSV_FIELDS = ("topic", "partition", "offset", "timestamp_ms", "key", "record", "error")


def _print_entries(entries: list[Entry], out: TextIO) -> None:
    for entry in entries:
        when = dt.datetime.fromtimestamp(entry.ts_ns / 1e9, HONG_KONG).strftime(
            "%Y-%m-%d %H:%M:%S.%f"
        )
        out.write(f"{when}  {entry.position:<28}  {summary(entry)}\n")
        for line in details(entry):
            out.write(f"{'':56}  {line}\n")


def _order(args: argparse.Namespace) -> int:
    current = settings()
    progress = audit_scan.Progress(None if args.json else sys.stderr)
    trail = audit_scan.order_trail(current, args.id, args.account, progress)
    entries = trail.entries()
    if not entries:
        print(
            f"sampan audit: no record of order {args.id!r} on {', '.join(ORDER_TOPICS)}",
            file=sys.stderr,
        )
        return 1
    if args.json:
        json.dump({"order": args.id, "records": [jsonable(e) for e in entries]}, sys.stdout)
        sys.stdout.write("\n")
        return 0
    print(f"order {args.id}: {len(entries)} records")
    _print_entries(entries, sys.stdout)
    return 0


def _day_bounds(day: dt.date) -> tuple[int, int]:
    """A Hong Kong trading day as [start, end) in UTC nanoseconds."""
    return midnight_ns(day), midnight_ns(day + dt.timedelta(days=1))


def _account(args: argparse.Namespace) -> int:
    current = settings()
    progress = audit_scan.Progress(None if args.json else sys.stderr)
    bounds = _day_bounds(args.day) if args.day else None
    result = audit_scan.account_day(current, args.account, bounds, progress)
    entries = result.entries()
    if not entries and result.closing is None:
        where = f" on {args.day}" if args.day else ""
        print(
            f"sampan audit: no record of account {args.account!r}{where} on "
            f"{', '.join(ACCOUNT_TOPICS)}",
            file=sys.stderr,
        )
        return 1
    if args.json:
        body = {
            "account": args.account,
            "day": args.day.isoformat() if args.day else None,
            "records": [jsonable(e) for e in entries],
            "closing_balance": jsonable(result.closing) if result.closing else None,
        }
        json.dump(body, sys.stdout)
        sys.stdout.write("\n")
        return 0
    counts = count_by_topic(entries)
    fills = result.fills()
    print(
        f"account {args.account}{' on ' + args.day.isoformat() if args.day else ''}: "
        f"{counts.get('orders.requests', 0)} requests, {counts.get('orders.events', 0)} "
        f"execution reports, {len(fills)} fills, {counts.get('ledger.postings', 0)} ledger "
        "entries"
    )
    _print_entries(entries, sys.stdout)
    if result.closing is not None:
        print("closing:")
        _print_entries([result.closing], sys.stdout)
    return 0


def _access(args: argparse.Namespace) -> int:
    progress = audit_scan.Progress(None if args.json else sys.stderr)
    trail = audit_access.AccessTrail(args.user)
    for read in audit_scan.scan(settings(), audit_access.TOPIC, progress):
        if read.value is not None:
            trail.offer(read.partition, read.offset, read.value)
        elif read.error is not None:
            print(
                f"sampan audit: {audit_access.TOPIC}[{read.partition}]@{read.offset} does not decode: "
                f"{read.error}",
                file=sys.stderr,
            )
    progress.done()
    entries = trail.entries()
    if not entries:
        who = f" of user {args.user!r}" if args.user else ""
        print(f"sampan audit: no access record{who} on {audit_access.TOPIC}", file=sys.stderr)
        return 1
    if args.json:
        body = {
            "user": args.user,
            "records": [{"position": e.position, **e.record} for e in entries],
            "repeats_skipped": trail.repeats,
            "older_not_shown": trail.dropped,
        }
        json.dump(body, sys.stdout)
        sys.stdout.write("\n")
        return 0
    print(
        f"access{' of ' + args.user if args.user else ''}: {len(entries)} records"
        + (f" (the {trail.dropped:,} older not shown)" if trail.dropped else "")
    )
    for entry in entries:
        when = dt.datetime.fromtimestamp(entry.record["ts_ns"] / 1e9, HONG_KONG).strftime(
            "%Y-%m-%d %H:%M:%S.%f"
        )
        print(f"{when}  {entry.position:<20}  {audit_access.line(entry)}")
    return 0


def _timestamp_ms(text: str) -> int:
    """An ISO 8601 time; without an offset it is Hong Kong time."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time (e.g. 2026-11-27T09:30 or 2026-11-27T01:30Z)"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=HONG_KONG)
    return int(value.timestamp() * 1000)


def _topic_name(text: str) -> str:
    if text not in topics.BY_NAME:
        raise argparse.ArgumentTypeError(f"{text!r} is not a topic of the catalog")
    return text


def _export_row(read: audit_scan.Read) -> dict[str, Any]:
    record = None
    if read.value is not None:
        record = plain(read.value)
    return {
        "topic": read.topic,
        "partition": read.partition,
        "offset": read.offset,
        "timestamp_ms": read.timestamp_ms,
        "key": read.key.decode("utf-8", "backslashreplace") if read.key is not None else None,
        "record": record,
        "error": read.error,
        "raw_hex": read.raw.hex() if read.raw is not None else None,
    }


def _export(args: argparse.Namespace) -> int:
    if args.to_ms <= args.from_ms:
        print("sampan audit export: --to must be after --from", file=sys.stderr)
        return 2
    names = args.topics or [t.name for t in topics.ALL if t.name not in EXPORT_EXCLUDED]
    out: TextIO = open(args.output, "w", newline="") if args.output else sys.stdout  # noqa: SIM115
    try:
        if args.format == "csv":
            writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction="ignore")
            writer.writeheader()

            def emit(read: audit_scan.Read) -> None:
                row = _export_row(read)
                row["record"] = json.dumps(row["record"]) if row["record"] is not None else ""
                writer.writerow(row)

        else:

            def emit(read: audit_scan.Read) -> None:
                out.write(json.dumps(_export_row(read)) + "\n")

        counts = audit_scan.export(settings(), names, args.from_ms, args.to_ms, emit)
    finally:
        if args.output:
            out.close()
    total = sum(counts.values())
    print(f"audit export: {total:,} records", file=sys.stderr)
    for name, count in counts.items():
        print(f"  {name:<28} {count:>10,}", file=sys.stderr)
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "audit",
        help="replay the topics for an auditor: an order's story, an account's day, an export",
        description=(
            "Answers from the committed records of the topics, each with its topic, partition "
            "and offset. Exit 1 when the order or account has no record, 2 when the broker "
            "cannot be reached. Progress goes to stderr on long scans."
        ),
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    order = actions.add_parser(
        "order",
        help="everything that happened to one order, in time order",
        description=(
            "The request, the router's commands to the matcher, every execution report "
            "(a SMART parent's children included), each fill, the drop copy of each HKEX "
            "execution and its reconciliation. ID is a ClOrdID, an order id, a command id "
            "or a SMART parent's P… id. ClOrdIDs are unique per account and day only: "
            "name the account to tell two apart."
        ),
    )
    order.add_argument("id")
    order.add_argument("--account", help="only records of this account")
    order.add_argument("--json", action="store_true", help="one JSON object on stdout")
    order.set_defaults(handler=_order)

    account = actions.add_parser(
        "account",
        help="an account's orders, execution reports, fills (both sides) and closing balance",
        description=(
            "Fills of either side (fills are keyed by the aggressor's account, so a passive "
            "side's fills are found by reading every partition). The closing balance is the "
            "last ledger.balances snapshot of the day. Cash movements (deposits, withdrawals) "
            "live in the ledger database: see `sampan ledger`."
        ),
    )
    account.add_argument("account")
    account.add_argument(
        "--day",
        type=dt.date.fromisoformat,
        help="a Hong Kong trading day, YYYY-MM-DD (default: every day kept)",
    )
    account.add_argument("--json", action="store_true", help="one JSON object on stdout")
    account.set_defaults(handler=_account)

    access = actions.add_parser(
        "access",
        help="the screen's access audit trail: logins, logouts, refusals with their reason",
        description=(
            "Read from ui.access, where the screen relays each row of its access audit trail "
            "once, keyed by the row's id; shown in id order, each id once. With --user: the "
            "records of that user's sessions and the logins and logouts for that name."
        ),
    )
    access.add_argument("--user", help="only this user's records")
    access.add_argument("--json", action="store_true", help="one JSON object on stdout")
    access.set_defaults(handler=_access)

    export = actions.add_parser(
        "export",
        help="every record of a time range, decoded, as JSON lines or CSV",
        description=(
            "Start and end offsets are found by timestamp on each partition; records whose "
            "broker timestamp is in [--from, --to) are written. A record that does not decode "
            "is written with its error and raw bytes (hex). Ends with a count per topic on "
            "stderr. Default topics: the whole catalog but matcher.snapshots."
        ),
    )
    export.add_argument("--from", dest="from_ms", type=_timestamp_ms, required=True)
    export.add_argument("--to", dest="to_ms", type=_timestamp_ms, required=True)
    export.add_argument("--topics", nargs="+", type=_topic_name, metavar="TOPIC")
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    export.add_argument("--output", help="a file to write (default: stdout)")
    export.set_defaults(handler=_export)
