"""Every account's marked-to-market figures and risk level. Pure: inputs and the time are passed
in, outputs returned; no I/O, no clock.

Inputs (the service feeds them as it reads its topics):
- `limits`: an account's credit line and cut-loss level (reference.accounts);
- `snapshot`: the ledger's latest AccountSnapshot of an account: cash, positions and which
  `fills` offsets it includes (ledger.balances);
- `fill`: a Fill read from `fills` at (partition, offset). A fill the account's latest snapshot
  does not include counts on top of it (its shares, and its consideration as cash) until a
  snapshot that includes it arrives, as the router's buying power counts it;
- `price`: a trade of either venue (md.trades). The newest trade time of a security wins,
  whichever venue it traded on;
- `control`: the account is blocked or re-enabled (risk.controls);
- `restore`: the account's last published mark (risk.marks), so a restart continues the day's
  starting equity, level and alert numbers instead of raising the same alerts again.

`flush(now_ns, day)` marks every account whose figures may have moved, at most once per
`mark_interval_ns` per account (a busy feed cannot flood the output: an account not yet due
stays pending and `next_due_ns` says when), and returns the marks whose figures changed, the
alerts and the blocks.

Definitions (HK cents, as the ledger's AccountSnapshot): holdings = sum of qty * last price, each
rounded half-even to the cent; equity = cash + holdings; portfolio value = max(cash, 0) +
holdings; credit used = max(0, -cash); available cash = cash + credit line; distance to cut-loss
= equity - cut-loss level. Starting equity is the account's first marked equity of the Hong
Kong day; the warning level is `warning_bps` of the way from it down to the cut-loss level.
Level: BREACHED when equity < cut-loss, WARNING when equity < warning, NORMAL otherwise.

Alerts are edge-triggered: a WARNING alert when the level goes from NORMAL to WARNING, a BREACH
alert (and a block of the account) when it goes to BREACHED from above; a level that falls back
raises nothing. So a risk officer's re-enable of a breached account holds until the account
recovers above its cut-loss level and breaches again. Alert ids are
`<account>:<day>:<WARNING|BREACH>:<n>` (n counts that account's alerts of that kind that day).

Limits: a position without any trade price is valued at zero (as the ledger does); a fill not
yet in a snapshot moves cash by its consideration only (charges arrive with the snapshot);
accounts are marked only once the ledger or `fills` has named them; at most
`unsettled_max` unsettled fills per account (beyond it the oldest are dropped: the next
snapshot carries them anyway).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sampan.market.money import cents_half_even
from sampan.market.parties import EXCHANGE_MEMBER

BPS = 10_000
WARNING_BPS_DEFAULT = 8_000  # the warning level: 80% of the way from start equity to cut-loss
MARK_INTERVAL_NS_DEFAULT = 50_000_000  # at most one mark per account per 50 ms


class Level(enum.StrEnum):
    NORMAL = "NORMAL"
    WARNING = "WARNING"
    BREACHED = "BREACHED"


_RANK = {Level.NORMAL: 0, Level.WARNING: 1, Level.BREACHED: 2}


class AlertKind(enum.StrEnum):
    WARNING = "WARNING"
    BREACH = "BREACH"


@dataclass(frozen=True, slots=True)
class RiskConfig:
    warning_bps: int = WARNING_BPS_DEFAULT
    mark_interval_ns: int = MARK_INTERVAL_NS_DEFAULT
    unsettled_max: int = 10_000  # per account

    def __post_init__(self) -> None:
        assert 0 < self.warning_bps <= BPS, self.warning_bps
        assert self.mark_interval_ns >= 0 and self.unsettled_max > 0


@dataclass(frozen=True, slots=True)
class Mark:
    account: str
    member: str
    day: str
    cash_cents: int
    holdings_value_cents: int
    portfolio_value_cents: int
    equity_cents: int
    available_cash_cents: int
    credit_line_cents: int
    credit_line_used_cents: int
    cut_loss_equity_cents: int
    cut_loss_distance_cents: int
    start_equity_cents: int
    warning_equity_cents: int
    level: Level
    blocked: bool
    warnings: int
    breaches: int
    priced_ts_ns: int
    ts_ns: int

    def figures(self) -> tuple[int | str | bool, ...]:
        """What a reader needs to be told about again when it changes (not the times)."""
        return (
            self.day,
            self.cash_cents,
            self.holdings_value_cents,
            self.credit_line_cents,
            self.cut_loss_equity_cents,
            self.start_equity_cents,
            self.level,
            self.blocked,
            self.warnings,
            self.breaches,
        )


@dataclass(frozen=True, slots=True)
class Alert:
    alert_id: str
    account: str
    member: str
    kind: AlertKind
    equity_cents: int
    warning_equity_cents: int
    cut_loss_equity_cents: int
    start_equity_cents: int
    priced_ts_ns: int
    ts_ns: int


@dataclass(frozen=True, slots=True)
class Block:
    """Block the account's orders that add risk, and cancel its open ones."""

    account: str
    member: str
    alert_id: str
    breach: int  # the day's n-th breach: names the cancel command


