"""The Hong Kong trading day of a timestamp (temporary home until the shared calendar lands)."""

from __future__ import annotations

from datetime import date, timedelta

_NS_PER_DAY = 86_400 * 10**9
_HKT_OFFSET_NS = 8 * 3_600 * 10**9  # Hong Kong keeps UTC+8 all year
_EPOCH = date(1970, 1, 1)


def trading_day(ts_ns: int) -> str:
    """YYYY-MM-DD of `ts_ns` (UTC nanoseconds) in Hong Kong, in integer arithmetic."""
    return (_EPOCH + timedelta(days=(ts_ns + _HKT_OFFSET_NS) // _NS_PER_DAY)).isoformat()
