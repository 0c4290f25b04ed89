"""Surveillance vocabulary: the inputs the rules read, the alert they raise, their thresholds.

Inputs are typed facts taken from the catalog's records at the edge (`detector`): an order's
execution report, a fill, a public trade, a book's touch. An `Alert` names its rule, the
accounts and member firm (when the rule is about one), the evidence (order ids and execution
ids) and a deterministic id built from the rule and the evidence that started it, so the same
input always gives the same id: a record raised again after a redelivery or a restart replaces
the earlier one for a reader that keys by id (the topic is compacted and keyed by it).

Thresholds have documented defaults and may each be set in the environment as
`SAMPAN_SURVEILLANCE_<NAME>` (an integer), for example `SAMPAN_SURVEILLANCE_MOVE_SIGMAS=5`.
Limits: every rule is integer arithmetic; the standard-deviation tests compare squares, so no
square root and no float is taken.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import Enum

from sampan.errors import ConfigError

NS = 1_000_000_000
ENV_PREFIX = "SAMPAN_SURVEILLANCE_"


class Rule(Enum):
    SPOOFING = "SPOOFING"
    ORDER_TO_TRADE = "ORDER_TO_TRADE"
    WASH_TRADE = "WASH_TRADE"
    PRICE_MOVE = "PRICE_MOVE"
    LIQUIDITY_GAP = "LIQUIDITY_GAP"


class Kind(Enum):
    """What an execution report says happened to the order (the ExecType values used here)."""

    NEW = "NEW"
    TRADE = "TRADE"
    CANCELED = "CANCELED"
    REPLACED = "REPLACED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    CANCEL_REJECTED = "CANCEL_REJECTED"


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """One execution report of an account's order (orders.events)."""

    account: str
    member: str
    venue: str
    security: int
    order_id: str
    buy: bool
    kind: Kind
    price_e3: int
    order_qty: int
    cum_qty: int
    leaves_qty: int
    exec_id: str
    venue_cancel: bool  # a CANCELED the venue decided (a reason code), not the account
    ts_ns: int


@dataclass(frozen=True, slots=True)
class FillEvent:
    exec_id: str
    venue: str
    security: int
    price_e3: int
    qty: int
    buy_account: str
    buy_member: str
    buy_order_id: str
    sell_account: str
    sell_member: str
    sell_order_id: str
    ts_ns: int


@dataclass(frozen=True, slots=True)
class TradeEvent:
    venue: str
    security: int
    trade_id: str
    price_e3: int
    qty: int
    ts_ns: int


@dataclass(frozen=True, slots=True)
class TouchEvent:
    """A book's best bid and ask (None: that side is empty) from a depth snapshot."""

    venue: str
    security: int
    bid_e3: int | None
    bid_qty: int
    ask_e3: int | None
    ask_qty: int
    seq: int
    ts_ns: int


Event = OrderEvent | FillEvent | TradeEvent | TouchEvent


