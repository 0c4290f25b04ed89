"""Volatility control (HKEX's VCM) for one book, pure.

Guarantees:
- The reference price of a moment is the last trade price five minutes earlier (the latest
  trade at or before `ts_ns - window_ns`); without one there is no control.
- `band(ts_ns)` is the price band trades must stay inside at `ts_ns`: during a cooling-off
  period the band fixed when it started; otherwise reference -/+ `band_bps`, rounded inward
  onto ticks like the auction bands. The engine never lets an order trade outside the band:
  it clamps the order's reach to it.
- `trigger(...)` starts the cooling-off when an order stopped at the band would have traded
  beyond it (the trade that would breach the band does not happen). At most one cooling-off a
  trading session: the flag is cleared by the engine at each session start.
- Only price changes are kept (a repeat of the last price adds nothing), and only as far back
  as the reference needs; at most `HISTORY_MAX` of them (beyond that the oldest go first, so
  in a book that changes price faster than that the reference is younger than five minutes).

Limits: one band for every security (HKEX sets 10%, 15% or 20% by index membership), and no
exclusion of a session's first fifteen and last twenty minutes.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from sampan.market.rules import SpreadTable
from sampan.matching.auction import band as price_band

HISTORY_MAX = 100_000


class Volatility:
    __slots__ = (
        "band_bps",
        "cooling_ns",
        "high_e3",
        "history",
        "low_e3",
        "reference_e3",
        "session_used",
        "until_ns",
        "window_ns",
    )  # fmt: skip

    def __init__(self, band_bps: int, window_ns: int, cooling_ns: int) -> None:
        self.band_bps = band_bps
        self.window_ns = window_ns
        self.cooling_ns = cooling_ns
        self.history: deque[tuple[int, int]] = deque()  # (ts_ns, price_e3) at price changes
        self.until_ns = 0  # the cooling-off ends here (0: none)
        self.reference_e3 = self.low_e3 = self.high_e3 = 0
        self.session_used = False

    def traded(self, ts_ns: int, price_e3: int) -> None:
        history = self.history
        if history and history[-1][1] == price_e3:
            return
        history.append((ts_ns, price_e3))
        if len(history) > HISTORY_MAX:
            history.popleft()

    def reference_at(self, ts_ns: int) -> int:
        """The last trade price at or before `ts_ns - window_ns`, 0 if none; prunes what no
        later moment needs (times only move forward)."""
        cutoff = ts_ns - self.window_ns
        history = self.history
        while len(history) >= 2 and history[1][0] <= cutoff:
            history.popleft()
        if history and history[0][0] <= cutoff:
            return history[0][1]
        return 0

    def band(self, table: SpreadTable, ts_ns: int) -> tuple[int, int] | None:
        """(low, high) trades must stay inside at `ts_ns`, or None when nothing limits them."""
        if self.until_ns and ts_ns < self.until_ns:
            return self.low_e3, self.high_e3
        self.until_ns = 0
        if self.session_used:
            return None
        reference = self.reference_at(ts_ns)
        if not reference:
            return None
        return price_band(table, reference, self.band_bps)

    def trigger(self, table: SpreadTable, ts_ns: int) -> tuple[int, int, int, int, int]:
        """Start the cooling-off at `ts_ns`: (start, end, reference, low, high)."""
        reference = self.reference_at(ts_ns)
        assert reference, "a trigger needs a reference price"
        self.low_e3, self.high_e3 = price_band(table, reference, self.band_bps)
        self.reference_e3 = reference
        self.until_ns = ts_ns + self.cooling_ns
        self.session_used = True
        return ts_ns, self.until_ns, reference, self.low_e3, self.high_e3

    @property
    def cooling(self) -> bool:
        return self.until_ns != 0

    def to_list(self) -> list[Any]:
        return [
            [list(row) for row in self.history],
            self.until_ns, self.reference_e3, self.low_e3, self.high_e3, self.session_used,
        ]  # fmt: skip

    def load(self, data: list[Any] | None) -> None:
        if not data:
            return
        rows, self.until_ns, self.reference_e3, self.low_e3, self.high_e3, used = data
        self.history = deque((ts, px) for ts, px in rows)
        self.session_used = bool(used)
