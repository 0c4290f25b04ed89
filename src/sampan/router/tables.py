"""The reference and balance tables risk reads: accounts, instruments, balances, last prices.

Pure: the service feeds it decoded records from reference.accounts, reference.instruments,
ledger.balances, md.trades (each read from the beginning as a table, latest value per key
wins) and `fills` (from where the oldest ledger snapshot stops), and the router core reads it.

Also keeps, per account, the fills the ledger's latest snapshot does not include
(`Unsettled`), so buying power and inventory count every fill exactly once: in the balance of
a snapshot that includes it, or as unsettled. Settlement is tied to the ledger's input, not to
clocks: each AccountSnapshot names the `fills` offsets it includes (every fill below them),
and a fill read from `fills` at (partition, offset) stays unsettled until a snapshot of its
account has passed that offset. A fill the core has seen in an execution report but the fills
reader has not read yet is held as pending (it counts) and is matched to its `fills` record by
identity (security, side, price, quantity, venue time); a report of a fill already read is not
counted again. After a restart, `fills` is read again from the oldest snapshot's offsets, so
nothing unsettled is forgotten.

Limits: a pending fill whose record is never read (its report re-processed after a restart,
its record below where the reader started, so already in every snapshot) is dropped once the
reader has read fills `PENDING_MAX_NS` newer; until then it counts twice (never too little).
A fill that reaches risk through `fills` before its report counts both as unsettled and in the
order's hold until the report releases the hold (too much, never too little). A snapshot
without offsets (written before they existed) includes nothing as far as settlement goes, and
makes a restarted router read `fills` from the beginning.

Reference records are checked before use (`BadReference`: board lot, previous close on tick,
non-negative limits); one that fails removes its key, so risk rejects rather than divides by
zero or collars around a price that cannot trade.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sampan.market.listings import SPREAD_TABLE_CODES, listings
from sampan.market.parties import EXCHANGE_MEMBER
from sampan.market.rules import PRICE_MAX_E3, PRICE_MIN_E3, SPREAD_TABLES
from sampan.router.risk import AccountLimits, Balance, InstrumentRef, RiskConfig, hold_cents

# Per account, pending fills (beyond it the oldest merge into one). Read fills are bounded by
# the ledger's lag only: dropping one would understate what the account has spent.
UNSETTLED_MAX = 10_000
INCLUDED_KEYS_MAX = 10_000  # per account: included fills not yet reported, for late reports
PENDING_MAX_NS = 60_000_000_000

FillKey = tuple[int, bool, int, int, int]  # security, bought, price_e3, qty, venue ts_ns
Position = tuple[int, int]  # partition and offset of a record of `fills`


@dataclass(frozen=True, slots=True)
class SeenFill:
    ts_ns: int
    cost_cents: int  # buys: cash the fill will take (0 for sells)
    security: int
    sold_qty: int  # sells: shares the fill will deliver (0 for buys)
    price_e3: int = 0
    qty: int = 0

    def key(self) -> FillKey:
        return (self.security, self.sold_qty == 0, self.price_e3, self.qty, self.ts_ns)


@dataclass(slots=True)
class _Read:
    fill: SeenFill
    reported: bool


@dataclass(slots=True)
class Unsettled:
    """One account's fills not included in its latest ledger snapshot (module docstring)."""

    read: dict[Position, _Read] = field(default_factory=dict)
    pending: deque[SeenFill] = field(default_factory=deque)
    _unreported: dict[FillKey, list[Position]] = field(default_factory=dict)
    _included: deque[FillKey] = field(default_factory=deque)
    _included_count: Counter[FillKey] = field(default_factory=Counter)

    def reported(self, fill: SeenFill) -> None:
        """The core saw this fill in an execution report."""
        key = fill.key()
        positions = self._unreported.get(key)
        if positions:
            self.read[positions.pop()].reported = True
            if not positions:
                del self._unreported[key]
        elif self._included_count[key] > 0:
            self._included_count[key] -= 1  # already in the balance
        else:
            self.pending.append(fill)
            if len(self.pending) > UNSETTLED_MAX:
                # Merge the two oldest: they count on until they expire, never less.
                first, second = self.pending.popleft(), self.pending.popleft()
                sold = second.sold_qty + (
                    first.sold_qty if first.security == second.security else 0
                )
                cost = first.cost_cents + second.cost_cents
                self.pending.appendleft(SeenFill(second.ts_ns, cost, second.security, sold))

    def read_fill(self, position: Position, fill: SeenFill, included: bool) -> None:
        """The fills reader read this fill of the account at `position`; `included` when the
        account's latest snapshot already includes it."""
        key = fill.key()
        matched = next((p for p in self.pending if p.key() == key), None)
        if matched is not None:
            self.pending.remove(matched)
            fill = matched  # the core's own cost
        if included:
            if matched is None:
                self._include(key)
            return
        if position in self.read:
            return  # read again (a reader restarted): already counted
        self.read[position] = _Read(fill, matched is not None)
        if matched is None:
            self._unreported.setdefault(key, []).append(position)

    def settle(self, next_offsets: dict[int, int]) -> None:
        """A snapshot including every fill below `next_offsets` (per partition)."""
        for position in [p for p in self.read if p[1] < next_offsets.get(p[0], 0)]:
            entry = self.read.pop(position)
            if not entry.reported:
                key = entry.fill.key()
                self._unreported[key].remove(position)
                if not self._unreported[key]:
                    del self._unreported[key]
                self._include(key)

    def expire(self, newest_read_ns: int) -> None:
        while self.pending and self.pending[0].ts_ns + PENDING_MAX_NS < newest_read_ns:
            self.pending.popleft()

    def _include(self, key: FillKey) -> None:
        self._included.append(key)
        self._included_count[key] += 1
        if len(self._included) > INCLUDED_KEYS_MAX:
            old = self._included.popleft()
            if self._included_count[old] > 0:
                self._included_count[old] -= 1
            if not self._included_count[old]:
                del self._included_count[old]

    def _fills(self) -> Iterable[SeenFill]:
        yield from (r.fill for r in self.read.values())
        yield from self.pending

    def cost_cents(self) -> int:
        return sum(f.cost_cents for f in self._fills())

    def sold(self, security: int) -> int:
        return sum(f.sold_qty for f in self._fills() if f.security == security)


