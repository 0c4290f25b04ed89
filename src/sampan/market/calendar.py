"""The Hong Kong trading day of a timestamp, in integer arithmetic.

Guarantees: `trading_day(ts_ns)` is the Hong Kong calendar day (UTC+8; Hong Kong keeps no
daylight saving time) holding the integer nanosecond `ts_ns`, computed without floats, so the
last nanosecond before Hong Kong midnight belongs to the day before and the first nanosecond
at midnight to the new day. Every process uses this one function: the FIX sessions' day (ids
and sequence numbers restart with it), the drop-copy and reconciliation day, and the ledger's
identity of an HKEX fill (whose exec ids repeat from one day to the next) must all agree.

Limits: a trading day here is a calendar day; weekends and Hong Kong public holidays are not
skipped (the simulator trades every day).
"""

from __future__ import annotations

from datetime import date, timedelta

NS_PER_S = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_S
HKT_OFFSET_NS = 8 * 3_600 * NS_PER_S  # UTC+8 all year

_EPOCH = date(1970, 1, 1)


def trading_day(ts_ns: int) -> date:
    """The Hong Kong calendar day of `ts_ns` (nanoseconds since the Unix epoch, UTC)."""
    return _EPOCH + timedelta(days=(ts_ns + HKT_OFFSET_NS) // NS_PER_DAY)


def trading_day_iso(ts_ns: int) -> str:
    """`trading_day(ts_ns)` as YYYY-MM-DD, as records and reports carry it."""
    return trading_day(ts_ns).isoformat()


def midnight_ns(day: date) -> int:
    """The first nanosecond of the Hong Kong day `day`, in nanoseconds since the Unix epoch."""
    return (day - _EPOCH).days * NS_PER_DAY - HKT_OFFSET_NS