@dataclass(frozen=True, slots=True)
class Alert:
    alert_id: str
    rule: Rule
    venue: str | None
    security: int | None
    accounts: tuple[str, ...]
    member: str | None
    order_ids: tuple[str, ...]
    exec_ids: tuple[str, ...]
    detail: str
    ts_ns: int

    def to_record(self) -> dict[str, object]:
        """The `SurveillanceAlert` record: a function of the alert alone."""
        return {
            "alert_id": self.alert_id,
            "rule": self.rule.value,
            "venue": self.venue,
            "security": self.security,
            "accounts": list(self.accounts),
            "member": self.member,
            "order_ids": list(self.order_ids),
            "exec_ids": list(self.exec_ids),
            "detail": self.detail,
            "ts_ns": self.ts_ns,
        }


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Every rule's limits. Money in HK$0.001, ratios in hundredths, times in seconds."""

    # Spoofing / layering: an order of at least this notional (HK$1,000,000), within this many
    # basis points of its side's best price when placed, cancelled by the account within
    # `spoof_life_s_max` with at most `spoof_filled_pct_max` % of it filled, while the account
    # traded the other side of the same security (from the first such order's placement to
    # `spoof_trade_after_s` after the last one ended).
    spoof_notional_e3_min: int = 1_000_000_000
    spoof_near_touch_bp: int = 50
    spoof_life_s_max: int = 60
    spoof_filled_pct_max: int = 10
    spoof_trade_after_s: int = 10
    # Order-to-trade ratio: in a bucket of `otr_bucket_s`, at least `otr_messages_min` order
    # messages (new, cancel, amend) and a messages-per-trade ratio above `otr_factor` times the
    # account's own usual (its last `otr_history_max` active buckets, once it has
    # `otr_history_min` of them).
    otr_bucket_s: int = 60
    otr_messages_min: int = 50
    otr_factor: int = 5
    otr_history_min: int = 5
    otr_history_max: int = 30
    # Price move: a trade-to-trade return beyond `move_sigmas` standard deviations of the last
    # `move_window` returns of that venue and security (once `move_samples_min` are known) and
    # at least `move_bp_min` basis points (a quiet window's tiny deviation alone never alerts).
    move_sigmas: int = 4
    move_window: int = 50
    move_samples_min: int = 20
    move_bp_min: int = 20
    # Liquidity gap (internal book): a spread above, or a depth at the touch below, its normal
    # range (`gap_sigmas` standard deviations of the last `gap_window` two-sided snapshots, once
    # `gap_samples_min` are known), or a side gone empty; a spread under `gap_spread_bp_min`
    # basis points is never a gap.
    gap_sigmas: int = 4
    gap_window: int = 100
    gap_samples_min: int = 30
    gap_spread_bp_min: int = 20
    # How far back the app reads its inputs at start to rebuild the rules' state (seconds), and
    # at most how many ids an alert carries as evidence.
    lookback_s: int = 1800
    evidence_max: int = 50
    # Bounds on what the rules hold per account or book.
    touch_history_max: int = 256
    candidates_max: int = 100
    recent_trades_max: int = 500

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Thresholds:
        env = os.environ if environ is None else environ
        values: dict[str, int] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None or raw == "":
                continue
            try:
                value = int(raw)
            except ValueError:
                raise ConfigError(
                    f"{ENV_PREFIX}{f.name.upper()}={raw!r} is not an integer"
                ) from None
            if value < 0:
                raise ConfigError(f"{ENV_PREFIX}{f.name.upper()}={raw!r} must not be negative")
            values[f.name] = value
        return cls(**values)


@dataclass(slots=True)
class Window:
    """The last `size` integer samples with their sum and sum of squares (exact)."""

    size: int
    samples: deque[int] = field(default_factory=deque)
    total: int = 0
    squares: int = 0

    def add(self, value: int) -> None:
        self.samples.append(value)
        self.total += value
        self.squares += value * value
        if len(self.samples) > self.size:
            old = self.samples.popleft()
            self.total -= old
            self.squares -= old * old

    def beyond(self, value: int, sigmas: int) -> int:
        """+1 when `value` lies more than `sigmas` standard deviations above the window's mean,
        -1 when below, 0 otherwise: (v·n - Σx)² > k²·(n·Σx² - (Σx)²), all in integers."""
        n = len(self.samples)
        assert n > 0
        deviation = value * n - self.total
        spread = n * self.squares - self.total * self.total
        if deviation * deviation <= sigmas * sigmas * spread:
            return 0
        return 1 if deviation > 0 else -1


def bp(numerator: int, base: int) -> int:
    """numerator / base in basis points, rounded half away from zero, in integers."""
    assert base > 0
    quotient, remainder = divmod(abs(numerator) * 10_000, base)
    if 2 * remainder >= base:
        quotient += 1
    return quotient if numerator >= 0 else -quotient
