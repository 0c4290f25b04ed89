"""`sampan seed`: publish the venue's instruments (`sampan.market.listings`) and the demo
accounts to the reference topics, and fund the demo accounts in the ledger.

Where each field of an `AccountSeed` goes: the limits (member, credit line, cut-loss,
max order notional, allow_short, stp) are published on `reference.accounts`, which the router
and the ledger both follow (the ledger's limits follower writes them into its `accounts`
table); `cash_cents` is NOT a limit: `sampan seed` posts it to the ledger as the account's
opening deposit (`ledger_sink.movements.post_opening_deposits`, reference
`seed:<account>:opening`), so seeding twice funds each account once.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Any

from sampan.config import Settings, settings
from sampan.errors import SampanError
from sampan.market.listings import instrument_record, listings
from sampan.schemas import registry
from sampan.streams import profiles


@dataclass(frozen=True, slots=True)
class AccountSeed:
    account: str
    member: str
    cash_cents: int
    credit_line_cents: int
    cut_loss_cents: int
    max_order_notional_cents: int
    allow_short: bool = False
    stp: str = "CANCEL_RESTING"


DEFAULT_ACCOUNTS: tuple[AccountSeed, ...] = tuple(
    AccountSeed(f"ACC{n}", f"M{n % 3}", 50_000_000_00, 10_000_000_00, 5_000_000_00, 20_000_000_00)
    for n in range(1, 7)
)


def account_record(seed: AccountSeed, ts_ns: int) -> dict[str, Any]:
    return {
        "account": seed.account,
        "member": seed.member,
        "credit_line_cents": seed.credit_line_cents,
        "cut_loss_cents": seed.cut_loss_cents,
        "max_order_notional_cents": seed.max_order_notional_cents,
        "allow_short": seed.allow_short,
        "stp": seed.stp,
        "enabled": True,
        "ts_ns": ts_ns,
    }


def publish_seed(current: Settings) -> tuple[int, int]:
    """Publish instruments and accounts to their compacted topics; (instruments, accounts)."""
    from confluent_kafka import Producer

    producer = Producer(profiles.producer(current))
    now = time.time_ns()
    items = listings()
    for listing in items:
        value = registry().encode("Instrument", instrument_record(listing, now))
        producer.produce(
            current.topic("reference.instruments"), value, str(listing.security).encode()
        )
    for seed in DEFAULT_ACCOUNTS:
        value = registry().encode("Account", account_record(seed, now))
        producer.produce(current.topic("reference.accounts"), value, seed.account.encode())
    if producer.flush(30):
        raise SampanError("reference data not delivered within 30 s")
    return len(items), len(DEFAULT_ACCOUNTS)


def fund_seed(
    current: Settings, seeds: tuple[AccountSeed, ...] = DEFAULT_ACCOUNTS
) -> tuple[int, int]:
    """Post each seed's `cash_cents` as its opening deposit in the ledger (schema from
    SAMPAN_LEDGER_SCHEMA, migrated first); (posted, already posted). Idempotent."""
    from sampan.ledger_sink import db
    from sampan.ledger_sink.movements import post_opening_deposits

    schema = db.ledger_schema()
    db.migrate(current, schema)
    return post_opening_deposits(
        current, schema, [(seed.account, seed.member, seed.cash_cents) for seed in seeds]
    )


def _run(args: argparse.Namespace) -> int:
    current = settings()
    instruments, accounts = publish_seed(current)
    print(f"published {instruments} instruments and {accounts} accounts")
    if not args.no_funding:
        posted, replayed = fund_seed(current)
        print(f"opening deposits: {posted} posted, {replayed} already posted")
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "seed",
        help="publish the venue's instruments and demo accounts to the reference topics",
        description="Publishes reference.instruments (from SAMPAN_INSTRUMENTS or the built-in "
        "list of Hong Kong equities) and reference.accounts (the demo accounts), then posts "
        "each demo account's opening deposit to the ledger (once: seeding twice changes "
        "nothing).",
    )
    parser.add_argument(
        "--no-funding", action="store_true", help="publish reference data only; no deposits"
    )
    parser.set_defaults(handler=_run)
