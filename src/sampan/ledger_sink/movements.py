"""Posting a cash movement (cash.py) in ONE database transaction, then its snapshot.

Guarantees of `post_movement`:
- the `cash_movements` row, its journal row (`transfers`, entry id from the fills' sequence,
  leg 31 or 32), its `outbox` row (relayed to ledger.postings, `relay.py`) and both balance
  changes commit together or not at all; the deferred
  `balances_sum_to_zero` trigger checks debits = credits at commit, as for fills;
- idempotent: the movement's `ref` is UNIQUE; the same ref with the same content is a replay
  that changes nothing, with different content it is refused (`MovementRefused`); two
  concurrent posts of one ref end as one post and one replay;
- a withdrawal locks the account's cash balance and is refused if it would leave that balance
  below zero: the credit line is the broker's money, not the member's to withdraw;
- an account unknown to the ledger is created as a member account of `member` (required then);
  a known one keeps its member, and a different `member` is refused. Limits come from
  `reference.accounts` (limits.py), never from here.
`publish_snapshots` then publishes the account's full snapshot on `ledger.balances`. A crash
between the commit and the publish loses only that snapshot: the next batch touching the
account, or the sink's start, publishes it again. Limit: the sink may publish a snapshot it
read just before the movement committed after this one; the account's next snapshot heals it.

Limit: cash held for open buy orders is NOT checked. The router keeps its holds in its own
state (`router.state` on Kafka), not in the ledger (the ledger's `holds` table is written by
nothing), so a withdrawal can leave less cash than the router has reserved for open buys; if
those buys fill, they draw on the credit line. The router's next risk check sees the lower cash
in the account's snapshot. Withdraw only after the member's open buys are cancelled or done.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from sampan.config import Settings
from sampan.errors import SampanError
from sampan.ledger_sink import db, reads
from sampan.ledger_sink.cash import (
    FUNDING_ACCOUNT,
    CashMovement,
    CashReason,
    Direction,
    InvalidMovement,
    movement_transfer,
    opening_ref,
)
from sampan.ledger_sink.rules import CASH_ASSET
from sampan.ledger_sink.snapshot import snapshot, to_record
from sampan.ledger_sink.store import DEFAULT_GROUP, OPERATOR_MEMBER, Conn, Source
from sampan.streams import profiles

log = logging.getLogger(__name__)

DELIVERY_TIMEOUT_S = 30.0
REF_RACE_RETRIES_MAX = 1  # a concurrent post of the same ref: the retry sees it as a replay


class MovementRefused(SampanError):
    """An operator error: the movement cannot be posted as asked (nothing was changed)."""


@dataclass(frozen=True, slots=True)
class MovementResult:
    posted: bool  # False: the same movement was already posted; nothing changed
    movement_id: int
    cash_cents: int  # the account's cash balance after the movement


def post_movement(conn: Conn, movement: CashMovement, member: str | None) -> MovementResult:
    """Post `movement` and commit; see the module docstring."""
    try:
        movement_transfer(movement)
    except InvalidMovement as error:
        raise MovementRefused(str(error)) from None
    for attempt in range(REF_RACE_RETRIES_MAX + 1):
        try:
            result = _post(conn, movement, member)
            conn.commit()
            return result
        except psycopg.errors.UniqueViolation:
            conn.rollback()
            if attempt == REF_RACE_RETRIES_MAX:
                raise
            log.info("movement %s: posted concurrently; checking it", movement.ref)
        except BaseException:
            if not conn.closed:
                conn.rollback()
            raise
    raise AssertionError("unreachable")


def _cash(conn: Conn, account: str, lock: bool) -> int:
    sql = "SELECT balance FROM balances WHERE account = %s AND asset = %s"
    row = conn.execute(sql + (" FOR UPDATE" if lock else ""), (account, CASH_ASSET)).fetchone()
    return int(row[0]) if row else 0


def _post(conn: Conn, movement: CashMovement, member: str | None) -> MovementResult:
    stored = conn.execute(
        "SELECT movement_id, account, kind, amount_cents, reason, ts_ns FROM cash_movements "
        "WHERE ref = %s",
        (movement.ref,),
    ).fetchone()
    if stored is not None:
        before = CashMovement(
            movement.ref,
            str(stored[1]),
            Direction(stored[2]),
            int(stored[3]),
            CashReason(stored[4]),
            int(stored[5]),
        )
        if not before.same_as(movement):
            raise MovementRefused(
                f"reference {movement.ref} is already used by a different movement: {before}"
            )
        return MovementResult(False, int(stored[0]), _cash(conn, movement.account, lock=False))
    member = _account_member(conn, movement.account, member)
    if movement.direction is Direction.WITHDRAWAL:
        # Cash only: neither the credit line nor the router's holds (see the module docstring).
        cash = _cash(conn, movement.account, lock=True)
        if movement.amount_cents > cash:
            raise MovementRefused(
                f"{movement.ref}: withdrawing {movement.amount_cents} cents from "
                f"{movement.account}, which has {cash} cents of cash (a withdrawal may not use "
                "the credit line)"
            )
    transfer = movement_transfer(movement)
    row = conn.execute("SELECT nextval('fill_ids')").fetchone()
    assert row is not None
    movement_id = int(row[0])
    conn.execute(
        "INSERT INTO cash_movements (movement_id, ref, account, member, kind, amount_cents, "
        "reason, funding_account, ts_ns) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            movement_id,
            movement.ref,
            movement.account,
            member,
            movement.direction.value,
            movement.amount_cents,
            movement.reason.value,
            FUNDING_ACCOUNT,
            movement.ts_ns,
        ),
    )
    leg, debit, credit, asset, amount = transfer
    conn.execute(
        "INSERT INTO transfers (fill_id, leg, debit_account, credit_account, asset, amount) "
        "VALUES (%s, %s, %s, %s, %s, %s)",
        (movement_id, leg, debit, credit, asset, amount),
    )
    # The outbox row, in this same transaction: the relay publishes the entry once it commits.
    conn.execute("INSERT INTO outbox (entry_id, kind) VALUES (%s, 'cash')", (movement_id,))
    changes = sorted({(credit, asset): amount, (debit, asset): -amount}.items())
    conn.execute(
        "INSERT INTO balances (account, asset, balance) "
        "SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[]) "
        "ON CONFLICT (account, asset) DO UPDATE SET balance = balances.balance + "
        "excluded.balance",
        ([k[0] for k, _ in changes], [k[1] for k, _ in changes], [v for _, v in changes]),
    )
    return MovementResult(True, movement_id, _cash(conn, movement.account, lock=False))


def _account_member(conn: Conn, account: str, member: str | None) -> str:
    """The account's member, creating the account (and the funding account) if needed."""
    row = conn.execute(
        "SELECT member, kind FROM accounts WHERE account = %s", (account,)
    ).fetchone()
    if row is not None:
        if row[1] != "member":
            raise MovementRefused(f"{account} is a {row[1]} account, not a member account")
        if member is not None and member != row[0]:
            raise MovementRefused(f"{account} belongs to member {row[0]}, not {member}")
        known = str(row[0])
    else:
        if not member:
            raise MovementRefused(
                f"{account} is not in the ledger yet: give its member (--member), or publish "
                "it on reference.accounts first"
            )
        known = member
    conn.execute(
        "INSERT INTO members (member) SELECT m FROM unnest(%s::text[]) AS m ORDER BY m "
        "ON CONFLICT DO NOTHING",
        (sorted({known, OPERATOR_MEMBER}),),
    )
    conn.execute(
        "INSERT INTO accounts (account, member, kind) VALUES (%s, %s, 'member'), "
        "(%s, %s, 'funding') ON CONFLICT DO NOTHING",
        (account, known, FUNDING_ACCOUNT, OPERATOR_MEMBER),
    )
    return known


