"""Account activity rules, pure: an order-to-trade ratio far above the account's own usual, and
wash trades (a fill whose buyer and seller belong to one member firm).

Order-to-trade: an account's order messages (new orders, cancels and amends it asked for) and
trades (its TRADE reports) are counted in buckets of `otr_bucket_s` of the reports' own time.
The account's usual ratio is its messages over its trades (a bucket without trades counts as
one) across its last `otr_history_max` buckets with any messages. Once it has
`otr_history_min` such buckets, a bucket with at least `otr_messages_min` messages whose ratio
exceeds `otr_factor` times the usual raises one alert (id: account and bucket start), evidence
the bucket's first order ids and executions (at most `evidence_max` each).

Wash trade: one alert per fill (id: venue and exec id) whose buy and sell members are the same
firm, whether the accounts differ or not. The internal book's self-trade prevention works per
member, so such a fill means prevention was off or bypassed.

Guarantees: pure, deterministic per account given its reports in order (orders.events is keyed
by account, so one partition holds an account's reports in order). Limits: per account one
open bucket and `otr_history_max` past ones; a report older than the open bucket counts in it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from sampan.analytics.surveillance.model import (
    NS,
    Alert,
    FillEvent,
    Kind,
    OrderEvent,
    Rule,
    Thresholds,
)

_MESSAGES = frozenset({Kind.NEW, Kind.REPLACED})


@dataclass(slots=True)
class _Bucket:
    start_ns: int
    messages: int = 0
    trades: int = 0
    order_ids: list[str] = field(default_factory=list)
    exec_ids: list[str] = field(default_factory=list)
    raised: bool = False


@dataclass(slots=True)
class _Usage:
    member: str
    bucket: _Bucket
    history: deque[tuple[int, int]] = field(default_factory=deque)  # (messages, trades)


class OrderToTrade:
    def __init__(self, limits: Thresholds) -> None:
        self.limits = limits
        self.accounts: dict[str, _Usage] = {}

    def take(self, event: OrderEvent) -> list[Alert]:
        limits = self.limits
        bucket_ns = limits.otr_bucket_s * NS
        start_ns = event.ts_ns - event.ts_ns % bucket_ns
        usage = self.accounts.get(event.account)
        if usage is None:
            usage = _Usage(event.member, _Bucket(start_ns))
            self.accounts[event.account] = usage
        elif start_ns > usage.bucket.start_ns:
            done = usage.bucket
            if done.messages:
                usage.history.append((done.messages, done.trades))
                while len(usage.history) > limits.otr_history_max:
                    usage.history.popleft()
            usage.bucket = _Bucket(start_ns)
        bucket = usage.bucket
        message = event.kind in _MESSAGES or (
            event.kind is Kind.CANCELED and not event.venue_cancel
        )
        if message:
            bucket.messages += 1
            if (
                len(bucket.order_ids) < limits.evidence_max
                and event.order_id not in bucket.order_ids
            ):
                bucket.order_ids.append(event.order_id)
        elif event.kind is Kind.TRADE:
            bucket.trades += 1
            if len(bucket.exec_ids) < limits.evidence_max:
                bucket.exec_ids.append(event.exec_id)
        else:
            return []
        return self._judge(event.account, usage)

    def _judge(self, account: str, usage: _Usage) -> list[Alert]:
        limits = self.limits
        bucket = usage.bucket
        if (
            bucket.raised
            or bucket.messages < limits.otr_messages_min
            or len(usage.history) < limits.otr_history_min
        ):
            return []
        past_messages = sum(m for m, _ in usage.history)
        past_trades = sum(max(t, 1) for _, t in usage.history)
        trades = max(bucket.trades, 1)
        # messages/trades > factor * past_messages/past_trades, cross-multiplied.
        if bucket.messages * past_trades <= limits.otr_factor * past_messages * trades:
            return []
        bucket.raised = True
        ratio_x100 = bucket.messages * 100 // trades
        usual_x100 = past_messages * 100 // past_trades
        return [
            Alert(
                alert_id=f"{Rule.ORDER_TO_TRADE.value}:{account}:{bucket.start_ns // NS}",
                rule=Rule.ORDER_TO_TRADE,
                venue=None,
                security=None,
                accounts=(account,),
                member=usage.member,
                order_ids=tuple(bucket.order_ids),
                exec_ids=tuple(bucket.exec_ids),
                detail=(
                    f"{bucket.messages} order messages to {bucket.trades} trades in "
                    f"{limits.otr_bucket_s} s: ratio {_hundredths(ratio_x100)}, the account's usual "
                    f"{_hundredths(usual_x100)} (limit {limits.otr_factor} times)"
                ),
                ts_ns=bucket.start_ns,
            )
        ]


def _hundredths(value: int) -> str:
    return f"{value // 100}.{value % 100:02d}"


def wash_trade(fill: FillEvent) -> list[Alert]:
    if fill.buy_member != fill.sell_member:
        return []
    same = "the same account" if fill.buy_account == fill.sell_account else "another account"
    return [
        Alert(
            alert_id=f"{Rule.WASH_TRADE.value}:{fill.venue}:{fill.exec_id}",
            rule=Rule.WASH_TRADE,
            venue=fill.venue,
            security=fill.security,
            accounts=tuple(dict.fromkeys((fill.buy_account, fill.sell_account))),
            member=fill.buy_member,
            order_ids=(fill.buy_order_id, fill.sell_order_id),
            exec_ids=(fill.exec_id,),
            detail=(
                f"{fill.buy_account} bought {fill.qty} shares from {same} of member "
                f"{fill.buy_member}, {fill.sell_account}"
            ),
            ts_ns=fill.ts_ns,
        )
    ]
