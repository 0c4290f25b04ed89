"""Read-only queries of the ledger: account states for snapshots, stored offsets.

Each function reads in its own short transaction and ends it, so a reader never holds locks
the sink's next batch would wait for.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sampan.ledger_sink.rules import CASH_ASSET
from sampan.ledger_sink.snapshot import AccountState
from sampan.ledger_sink.store import Conn, Source

ACCOUNTS_PER_READ_MAX = 5_000  # bounds the arrays sent in one query


def account_states(
    conn: Conn, accounts: Sequence[str], source: Source
) -> tuple[list[AccountState], dict[int, int]]:
    """The states of `accounts` (known ones only) and the last prices of what they hold, with
    the offsets of `source` they include: all read in ONE repeatable-read snapshot, so the
    offsets say exactly which fills the balances include."""
    assert len(accounts) <= ACCOUNTS_PER_READ_MAX
    names = list(accounts)
    conn.commit()  # end any transaction: the isolation level is set before the first statement
    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
    offsets = tuple(
        sorted(
            (int(p), int(o))
            for p, o in conn.execute(
                "SELECT partition, next_offset FROM consumer_offsets "
                "WHERE group_id = %s AND topic = %s",
                (source.group_id, source.topic),
            ).fetchall()
        )
    )
    limits = conn.execute(
        "SELECT account, member, credit_line_cents, cut_loss_cents FROM accounts "
        "WHERE account = ANY(%s) ORDER BY account",
        (names,),
    ).fetchall()
    cash: dict[str, int] = dict(
        conn.execute(
            "SELECT account, balance FROM balances WHERE asset = %s AND account = ANY(%s)",
            (CASH_ASSET, names),
        ).fetchall()
    )
    holds: dict[str, int] = dict(
        conn.execute(
            "SELECT account, holds_cents FROM holds WHERE account = ANY(%s)", (names,)
        ).fetchall()
    )
    holdings: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for account, security, qty in conn.execute(
        "SELECT account, security, qty FROM positions WHERE account = ANY(%s) AND qty <> 0",
        (names,),
    ).fetchall():
        holdings[str(account)].append((int(security), int(qty)))
    securities = sorted({s for rows in holdings.values() for s, _ in rows})
    prices = {
        int(s): int(p)
        for s, p in conn.execute(
            "SELECT security, price_e3 FROM last_prices WHERE security = ANY(%s)", (securities,)
        ).fetchall()
    }
    conn.commit()
    states = [
        AccountState(
            account=str(account),
            member=str(member),
            cash_cents=int(cash.get(account, 0)),
            holds_cents=int(holds.get(account, 0)),
            credit_line_cents=int(credit),
            cut_loss_cents=int(cut_loss),
            holdings=tuple(holdings.get(str(account), ())),
            fills_offsets=offsets,
        )
        for account, member, credit, cut_loss in limits
    ]
    return states, prices


def stored_offsets(conn: Conn, source: Source) -> dict[int, int]:
    """Next offset to read per partition, as committed with the ledger's rows."""
    rows = conn.execute(
        "SELECT partition, next_offset FROM consumer_offsets WHERE group_id = %s AND topic = %s",
        (source.group_id, source.topic),
    ).fetchall()
    conn.commit()
    return {int(p): int(o) for p, o in rows}


def member_accounts(conn: Conn, limit: int = ACCOUNTS_PER_READ_MAX) -> list[str]:
    rows = conn.execute(
        "SELECT account FROM accounts WHERE kind = 'member' ORDER BY account LIMIT %s", (limit,)
    ).fetchall()
    conn.commit()
    return [str(r[0]) for r in rows]