@dataclass(frozen=True, slots=True)
class Flushed:
    marks: list[Mark] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)


@dataclass(slots=True)
class _Account:
    account: str
    member: str = ""
    has_limits: bool = False
    credit_line_cents: int = 0
    cut_loss_cents: int = 0
    known: bool = False  # the ledger or `fills` named it: it has figures to mark
    cash_cents: int = 0  # the latest snapshot's
    positions: dict[int, int] = field(default_factory=dict)  # the latest snapshot's
    included: dict[int, int] = field(default_factory=dict)  # fills partition → next offset
    # (partition, offset) → (security, shares bought (+) or sold (-), cash in (+) or out (-))
    unsettled: dict[tuple[int, int], tuple[int, int, int]] = field(default_factory=dict)
    day: str = ""
    start_equity_cents: int | None = None
    level: Level = Level.NORMAL
    warnings: int = 0
    breaches: int = 0
    blocked: bool = False
    last_mark_ns: int | None = None
    published: tuple[int | str | bool, ...] = ()

    def held(self) -> dict[int, int]:
        """Shares per security: the snapshot's plus the unsettled fills'."""
        held = dict(self.positions)
        for security, shares, _ in self.unsettled.values():
            held[security] = held.get(security, 0) + shares
        return held

    def cash(self) -> int:
        return self.cash_cents + sum(cash for _, _, cash in self.unsettled.values())


