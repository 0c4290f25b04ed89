"""Seeded order-command streams for tests and benchmarks (pure; no clock, no I/O).

The stream mixes new limit orders near the previous close (on tick, in board lots), IOC orders
that cross, cancels and amends of earlier orders, across the given listings and accounts. The
same seed gives the same stream.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any

from sampan.market.listings import SPREAD_TABLE_CODES, Listing
from sampan.market.rules import SPREAD_TABLES

LIVE_ORDERS_MAX = 2000  # per stream: cancels and amends pick among the most recent orders


def generate_commands(
    seed: int,
    count: int,
    listings: Sequence[Listing],
    accounts: Sequence[str],
    ts_start_ns: int = 1_700_000_000_000_000_000,
) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    live: list[tuple[str, str, int, str]] = []  # (account, cl_ord_id, security, side)
    for n in range(count):
        listing = listings[rng.randrange(len(listings))]
        account = accounts[rng.randrange(len(accounts))]
        roll = rng.random()
        ts_ns = ts_start_ns + n * 1000
        if roll < 0.15 and live:
            target = live.pop(rng.randrange(len(live)))
            yield _command(
                n, "CANCEL", target[0], target[2], target[3], 0, 0, "LIMIT", "DAY", ts_ns, target[1]
            )
            continue
        if roll < 0.25 and live:
            target = live[rng.randrange(len(live))]
            target_listing = next(li for li in listings if li.security == target[2])
            price = _price(rng, target_listing)
            qty = target_listing.board_lot * rng.randint(1, 10)
            amended = f"{target[1]}a{n}"
            live.remove(target)
            live.append((target[0], amended, target[2], target[3]))
            yield _command(
                n,
                "AMEND",
                target[0],
                target[2],
                target[3],
                price,
                qty,
                "LIMIT",
                "DAY",
                ts_ns,
                target[1],
                amended,
            )
            continue
        side = "BUY" if rng.random() < 0.5 else "SELL"
        tif = "IOC" if roll > 0.9 else "DAY"
        price = _price(rng, listing)
        qty = listing.board_lot * rng.randint(1, 10)
        command = _command(
            n, "NEW", account, listing.security, side, price, qty, "LIMIT", tif, ts_ns
        )
        if tif == "DAY":
            live.append((account, command["cl_ord_id"], listing.security, side))
            if len(live) > LIVE_ORDERS_MAX:
                live.pop(0)
        yield command


def _price(rng: random.Random, listing: Listing) -> int:
    table = SPREAD_TABLES[SPREAD_TABLE_CODES[listing.spread_table]]
    base = listing.prev_close_e3 - listing.prev_close_e3 % table.tick_e3(listing.prev_close_e3)
    ticks = rng.randint(-8, 8)
    return table.tick_up(base, ticks) if ticks >= 0 else table.tick_down(base, -ticks)


def _command(
    n: int,
    kind: str,
    account: str,
    security: int,
    side: str,
    price_e3: int,
    qty: int,
    ord_type: str,
    tif: str,
    ts_ns: int,
    orig: str | None = None,
    cl_ord_id: str | None = None,
) -> dict[str, Any]:
    own_id = cl_ord_id or f"c{n}"
    return {
        "command_id": f"cmd{n}",
        "kind": kind,
        "account": account,
        "member": f"M{int(account[3:]) % 3}" if account[3:].isdigit() else "M0",
        "security": security,
        "cl_ord_id": own_id if kind != "CANCEL" else f"x{n}",
        "orig_cl_ord_id": orig,
        "side": side,
        "ord_type": ord_type,
        "time_in_force": tif,
        "price_e3": price_e3,
        "qty": qty,
        "route": "INTERNAL",
        "batch_id": None,
        "parent_id": None,
        "user": None,
        "ts_ns": ts_ns,
        "stp": None,
    }