def publish_snapshots(
    settings: Settings, conn: Conn, accounts: Sequence[str], group_id: str = DEFAULT_GROUP
) -> int:
    """Publish the current snapshot of `accounts` on ledger.balances, with the fills offsets
    of the sink's group `group_id`; returns how many."""
    from confluent_kafka import Producer

    from sampan.schemas import registry

    source = Source(group_id, settings.topic("fills"))
    states, prices = reads.account_states(
        conn, list(accounts)[: reads.ACCOUNTS_PER_READ_MAX], source
    )
    producer = Producer(profiles.producer(settings))
    now_ns = time.time_ns()
    for state in states:
        producer.produce(
            settings.topic("ledger.balances"),
            key=state.account.encode(),
            value=registry().encode("AccountSnapshot", to_record(snapshot(state, prices, now_ns))),
        )
    if producer.flush(DELIVERY_TIMEOUT_S):
        raise SampanError(f"snapshots not delivered within {DELIVERY_TIMEOUT_S} s")
    return len(states)


def post_opening_deposits(
    settings: Settings, schema: str, accounts: Sequence[tuple[str, str, int]]
) -> tuple[int, int]:
    """Fund (account, member, cash_cents) with one OPENING deposit each (ref
    `seed:<account>:opening`); zero amounts are skipped. Returns (posted, replayed); the
    snapshots of the accounts posted are published."""
    posted: list[str] = []
    replayed = 0
    now_ns = time.time_ns()
    with db.connect(settings, schema) as conn:
        for account, member, cents in accounts:
            if cents <= 0:
                continue
            movement = CashMovement(
                opening_ref(account), account, Direction.DEPOSIT, cents, CashReason.OPENING, now_ns
            )
            result = post_movement(conn, movement, member)
            if result.posted:
                posted.append(account)
            else:
                replayed += 1
        if posted:
            publish_snapshots(settings, conn, posted)
    return len(posted), replayed