class RiskBook:
    def __init__(self, config: RiskConfig | None = None) -> None:
        self.config = config or RiskConfig()
        self.accounts: dict[str, _Account] = {}
        self.last_e3: dict[int, tuple[int, int]] = {}  # security → (ts_ns, price_e3)
        self.holders: dict[int, set[str]] = {}  # security → accounts holding it
        self._holding: dict[str, frozenset[int]] = {}  # account → securities it holds
        self._moved: set[int] = set()  # securities whose price moved since the last flush
        self.pending: set[str] = set()  # accounts whose figures may have moved

    # ---------------------------------------------------------------- inputs

    def _get(self, account: str) -> _Account:
        found = self.accounts.get(account)
        if found is None:
            found = self.accounts[account] = _Account(account)
        return found

    def limits(self, account: str, member: str, credit_line_cents: int, cut_loss: int) -> None:
        a = self._get(account)
        a.member, a.has_limits = member, True
        a.credit_line_cents, a.cut_loss_cents = credit_line_cents, cut_loss
        self.pending.add(account)

    def snapshot(
        self,
        account: str,
        member: str,
        cash_cents: int,
        positions: Mapping[int, int],
        fills_offsets: Mapping[int, int],
    ) -> None:
        a = self._get(account)
        a.member = a.member or member
        a.known = True
        a.cash_cents, a.positions = cash_cents, {s: q for s, q in positions.items() if q}
        a.included = dict(fills_offsets)
        for position in [p for p in a.unsettled if p[1] < a.included.get(p[0], 0)]:
            del a.unsettled[position]
        self._index(a)

    def fill(
        self,
        partition: int,
        offset: int,
        security: int,
        price_e3: int,
        qty: int,
        sides: Iterable[tuple[str, str, bool]],
    ) -> None:
        """A Fill at (partition, offset): `sides` are (account, member, bought)."""
        consideration = cents_half_even(price_e3 * qty)
        for account, member, bought in sides:
            if member == EXCHANGE_MEMBER:
                continue
            a = self._get(account)
            a.member = a.member or member
            a.known = True
            if offset < a.included.get(partition, 0):
                continue  # the latest snapshot includes it
            if len(a.unsettled) >= self.config.unsettled_max:
                del a.unsettled[next(iter(a.unsettled))]
            shares, cash = (qty, -consideration) if bought else (-qty, consideration)
            a.unsettled[(partition, offset)] = (security, shares, cash)
            self._index(a)

    def price(self, security: int, price_e3: int, ts_ns: int) -> None:
        last = self.last_e3.get(security)
        if last is not None and ts_ns < last[0]:
            return  # an older trade (another venue, or a partition read late): not the last
        self.last_e3[security] = (ts_ns, price_e3)
        if last is None or last[1] != price_e3:
            self._moved.add(security)

    def control(self, account: str, blocked: bool) -> None:
        a = self._get(account)
        if a.blocked != blocked:
            a.blocked = blocked
            self.pending.add(account)

    def restore(self, mark: Mark) -> None:
        """The account's last published mark: the day's starting equity, level and counts."""
        a = self._get(mark.account)
        a.member = a.member or mark.member
        a.day, a.start_equity_cents, a.level = mark.day, mark.start_equity_cents, mark.level
        a.warnings, a.breaches = mark.warnings, mark.breaches
        a.published = mark.figures()

    def _index(self, a: _Account) -> None:
        self.pending.add(a.account)
        now = frozenset(s for s, q in a.held().items() if q)
        before = self._holding.get(a.account, frozenset())
        if now == before:
            return
        for security in before - now:
            self.holders[security].discard(a.account)
        for security in now - before:
            self.holders.setdefault(security, set()).add(a.account)
        self._holding[a.account] = now

    # ---------------------------------------------------------------- marking

    def next_due_ns(self, now_ns: int) -> int | None:
        """When the earliest pending account may be marked (None: nothing pending)."""
        self._expand()
        if not self.pending:
            return None
        interval = self.config.mark_interval_ns
        due = min(self._due(self.accounts[a], interval) for a in self.pending)
        return max(due, now_ns)

    @staticmethod
    def _due(a: _Account, interval: int) -> int:
        return 0 if a.last_mark_ns is None else a.last_mark_ns + interval

    def _expand(self) -> None:
        for security in self._moved:
            self.pending.update(self.holders.get(security, ()))
        self._moved.clear()

    def flush(self, now_ns: int, day: str) -> Flushed:
        """Mark every pending account that is due; the changed marks, alerts and blocks."""
        self._expand()
        out = Flushed()
        interval = self.config.mark_interval_ns
        for account in sorted(self.pending):
            a = self.accounts[account]
            if self._due(a, interval) > now_ns:
                continue
            self.pending.discard(account)
            if not a.known:
                continue
            a.last_mark_ns = now_ns
            mark = self._mark(a, now_ns, day, out)
            if mark.figures() != a.published:
                a.published = mark.figures()
                out.marks.append(mark)
        return out

    def _mark(self, a: _Account, now_ns: int, day: str, out: Flushed) -> Mark:
        cash = a.cash()
        holdings, priced_ts = 0, 0
        for security, qty in a.held().items():
            last = self.last_e3.get(security)
            if last is not None and qty:
                holdings += cents_half_even(qty * last[1])
                priced_ts = max(priced_ts, last[0])
        equity = cash + holdings
        if a.day != day:
            a.day, a.start_equity_cents, a.warnings, a.breaches = day, None, 0, 0
        if a.start_equity_cents is None:
            a.start_equity_cents = equity
        start, cut = a.start_equity_cents, a.cut_loss_cents
        warning = start - (start - cut) * self.config.warning_bps // BPS if start > cut else cut
        level = Level.NORMAL
        if a.has_limits:
            level = (
                Level.BREACHED
                if equity < cut
                else Level.WARNING
                if equity < warning
                else Level.NORMAL
            )
        if _RANK[level] > _RANK[a.level]:
            kind = AlertKind.BREACH if level is Level.BREACHED else AlertKind.WARNING
            if kind is AlertKind.BREACH:
                a.breaches += 1
                n = a.breaches
            else:
                a.warnings += 1
                n = a.warnings
            alert_id = f"{a.account}:{day}:{kind}:{n}"
            out.alerts.append(
                Alert(
                    alert_id,
                    a.account,
                    a.member,
                    kind,
                    equity,
                    warning,
                    cut,
                    start,
                    priced_ts,
                    now_ns,
                )
            )
            if kind is AlertKind.BREACH:
                out.blocks.append(Block(a.account, a.member, alert_id, n))
                a.blocked = True
        a.level = level
        return Mark(
            account=a.account,
            member=a.member,
            day=day,
            cash_cents=cash,
            holdings_value_cents=holdings,
            portfolio_value_cents=max(cash, 0) + holdings,
            equity_cents=equity,
            available_cash_cents=cash + a.credit_line_cents,
            credit_line_cents=a.credit_line_cents,
            credit_line_used_cents=max(0, -cash),
            cut_loss_equity_cents=cut,
            cut_loss_distance_cents=equity - cut,
            start_equity_cents=start,
            warning_equity_cents=warning,
            level=level,
            blocked=a.blocked,
            warnings=a.warnings,
            breaches=a.breaches,
            priced_ts_ns=priced_ts,
            ts_ns=now_ns,
        )
