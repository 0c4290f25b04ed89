"""Top and bottom movers of a venue's enabled securities. Pure: no Kafka, no clock.

A mover is a security that traded this session with a known previous close; it is ranked by
its change in basis points (then by security code, so ties always rank the same way). The
top list holds the `MOVERS_MAX` largest rises, the bottom list the largest falls; a security
with no change is in neither. Deterministic: the same statistics always give the same record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sampan.analytics.stats import SessionStats

MOVERS_MAX = 10


@dataclass(frozen=True, slots=True)
class Mover:
    security: int
    last_e3: int
    prev_close_e3: int
    change_bp: int

    def to_json(self) -> dict[str, int]:
        return {
            "security": self.security,
            "last_e3": self.last_e3,
            "prev_close_e3": self.prev_close_e3,
            "change_bp": self.change_bp,
        }


def movers(
    venue: str, stats: Iterable[SessionStats], enabled: Mapping[int, bool], day: str
) -> dict[str, Any]:
    """The movers record of `venue` for trading day `day`."""
    ranked: list[Mover] = []
    for s in stats:
        change = s.change_bp
        if s.venue != venue or s.day != day or change is None:
            continue
        if not enabled.get(s.security, False):
            continue
        ranked.append(Mover(s.security, s.last_e3, s.prev_close_e3, change))
    rises = sorted((m for m in ranked if m.change_bp > 0), key=lambda m: (-m.change_bp, m.security))
    falls = sorted((m for m in ranked if m.change_bp < 0), key=lambda m: (m.change_bp, m.security))
    return {
        "venue": venue,
        "day": day,
        "top": [m.to_json() for m in rises[:MOVERS_MAX]],
        "bottom": [m.to_json() for m in falls[:MOVERS_MAX]],
    }
