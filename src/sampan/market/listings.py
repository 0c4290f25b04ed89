"""The venue's listings: the Hong Kong equities both venues trade, as reference data.

Instruments are the seed of `reference.instruments` and of the matcher's books; the matcher
reads them from here (or from the JSON file named by SAMPAN_INSTRUMENTS) when it starts, and
keeps them in its snapshots, so a replay uses the same definitions as the live run. Prices are
HK$0.001 integers; board lots are shares.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sampan.errors import ConfigError
from sampan.market.rules import SPREAD_TABLE_PART_A, SPREAD_TABLE_PART_A_BEFORE_2025_08

# The Instrument record's spread table code → the matcher's table (Part A from 4 Aug 2025; before).
SPREAD_TABLE_CODES = {"01": SPREAD_TABLE_PART_A, "01L": SPREAD_TABLE_PART_A_BEFORE_2025_08}


@dataclass(frozen=True, slots=True)
class Listing:
    security: int
    name: str
    board_lot: int
    prev_close_e3: int
    spread_table: str = "01"
    enabled: bool = True


DEFAULT_LISTINGS: tuple[Listing, ...] = (
    Listing(1, "CKH HOLDINGS", 500, 52_150),
    Listing(5, "HSBC HOLDINGS", 400, 98_550),
    Listing(11, "HANG SENG BANK", 100, 108_900),
    Listing(388, "HKEX", 100, 376_400),
    Listing(700, "TENCENT", 100, 512_000),
    Listing(939, "CCB", 1000, 7_540),
    Listing(941, "CHINA MOBILE", 500, 84_250),
    Listing(1299, "AIA", 200, 71_350),
    Listing(1810, "XIAOMI-W", 200, 47_380),
    Listing(2318, "PING AN", 500, 48_300),
    Listing(2800, "TRACKER FUND", 500, 25_720),
    Listing(3690, "MEITUAN-W", 100, 98_500),
    Listing(9988, "BABA-W", 100, 152_600),
    Listing(9999, "NETEASE", 100, 176_300),
)


def listings() -> tuple[Listing, ...]:
    """The venue's instruments: SAMPAN_INSTRUMENTS (a JSON list) if set, else the defaults."""
    path = os.environ.get("SAMPAN_INSTRUMENTS")
    if not path:
        return DEFAULT_LISTINGS
    try:
        rows = json.loads(Path(path).read_text())
        return tuple(Listing(**row) for row in rows)
    except (OSError, ValueError, TypeError) as error:
        raise ConfigError(f"SAMPAN_INSTRUMENTS={path}: {error}") from None


def instrument_record(listing: Listing, ts_ns: int) -> dict[str, Any]:
    return {
        "security": listing.security,
        "name": listing.name,
        "currency": "HKD",
        "board_lot": listing.board_lot,
        "spread_table": listing.spread_table,
        "prev_close_e3": listing.prev_close_e3,
        "enabled": listing.enabled,
        "ts_ns": ts_ns,
    }
