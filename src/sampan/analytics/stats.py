"""A security's session statistics on one venue, from its trades. Pure: no Kafka, no clock.

`SessionStats` is the state of one (venue, security) for one Hong Kong trading day: last,
open, high, low, volume, turnover (HK$0.001 times shares, exact), VWAP and the change against the
previous close in basis points, all integers. `apply` takes a trade with where it was read
(partition and offset) and returns the new state.

Guarantees (what makes the analytics app's at-least-once delivery safe): a trade at or below
the offset already applied for its partition changes nothing, so a trade delivered again after
a restart is never counted twice; the state is a plain value whose record
(`to_record`) is a function of the state alone, so writing it again is harmless. A trade of a
later trading day starts a new session; one of an earlier day is ignored (late data).

Limits: VWAP and the change are rounded half away from zero to whole HK$0.001 / basis points
for display; volume and turnover are exact. The previous close comes from the instrument's
reference record (0 when unknown: the change is then None).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from sampan.market.calendar import trading_day_iso as trading_day


def _div_round(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half away from zero, in integers."""
    assert denominator > 0
    quotient, remainder = divmod(abs(numerator), denominator)
    if 2 * remainder >= denominator:
        quotient += 1
    return quotient if numerator >= 0 else -quotient


@dataclass(frozen=True, slots=True)
class Trade:
    venue: str
    security: int
    price_e3: int
    qty: int
    ts_ns: int
    partition: int
    offset: int

    @classmethod
    def from_record(cls, record: dict[str, Any], partition: int, offset: int) -> Trade:
        return cls(
            str(record["venue"]),
            int(record["security"]),
            int(record["price_e3"]),
            int(record["qty"]),
            int(record["ts_ns"]),
            partition,
            offset,
        )


@dataclass(frozen=True, slots=True)
class SessionStats:
    venue: str
    security: int
    day: str  # the Hong Kong trading day, YYYY-MM-DD
    prev_close_e3: int
    last_e3: int = 0
    open_e3: int = 0
    high_e3: int = 0
    low_e3: int = 0
    volume: int = 0
    turnover_e3: int = 0  # sum of price_e3 * qty: HK$0.001 times shares
    trades: int = 0
    ts_ns: int = 0
    # The last input offset applied, per partition of the trades topic, as (partition, offset).
    applied: tuple[tuple[int, int], ...] = ()

    @property
    def vwap_e3(self) -> int | None:
        return _div_round(self.turnover_e3, self.volume) if self.volume else None

    @property
    def change_bp(self) -> int | None:
        """The last price's change against the previous close, in basis points."""
        if not self.trades or self.prev_close_e3 <= 0:
            return None
        return _div_round((self.last_e3 - self.prev_close_e3) * 10_000, self.prev_close_e3)

    def applied_offset(self, partition: int) -> int:
        return dict(self.applied).get(partition, -1)

    def to_record(self) -> dict[str, Any]:
        """The `SecurityStats` record (turnover in HK$0.001 times shares, as the schema says)."""
        traded = self.trades > 0
        return {
            "venue": self.venue,
            "security": self.security,
            "last_e3": self.last_e3 if traded else None,
            "open_e3": self.open_e3 if traded else None,
            "high_e3": self.high_e3 if traded else None,
            "low_e3": self.low_e3 if traded else None,
            "prev_close_e3": self.prev_close_e3 or None,
            "nominal_e3": self.last_e3 if traded else None,
            "volume": self.volume,
            "turnover_e3": self.turnover_e3,
            "ts_ns": self.ts_ns,
        }

    def to_state(self) -> dict[str, Any]:
        """The `AnalyticsState` record: the whole state, for the app's table changelog."""
        return {
            "venue": self.venue,
            "security": self.security,
            "day": self.day,
            "prev_close_e3": self.prev_close_e3,
            "last_e3": self.last_e3,
            "open_e3": self.open_e3,
            "high_e3": self.high_e3,
            "low_e3": self.low_e3,
            "volume": self.volume,
            "turnover_e3": self.turnover_e3,
            "trades": self.trades,
            "ts_ns": self.ts_ns,
            "applied": [{"partition": p, "offset": o} for p, o in self.applied],
        }

    @classmethod
    def from_state(cls, record: dict[str, Any]) -> SessionStats:
        fields = dict(record)
        fields["applied"] = tuple(
            (int(a["partition"]), int(a["offset"])) for a in record["applied"]
        )
        return cls(**fields)


def apply(state: SessionStats | None, trade: Trade, prev_close_e3: int) -> SessionStats:
    """The state after `trade` (see the module header for what is ignored)."""
    assert trade.qty > 0 and trade.price_e3 > 0, trade
    day = trading_day(trade.ts_ns)
    if state is not None and trade.offset <= state.applied_offset(trade.partition):
        return state  # delivered again: already counted
    if state is None or day > state.day:
        carried = state.applied if state is not None else ()
        state = SessionStats(trade.venue, trade.security, day, prev_close_e3, applied=carried)
    elif day < state.day:
        return _mark(state, trade)  # a trade of an earlier session: not this session's
    first = state.trades == 0
    notional = trade.price_e3 * trade.qty
    state = replace(
        state,
        last_e3=trade.price_e3,
        open_e3=trade.price_e3 if first else state.open_e3,
        high_e3=trade.price_e3 if first else max(state.high_e3, trade.price_e3),
        low_e3=trade.price_e3 if first else min(state.low_e3, trade.price_e3),
        volume=state.volume + trade.qty,
        turnover_e3=state.turnover_e3 + notional,
        trades=state.trades + 1,
        ts_ns=max(state.ts_ns, trade.ts_ns),
        prev_close_e3=state.prev_close_e3 or prev_close_e3,
    )
    return _mark(state, trade)


def _mark(state: SessionStats, trade: Trade) -> SessionStats:
    applied = dict(state.applied)
    applied[trade.partition] = max(applied.get(trade.partition, -1), trade.offset)
    return replace(state, applied=tuple(sorted(applied.items())))
