"""An account's live balances, as published on `ledger.balances`. Pure: no I/O.

Where the inputs come from (the store reads them in one read-only transaction after a batch):
- cash: the account's HKD balance in the ledger: opening deposits, top-ups and withdrawals
  (`sampan ledger deposit|withdraw`, `sampan seed`; cash.py) plus the cash legs of its fills;
- holds: the `holds` table, which nothing writes, so every hold here is zero. The router keeps
  the cash it reserves for open buy orders in its own state (`router.state`) and subtracts it
  in its own risk check; `available_cash_cents` published here does NOT include those holds;
- last prices: the `last_prices` table, the last fill price per security the ledger has
  posted (the newest venue time wins, so the value does not depend on partition order);
- credit line and cut-loss level: the `accounts` table, set from `reference.accounts` by the
  sink's limits follower (limits.py); zero for an account reference data never named;
- fills offsets: the sink's committed next offsets of `fills`, read in the same database
  snapshot as the balances, so the snapshot says exactly which fills it includes (every fill
  below them, none at or past them). The router subtracts from buying power only the fills a
  snapshot does not include (router/tables.py).

Definitions (all HK cents):
- holdings value = sum over positions of qty * last price, each rounded half-even to the cent;
- credit line used = max(0, -cash); available cash = cash - holds + credit line
  (= cash less holds plus the unused credit line);
- portfolio value = max(cash, 0) + holdings value (gross: what the account holds);
- equity = cash + holdings value (= portfolio value less credit line used);
- cut-loss breached when equity < the cut-loss level.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sampan.ledger_sink.rules import E3_PER_CENT, round_half_even


@dataclass(frozen=True, slots=True)
class AccountState:
    account: str
    member: str
    cash_cents: int
    holds_cents: int
    credit_line_cents: int
    cut_loss_cents: int
    holdings: tuple[tuple[int, int], ...]  # (security, qty), non-zero quantities
    fills_offsets: tuple[tuple[int, int], ...] = ()  # (partition, next offset) of `fills`


@dataclass(frozen=True, slots=True)
class HeldPosition:
    security: int
    qty: int
    last_e3: int
    value_cents: int


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    account: str
    member: str
    cash_cents: int
    available_cash_cents: int
    holdings_value_cents: int
    portfolio_value_cents: int
    equity_cents: int
    credit_line_used_cents: int
    cut_loss_equity_cents: int
    cut_loss_breached: bool
    positions: tuple[HeldPosition, ...]
    ts_ns: int
    fills_offsets: tuple[tuple[int, int], ...] = ()


def snapshot(state: AccountState, last_prices_e3: Mapping[int, int], ts_ns: int) -> AccountSnapshot:
    """The snapshot of one account; a security without a last price is valued at zero."""
    positions = tuple(
        HeldPosition(
            security,
            qty,
            last_prices_e3.get(security, 0),
            round_half_even(qty * last_prices_e3.get(security, 0), E3_PER_CENT),
        )
        for security, qty in sorted(state.holdings)
    )
    holdings_cents = sum(p.value_cents for p in positions)
    cash = state.cash_cents
    equity = cash + holdings_cents
    return AccountSnapshot(
        account=state.account,
        member=state.member,
        cash_cents=cash,
        available_cash_cents=cash - state.holds_cents + state.credit_line_cents,
        holdings_value_cents=holdings_cents,
        portfolio_value_cents=max(cash, 0) + holdings_cents,
        equity_cents=equity,
        credit_line_used_cents=max(0, -cash),
        cut_loss_equity_cents=state.cut_loss_cents,
        cut_loss_breached=equity < state.cut_loss_cents,
        positions=positions,
        ts_ns=ts_ns,
        fills_offsets=state.fills_offsets,
    )


def to_record(snap: AccountSnapshot) -> dict[str, Any]:
    """The AccountSnapshot Avro record of a snapshot."""
    return {
        "account": snap.account,
        "member": snap.member,
        "cash_cents": snap.cash_cents,
        "available_cash_cents": snap.available_cash_cents,
        "holdings_value_cents": snap.holdings_value_cents,
        "portfolio_value_cents": snap.portfolio_value_cents,
        "equity_cents": snap.equity_cents,
        "credit_line_used_cents": snap.credit_line_used_cents,
        "cut_loss_equity_cents": snap.cut_loss_equity_cents,
        "cut_loss_breached": snap.cut_loss_breached,
        "positions": [
            {
                "security": p.security,
                "qty": p.qty,
                "last_e3": p.last_e3,
                "value_cents": p.value_cents,
            }
            for p in snap.positions
        ],
        "ts_ns": snap.ts_ns,
        "fills_offsets": [
            {"partition": p, "next_offset": o} for p, o in sorted(snap.fills_offsets)
        ],
    }
