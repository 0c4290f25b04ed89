"""Spoofing and layering, pure: large orders placed near the touch and cancelled while the same
account trades the other side.

An account's large orders on one side of one security (notional at least
`spoof_notional_e3_min`, within `spoof_near_touch_bp` of that side's best price when placed)
form an episode from the first one's placement until none of them is open. When the episode
ends, the orders the account itself cancelled within `spoof_life_s_max` of placing them, with at
most `spoof_filled_pct_max` % filled, are the suspect ones; if there is at least one, and the
account traded the other side of the security from the episode's start until
`spoof_trade_after_s` after its end, that is one alert: its id names the account, the security
and the episode's first suspect order, its evidence is the suspect orders, the orders that
traded the other side and their execution ids. Several layered orders in one episode are one
alert. A trade on the other side arriving after the episode ended (within the grace time) raises
the same alert again with the fuller evidence: same id, so a reader keyed by id sees one.

Guarantees: pure (time is each report's own `ts_ns`); the same reports in the same order for
an account give the same alerts. Limits: per account at most `candidates_max` open candidates
per episode and `recent_trades_max` recent trades; an amend is not followed (an order amended
into or out of "large" keeps what it was when placed).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from sampan.analytics.surveillance.market import Touches, near_touch
from sampan.analytics.surveillance.model import NS, Alert, Kind, OrderEvent, Rule, Thresholds


@dataclass(slots=True)
class _Candidate:
    order_id: str
    venue: str
    qty: int
    placed_ns: int
    cum_qty: int = 0
    cancelled_ns: int | None = None  # cancelled by the account
    open: bool = True


@dataclass(slots=True)
class _Episode:
    security: int
    buy: bool
    started_ns: int
    candidates: dict[str, _Candidate] = field(default_factory=dict)
    ended_ns: int | None = None
    raised: tuple[str, ...] | None = None  # the evidence last raised

    def open(self) -> bool:
        return any(c.open for c in self.candidates.values())


@dataclass(frozen=True, slots=True)
class _Trade:
    security: int
    buy: bool
    order_id: str
    exec_id: str
    ts_ns: int


@dataclass(slots=True)
class _Account:
    member: str
    episodes: dict[tuple[int, bool], _Episode] = field(default_factory=dict)
    ended: list[_Episode] = field(default_factory=list)
    trades: deque[_Trade] = field(default_factory=deque)


class Spoofing:
    def __init__(self, limits: Thresholds, touches: Touches) -> None:
        self.limits = limits
        self.touches = touches
        self.accounts: dict[str, _Account] = {}

    def take(self, event: OrderEvent) -> list[Alert]:
        account = self.accounts.setdefault(event.account, _Account(event.member))
        self._forget(account, event.ts_ns)
        key = (event.security, event.buy)
        episode = account.episodes.get(key)
        candidate = episode.candidates.get(event.order_id) if episode is not None else None
        if event.kind is Kind.NEW:
            if self._suspect_size(event):
                self._place(account, event)
            return []
        if event.kind is Kind.TRADE:
            if candidate is not None:
                candidate.cum_qty = event.cum_qty
                candidate.open = event.leaves_qty > 0
            trade = _Trade(event.security, event.buy, event.order_id, event.exec_id, event.ts_ns)
            account.trades.append(trade)
            while len(account.trades) > self.limits.recent_trades_max:
                account.trades.popleft()
            alerts = self._close(event.account, account, key, event.ts_ns)
            return alerts + self._recheck(event.account, account, event)
        if event.kind in (Kind.CANCELED, Kind.EXPIRED, Kind.REJECTED) and candidate is not None:
            candidate.open = False
            candidate.cum_qty = max(candidate.cum_qty, event.cum_qty)
            if event.kind is Kind.CANCELED and not event.venue_cancel:
                candidate.cancelled_ns = event.ts_ns
            return self._close(event.account, account, key, event.ts_ns)
        return []

    def _suspect_size(self, event: OrderEvent) -> bool:
        if (
            event.price_e3 <= 0
            or event.order_qty * event.price_e3 < self.limits.spoof_notional_e3_min
        ):
            return False
        touch = self.touches.at(event.venue, event.security, event.ts_ns)
        return near_touch(touch, event.buy, event.price_e3, self.limits.spoof_near_touch_bp)

    def _place(self, account: _Account, event: OrderEvent) -> None:
        key = (event.security, event.buy)
        episode = account.episodes.get(key)
        if episode is None:
            episode = _Episode(event.security, event.buy, event.ts_ns)
            account.episodes[key] = episode
        if len(episode.candidates) >= self.limits.candidates_max:
            return
        episode.candidates[event.order_id] = _Candidate(
            event.order_id, event.venue, event.order_qty, event.ts_ns
        )

    def _close(
        self, name: str, account: _Account, key: tuple[int, bool], now_ns: int
    ) -> list[Alert]:
        """End the episode at `key` if none of its orders is open, and judge it."""
        episode = account.episodes.get(key)
        if episode is None or episode.open():
            return []
        del account.episodes[key]
        episode.ended_ns = now_ns
        account.ended.append(episode)
        return self._judge(name, account, episode)

    def _recheck(self, name: str, account: _Account, event: OrderEvent) -> list[Alert]:
        """A trade may complete an episode already ended on the other side."""
        alerts: list[Alert] = []
        for episode in account.ended:
            if episode.security == event.security and episode.buy != event.buy:
                alerts += self._judge(name, account, episode)
        return alerts

    def _judge(self, name: str, account: _Account, episode: _Episode) -> list[Alert]:
        assert episode.ended_ns is not None
        limits = self.limits
        suspects = [
            c
            for c in episode.candidates.values()
            if c.cancelled_ns is not None
            and c.cancelled_ns - c.placed_ns <= limits.spoof_life_s_max * NS
            and c.cum_qty * 100 <= limits.spoof_filled_pct_max * c.qty
        ]
        if not suspects:
            return []
        until_ns = episode.ended_ns + limits.spoof_trade_after_s * NS
        opposite = [
            t
            for t in account.trades
            if t.security == episode.security
            and t.buy != episode.buy
            and episode.started_ns <= t.ts_ns <= until_ns
        ]
        if not opposite:
            return []
        cap = limits.evidence_max
        order_ids = [c.order_id for c in suspects]
        order_ids += sorted({t.order_id for t in opposite} - set(order_ids))
        exec_ids = tuple(t.exec_id for t in opposite)[:cap]
        evidence = tuple(order_ids[:cap]) + exec_ids
        if evidence == episode.raised:
            return []
        episode.raised = evidence
        side = "buy" if episode.buy else "sell"
        other = "sold" if episode.buy else "bought"
        shares = sum(c.qty for c in suspects)
        return [
            Alert(
                alert_id=f"{Rule.SPOOFING.value}:{name}:{episode.security}:{suspects[0].order_id}",
                rule=Rule.SPOOFING,
                venue=suspects[0].venue,
                security=episode.security,
                accounts=(name,),
                member=account.member,
                order_ids=tuple(order_ids[:cap]),
                exec_ids=exec_ids,
                detail=(
                    f"{len(suspects)} large {side} order(s) of {shares} shares near the touch "
                    f"cancelled while the account {other} in {len(opposite)} execution(s)"
                ),
                ts_ns=episode.ended_ns,
            )
        ]

    def _forget(self, account: _Account, now_ns: int) -> None:
        """Drop ended episodes past their grace time and trades older than any episode can
        reach."""
        grace_ns = self.limits.spoof_trade_after_s * NS
        account.ended = [
            e for e in account.ended if e.ended_ns is not None and e.ended_ns + grace_ns >= now_ns
        ]
        oldest = min(
            [e.started_ns for e in account.episodes.values()]
            + [e.started_ns for e in account.ended]
            + [now_ns]
        )
        while account.trades and account.trades[0].ts_ns < oldest - grace_ns:
            account.trades.popleft()
