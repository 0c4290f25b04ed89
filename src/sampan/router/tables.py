"""The reference and balance tables risk reads: accounts, instruments, balances, last prices.

Pure: the service feeds it decoded records from reference.accounts, reference.instruments,
ledger.balances and md.trades (each read from the beginning as a table, latest value per key
wins), and the router core reads it. Also keeps, per account, the fills the router has seen
but the ledger has not yet reported (`Unsettled`), so buying power and inventory do not count
a fill twice or not at all between a fill and the ledger's next snapshot.

Settlement rule: a ledger snapshot taken `settle_grace_ns` or more after a fill's venue time is
taken to include it. Limit: a ledger lagging further than that overstates buying power until
it catches up (AccountSnapshot does not say which fills it includes); unsettled fills live in
memory only, so a router restart forgets them (the ledger's next snapshot covers them).

Reference records are checked before use (`BadReference`: board lot, previous close on tick,
non-negative limits); one that fails removes its key, so risk rejects rather than divides by
zero or collars around a price that cannot trade.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from sampan.market.listings import SPREAD_TABLE_CODES, listings
from sampan.market.rules import PRICE_MAX_E3, PRICE_MIN_E3, SPREAD_TABLES
from sampan.router.risk import AccountLimits, Balance, InstrumentRef

UNSETTLED_MAX = 10_000  # per account; beyond it the oldest entries merge into one


@dataclass(frozen=True, slots=True)
class SeenFill:
    ts_ns: int
    cost_cents: int  # buys: cash the fill will take (0 for sells)
    security: int
    sold_qty: int  # sells: shares the fill will deliver (0 for buys)


@dataclass(slots=True)
class Unsettled:
    fills: deque[SeenFill] = field(default_factory=deque)

    def add(self, fill: SeenFill) -> None:
        self.fills.append(fill)
        if len(self.fills) > UNSETTLED_MAX:
            # Merge the two oldest under the newer time: settles later, never earlier.
            first, second = self.fills.popleft(), self.fills.popleft()
            sold = second.sold_qty + (first.sold_qty if first.security == second.security else 0)
            cost = first.cost_cents + second.cost_cents
            self.fills.appendleft(SeenFill(second.ts_ns, cost, second.security, sold))

    def settle(self, snapshot_ts_ns: int, grace_ns: int) -> None:
        while self.fills and self.fills[0].ts_ns + grace_ns <= snapshot_ts_ns:
            self.fills.popleft()

    def cost_cents(self) -> int:
        return sum(f.cost_cents for f in self.fills)

    def sold(self, security: int) -> int:
        return sum(f.sold_qty for f in self.fills if f.security == security)


class Tables:
    def __init__(self, settle_grace_ns: int = 2_000_000_000) -> None:
        self.settle_grace_ns = settle_grace_ns
        self.accounts: dict[str, AccountLimits] = {}
        self.instruments: dict[int, InstrumentRef] = {i.security: i for i in default_instruments()}
        self.balances: dict[str, Balance] = {}
        self.last_e3: dict[int, int] = {}
        self.unsettled: dict[str, Unsettled] = {}

    def apply(self, topic: str, value: dict[str, Any]) -> None:
        """One decoded record of a table topic (catalog name). A reference record risk cannot
        use raises `BadReference` and removes its key: orders for that account or instrument
        are then rejected as unknown (fail closed) until a sound record replaces it."""
        if topic == "reference.accounts":
            try:
                self.accounts[value["account"]] = account_limits(value)
            except BadReference:
                self.accounts.pop(value["account"], None)
                raise
        elif topic == "reference.instruments":
            try:
                ref = instrument_ref(value)
            except BadReference:
                self.instruments.pop(value["security"], None)
                raise
            if ref is not None:
                self.instruments[ref.security] = ref
        elif topic == "ledger.balances":
            account = value["account"]
            self.balances[account] = Balance(
                value["cash_cents"],
                value["equity_cents"],
                {p["security"]: p["qty"] for p in value["positions"]},
            )
            unsettled = self.unsettled.get(account)
            if unsettled is not None:
                unsettled.settle(value["ts_ns"], self.settle_grace_ns)
        elif topic == "md.trades":
            self.last_e3[value["security"]] = value["price_e3"]

    def seen_fill(self, account: str, fill: SeenFill) -> None:
        self.unsettled.setdefault(account, Unsettled()).add(fill)

    def unsettled_cost_cents(self, account: str) -> int:
        unsettled = self.unsettled.get(account)
        return unsettled.cost_cents() if unsettled is not None else 0

    def unsettled_sold(self, account: str, security: int) -> int:
        unsettled = self.unsettled.get(account)
        return unsettled.sold(security) if unsettled is not None else 0


class BadReference(ValueError):
    """A reference record whose values risk cannot work with (an operator's error)."""


def account_limits(value: dict[str, Any]) -> AccountLimits:
    for name in ("credit_line_cents", "max_order_notional_cents"):
        if value[name] < 0:
            raise BadReference(f"account {value['account']!r}: {name} {value[name]} < 0")
    if not value["account"] or not value["member"]:
        raise BadReference(f"account {value['account']!r}: empty account or member")
    return AccountLimits(
        account=value["account"],
        member=value["member"],
        credit_line_cents=value["credit_line_cents"],
        cut_loss_cents=value["cut_loss_cents"],
        max_order_notional_cents=value["max_order_notional_cents"],
        allow_short=value["allow_short"],
        stp=value["stp"],
        enabled=value["enabled"],
    )


def instrument_ref(value: dict[str, Any]) -> InstrumentRef | None:
    """None for an instrument whose spread table the venue does not know (it stays unlisted)."""
    security, board_lot, prev_close_e3 = (
        value["security"],
        value["board_lot"],
        value["prev_close_e3"],
    )
    if security <= 0 or board_lot <= 0:
        raise BadReference(f"instrument {security}: security and board_lot {board_lot} must be > 0")
    table = SPREAD_TABLE_CODES.get(value["spread_table"])
    if table is None:
        return None
    # 0 means no previous close (risk then needs a last trade); anything else must be a price
    # the instrument could trade at, or the collar around it is meaningless.
    if prev_close_e3 and not (
        PRICE_MIN_E3 <= prev_close_e3 <= PRICE_MAX_E3
        and SPREAD_TABLES[table].is_on_tick(prev_close_e3)
    ):
        raise BadReference(f"instrument {security}: prev_close_e3 {prev_close_e3} is not a price")
    return InstrumentRef(
        value["security"], value["board_lot"], table, value["prev_close_e3"], value["enabled"]
    )


def default_instruments() -> list[InstrumentRef]:
    """`sampan.market.listings` listings: the venue's instruments before reference data arrives."""
    found = []
    for listing in listings():
        table = SPREAD_TABLE_CODES.get(listing.spread_table)
        if table is not None:
            found.append(
                InstrumentRef(
                    listing.security,
                    listing.board_lot,
                    table,
                    listing.prev_close_e3,
                    listing.enabled,
                )
            )
    return found
