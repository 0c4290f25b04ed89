"""Mapping between Avro records and the ledger's domain objects; plain functions, no I/O.

`fill_digest` fingerprints every field of a Fill record (not its bytes, so a fill re-encoded
by a newer writer schema with the same values has the same digest); the ledger stores it to
tell a replayed fill (same digest: a no-op) from a different fill under an existing id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from sampan.ledger_sink.rules import Fill

DIGEST_BYTES = 16


def fill_from_record(record: Mapping[str, Any]) -> Fill:
    return Fill(
        exec_id=record["exec_id"],
        venue=record["venue"],
        security=record["security"],
        price_e3=record["price_e3"],
        qty=record["qty"],
        buy_account=record["buy_account"],
        buy_member=record["buy_member"],
        sell_account=record["sell_account"],
        sell_member=record["sell_member"],
        ts_ns=record["ts_ns"],
    )


def fill_digest(record: Mapping[str, Any]) -> bytes:
    """The decoder always yields the current reader schema's fields in schema order, and every
    value is a str, int or None, whose repr is stable: repr of the values is canonical."""
    canonical = repr(tuple(record.values())).encode()
    return hashlib.blake2b(canonical, digest_size=DIGEST_BYTES).digest()
