"""Market rules, pure: price moves beyond N standard deviations, and liquidity gaps of a book.

`Touches` keeps each book's recent touches (best bid and ask with their time) so a rule can ask
what the touch was when an order was placed, whatever order the depth and the order reports
arrive in. `PriceMoves` looks at each venue and security's trade-to-trade returns in basis
points; `LiquidityGaps` at the internal books' spread (basis points) and depth at the touch
(the smaller side's shares). Both compare a new value with the recent window's mean and
standard deviation in integers (`model.Window`).

Guarantees: one alert per trade (its id names the trade) and one per gap (its id names the
depth sequence number where the book left its normal range; no further alert until the book
is back in range); a depth snapshot at or below the sequence already seen changes nothing.
Limits: state is per book and bounded by the windows; only the internal venue's books are
watched for gaps (HKEX's book is the exchange's, not ours to watch).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from sampan.analytics.surveillance.model import (
    Alert,
    Rule,
    Thresholds,
    TouchEvent,
    TradeEvent,
    Window,
    bp,
)


class Touches:
    """Recent touches per (venue, security), newest last, bounded."""

    def __init__(self, limits: Thresholds) -> None:
        self.limits = limits
        self.books: dict[tuple[str, int], deque[TouchEvent]] = {}

    def take(self, touch: TouchEvent) -> None:
        history = self.books.setdefault(
            (touch.venue, touch.security), deque(maxlen=self.limits.touch_history_max)
        )
        if history and touch.seq <= history[-1].seq:
            return
        history.append(touch)

    def at(self, venue: str, security: int, ts_ns: int) -> TouchEvent | None:
        """The touch in force at `ts_ns`: the latest at or before it, else the oldest known."""
        history = self.books.get((venue, security))
        if not history:
            return None
        for touch in reversed(history):
            if touch.ts_ns <= ts_ns:
                return touch
        return history[0]


def near_touch(touch: TouchEvent | None, buy: bool, price_e3: int, near_bp: int) -> bool:
    """Whether an order at `price_e3` is within `near_bp` of its side's best price. An unknown
    book or an empty side counts as near: the order would itself be the touch."""
    if touch is None:
        return True
    best = touch.bid_e3 if buy else touch.ask_e3
    if best is None:
        return True
    behind = best - price_e3 if buy else price_e3 - best
    return max(0, behind) * 10_000 <= near_bp * best


@dataclass(slots=True)
class _Series:
    returns: Window
    last_e3: int = 0


class PriceMoves:
    def __init__(self, limits: Thresholds) -> None:
        self.limits = limits
        self.series: dict[tuple[str, int], _Series] = {}

    def take(self, trade: TradeEvent) -> list[Alert]:
        if trade.price_e3 <= 0:
            return []
        key = (trade.venue, trade.security)
        series = self.series.get(key)
        if series is None:
            self.series[key] = _Series(Window(self.limits.move_window), trade.price_e3)
            return []
        previous = series.last_e3
        move = bp(trade.price_e3 - previous, previous)
        series.last_e3 = trade.price_e3
        window = series.returns
        alerts = []
        if (
            len(window.samples) >= self.limits.move_samples_min
            and abs(move) >= self.limits.move_bp_min
            and window.beyond(move, self.limits.move_sigmas) != 0
        ):
            alerts.append(
                Alert(
                    alert_id=f"{Rule.PRICE_MOVE.value}:{trade.venue}:{trade.security}:{trade.trade_id}",
                    rule=Rule.PRICE_MOVE,
                    venue=trade.venue,
                    security=trade.security,
                    accounts=(),
                    member=None,
                    order_ids=(),
                    exec_ids=(trade.trade_id,),
                    detail=(
                        f"{move:+d} bp from {previous} to {trade.price_e3} (HK$0.001): beyond "
                        f"{self.limits.move_sigmas} standard deviations of the last "
                        f"{len(window.samples)} moves"
                    ),
                    ts_ns=trade.ts_ns,
                )
            )
        window.add(move)
        return alerts


@dataclass(slots=True)
class _Book:
    spreads: Window
    depths: Window
    seq: int = -1
    out: bool = False


class LiquidityGaps:
    VENUE = "INTERNAL"

    def __init__(self, limits: Thresholds) -> None:
        self.limits = limits
        self.books: dict[int, _Book] = {}

    def take(self, touch: TouchEvent) -> list[Alert]:
        if touch.venue != self.VENUE:
            return []
        size = self.limits.gap_window
        book = self.books.setdefault(touch.security, _Book(Window(size), Window(size)))
        if touch.seq <= book.seq:
            return []  # delivered again
        book.seq = touch.seq
        reason = self._gap(book, touch)
        if touch.bid_e3 is not None and touch.ask_e3 is not None and touch.bid_e3 > 0:
            book.spreads.add(bp(touch.ask_e3 - touch.bid_e3, touch.bid_e3))
            book.depths.add(min(touch.bid_qty, touch.ask_qty))
        if reason is None:
            book.out = False
            return []
        if book.out:
            return []  # still the same gap
        book.out = True
        return [
            Alert(
                alert_id=f"{Rule.LIQUIDITY_GAP.value}:{touch.venue}:{touch.security}:{touch.seq}",
                rule=Rule.LIQUIDITY_GAP,
                venue=touch.venue,
                security=touch.security,
                accounts=(),
                member=None,
                order_ids=(),
                exec_ids=(),
                detail=f"{reason} (depth snapshot {touch.seq})",
                ts_ns=touch.ts_ns,
            )
        ]

    def _gap(self, book: _Book, touch: TouchEvent) -> str | None:
        """Why the touch is outside its normal range, or None (also while the range is not yet
        known)."""
        limits = self.limits
        if len(book.spreads.samples) < limits.gap_samples_min:
            return None
        if touch.bid_e3 is None or touch.ask_e3 is None or touch.bid_e3 <= 0:
            return "bid side empty" if touch.bid_e3 is None else "ask side empty"
        spread = bp(touch.ask_e3 - touch.bid_e3, touch.bid_e3)
        if (
            spread >= limits.gap_spread_bp_min
            and book.spreads.beyond(spread, limits.gap_sigmas) > 0
        ):
            mean = book.spreads.total // len(book.spreads.samples)
            return f"spread {spread} bp, normally about {mean} bp"
        depth = min(touch.bid_qty, touch.ask_qty)
        if book.depths.beyond(depth, limits.gap_sigmas) < 0:
            mean = book.depths.total // len(book.depths.samples)
            return f"depth at the touch {depth} shares, normally about {mean}"
        return None