class Tables:
    def __init__(self, risk_config: RiskConfig | None = None) -> None:
        # Prices the cash of a fill read from `fills` before its report (as the core does).
        self.risk_config = risk_config or RiskConfig()
        self.accounts: dict[str, AccountLimits] = {}
        self.instruments: dict[int, InstrumentRef] = {i.security: i for i in default_instruments()}
        self.balances: dict[str, Balance] = {}
        self.last_e3: dict[int, int] = {}
        self.unsettled: dict[str, Unsettled] = {}
        # Per account: the `fills` offsets its latest snapshot includes (every fill below them).
        self.included: dict[str, dict[int, int]] = {}
        self.newest_fill_ns = 0
        # Accounts live risk blocked on a cut-loss breach (risk.controls), until re-enabled.
        self.blocked: set[str] = set()

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
            # A snapshot written before the field existed says nothing: it includes nothing.
            offsets = value.get("fills_offsets") or []
            included = {o["partition"]: o["next_offset"] for o in offsets}
            self.included[account] = included
            unsettled = self.unsettled.get(account)
            if unsettled is not None:
                unsettled.settle(included)
        elif topic == "md.trades":
            self.last_e3[value["security"]] = value["price_e3"]
        elif topic == "risk.controls":
            if value["blocked"]:
                self.blocked.add(value["account"])
            else:
                self.blocked.discard(value["account"])

    def apply_fill(self, partition: int, offset: int, value: dict[str, Any]) -> None:
        """One decoded Fill read from `fills` at (partition, offset)."""
        security, price_e3, qty, ts_ns = (
            value["security"],
            value["price_e3"],
            value["qty"],
            value["ts_ns"],
        )
        self.newest_fill_ns = max(self.newest_fill_ns, ts_ns)
        for account, member, bought in (
            (value["buy_account"], value["buy_member"], True),
            (value["sell_account"], value["sell_member"], False),
        ):
            if member == EXCHANGE_MEMBER:
                continue
            cost = hold_cents(price_e3, qty, self.risk_config) if bought else 0
            fill = SeenFill(ts_ns, cost, security, 0 if bought else qty, price_e3, qty)
            done = offset < self.included.get(account, {}).get(partition, 0)
            unsettled = self.unsettled.setdefault(account, Unsettled())
            unsettled.read_fill((partition, offset), fill, done)
            unsettled.expire(self.newest_fill_ns)

    def fills_start(self, partitions: Iterable[int]) -> dict[int, int]:
        """Where to start reading `fills` so that every fill some account's latest snapshot
        does not include is read: the oldest snapshot's offsets (0 where one says nothing).
        Call after ledger.balances has been read."""
        known = list(self.included.values())
        return {p: min((v.get(p, 0) for v in known), default=0) for p in partitions}

    def seen_fill(self, account: str, fill: SeenFill) -> None:
        self.unsettled.setdefault(account, Unsettled()).reported(fill)

    def unsettled_cost_cents(self, account: str) -> int:
        unsettled = self.unsettled.get(account)
        if unsettled is None:
            return 0
        unsettled.expire(self.newest_fill_ns)
        return unsettled.cost_cents()

    def unsettled_sold(self, account: str, security: int) -> int:
        unsettled = self.unsettled.get(account)
        if unsettled is None:
            return 0
        unsettled.expire(self.newest_fill_ns)
        return unsettled.sold(security)


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
