"""Intake: a consumed record becomes an `Item`, decoded and posted in memory. Pure but for
the schema registry; never raises for bad input (the error travels in the item instead).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from sampan.ledger_sink.records import fill_digest, fill_from_record
from sampan.ledger_sink.rules import ChargeRule, InvalidFill, post_fill
from sampan.ledger_sink.store import Item
from sampan.schemas import SchemaError, records

COMMIT_SAMPLES_MAX = 100_000


@dataclass(slots=True)
class SinkStats:
    posted: int = 0
    replayed: int = 0
    rejected: int = 0
    transfers: int = 0
    batches: int = 0
    # The newest commit durations only: a sink runs for months, its memory must not grow.
    commit_ms: deque[float] = field(default_factory=lambda: deque(maxlen=COMMIT_SAMPLES_MAX))
    first_record_at: float = 0.0  # time.monotonic() of the first record received
    last_commit_at: float = 0.0


def make_item(
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    schedule: tuple[ChargeRule, ...],
) -> Item:
    """Decode one record and post it in memory; a failure becomes an item carrying the error."""
    if value is None:
        return Item(partition, offset, key, value, None, b"", (), "record has no value")
    try:
        record = records.read_fill(value)
        fill = fill_from_record(record)
        transfers = post_fill(fill, schedule)
    except (SchemaError, InvalidFill, KeyError, TypeError) as error:
        return Item(
            partition, offset, key, value, None, b"", (), f"{type(error).__name__}: {error}"
        )
    return Item(partition, offset, key, value, fill, fill_digest(record), transfers, "")
