"""The phases of an HKEX securities trading day, what each allows, and a day's timetable.

Guarantees:
- `Phase` names every period of the day (reference/hkex.md "Sessions"; OMD-C §3.8.1). Each
  phase carries the OMD-C TradingSessionSubID and TradingSesStatus the exchange sends for it
  (`omd_codes`), whether orders accumulate for an auction (`is_auction`), which order input it
  takes and whether cancels and amends are allowed. Illegal moves between phases raise
  (`Phase.to`), as order statuses do.
- `timetable(day, kind)` is the day's schedule in integer nanoseconds since the Unix epoch
  (Hong Kong time is UTC+8 all year): a full day, a half day (morning session then the closing
  auction at noon), or nothing on a holiday. The two random windows (pre-opening random
  matching, closing random close) are listed with their full length; where inside the window
  the auction ends is drawn by `random_end_ns` from a seed, so a replay that knows the seed
  draws the same moment.

Limits: the lunch break is one phase (no order input, cancels allowed); HKEX's OMD-C has no
sub-session of its own for it, so it is sent as Close (CL). Extreme-condition days (typhoon,
black rainstorm) and Exchange Intervention are not modelled.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from enum import Enum

from sampan.market.calendar import NS_PER_S, midnight_ns


class IllegalPhaseChangeError(Exception):
    """A venue was driven through a phase change its day does not allow (a bug)."""


class OrderInput(Enum):
    """Which new orders a phase takes."""

    NONE = 0
    CONTINUOUS = 1  # limit, enhanced limit (and, where the venue allows them, market) orders
    AUCTION = 2  # at-auction and at-auction limit orders, accumulated without matching


class Phase(Enum):
    NOT_YET_OPEN = 0
    POS_ORDER_INPUT = 1
    POS_NO_CANCEL = 2
    POS_RANDOM_MATCHING = 3
    BLOCKING = 4
    CONTINUOUS = 5
    LUNCH_BREAK = 6
    CAS_REFERENCE_PRICE_FIXING = 7
    CAS_ORDER_INPUT = 8
    CAS_NO_CANCEL = 9
    CAS_RANDOM_CLOSE = 10
    CLOSED = 11
    DAY_CLOSED = 12

    @property
    def omd_codes(self) -> tuple[int, int]:
        """(TradingSessionSubID, TradingSesStatus) of OMD-C Trading Session Status (20)."""
        return _RULES[self].omd_codes

    @property
    def is_auction(self) -> bool:
        return _RULES[self].order_input is OrderInput.AUCTION

    @property
    def order_input(self) -> OrderInput:
        return _RULES[self].order_input

    @property
    def cancel_allowed(self) -> bool:
        return _RULES[self].cancel_allowed

    @property
    def amend_allowed(self) -> bool:
        return _RULES[self].amend_allowed

    @property
    def is_pre_opening(self) -> bool:
        return self in _PRE_OPENING

    def to(self, new: Phase) -> Phase:
        """Return `new` if a day may move from this phase to it; raise otherwise."""
        if new not in _NEXT[self]:
            raise IllegalPhaseChangeError(f"{self.name} -> {new.name}")
        return new


@dataclass(frozen=True, slots=True)
class _PhaseRules:
    omd_codes: tuple[int, int]
    order_input: OrderInput
    cancel_allowed: bool
    amend_allowed: bool


_NONE, _CONT, _AUCT = OrderInput.NONE, OrderInput.CONTINUOUS, OrderInput.AUCTION
_RULES: dict[Phase, _PhaseRules] = {
    Phase.NOT_YET_OPEN: _PhaseRules((100, 0), _NONE, False, False),
    Phase.POS_ORDER_INPUT: _PhaseRules((1, 20), _AUCT, True, True),
    Phase.POS_NO_CANCEL: _PhaseRules((101, 20), _AUCT, False, False),
    Phase.POS_RANDOM_MATCHING: _PhaseRules((108, 20), _AUCT, False, False),
    Phase.BLOCKING: _PhaseRules((7, 20), _NONE, False, False),
    Phase.CONTINUOUS: _PhaseRules((3, 30), _CONT, True, True),
    Phase.LUNCH_BREAK: _PhaseRules((103, 50), _NONE, True, False),
    Phase.CAS_REFERENCE_PRICE_FIXING: _PhaseRules((105, 40), _NONE, False, False),
    Phase.CAS_ORDER_INPUT: _PhaseRules((5, 40), _AUCT, True, True),
    Phase.CAS_NO_CANCEL: _PhaseRules((106, 40), _AUCT, False, False),
    Phase.CAS_RANDOM_CLOSE: _PhaseRules((107, 40), _AUCT, False, False),
    Phase.CLOSED: _PhaseRules((103, 50), _NONE, False, False),
    Phase.DAY_CLOSED: _PhaseRules((0, 100), _NONE, False, False),
}
# The auctions' matching moments (OMD-C SubID 2 [POS] and 4 [CAS] Order Matching, status 20
# and 40) are instants, not phases: the uncross happens on the move out of the random period.
POS_ORDER_MATCHING_CODES = (2, 20)
CAS_ORDER_MATCHING_CODES = (4, 40)

_PRE_OPENING = frozenset(
    {Phase.POS_ORDER_INPUT, Phase.POS_NO_CANCEL, Phase.POS_RANDOM_MATCHING, Phase.BLOCKING}
)
# The day runs in one direction; CLOSED and DAY_CLOSED lead to the next day's NOT_YET_OPEN.
# A venue configured without a clock stays in CONTINUOUS all day (the default of every venue).
_NEXT: dict[Phase, frozenset[Phase]] = {
    # NOT_YET_OPEN -> NOT_YET_OPEN is the roll-over from a holiday to the next day.
    Phase.NOT_YET_OPEN: frozenset(
        {Phase.NOT_YET_OPEN, Phase.POS_ORDER_INPUT, Phase.CONTINUOUS, Phase.DAY_CLOSED}
    ),
    Phase.POS_ORDER_INPUT: frozenset({Phase.POS_NO_CANCEL}),
    Phase.POS_NO_CANCEL: frozenset({Phase.POS_RANDOM_MATCHING}),
    Phase.POS_RANDOM_MATCHING: frozenset({Phase.BLOCKING}),
    Phase.BLOCKING: frozenset({Phase.CONTINUOUS}),
    # CONTINUOUS -> NOT_YET_OPEN: a venue that traded without a schedule (continuously, the
    # default) joins one at the start of a day; the day it leaves is closed first.
    Phase.CONTINUOUS: frozenset(
        {Phase.LUNCH_BREAK, Phase.CAS_REFERENCE_PRICE_FIXING, Phase.CLOSED, Phase.NOT_YET_OPEN}
    ),
    Phase.LUNCH_BREAK: frozenset({Phase.CONTINUOUS}),
    Phase.CAS_REFERENCE_PRICE_FIXING: frozenset({Phase.CAS_ORDER_INPUT}),
    Phase.CAS_ORDER_INPUT: frozenset({Phase.CAS_NO_CANCEL}),
    Phase.CAS_NO_CANCEL: frozenset({Phase.CAS_RANDOM_CLOSE}),
    Phase.CAS_RANDOM_CLOSE: frozenset({Phase.CLOSED}),
    Phase.CLOSED: frozenset({Phase.DAY_CLOSED, Phase.NOT_YET_OPEN}),
    Phase.DAY_CLOSED: frozenset({Phase.NOT_YET_OPEN}),
}

# Phases whose end is drawn at random inside the window (the auction then uncrosses).
RANDOM_END_PHASES = frozenset({Phase.POS_RANDOM_MATCHING, Phase.CAS_RANDOM_CLOSE})


class DayKind(Enum):
    FULL = 1
    HALF = 2  # morning session, then the closing auction at noon
    HOLIDAY = 3  # includes weekends


@dataclass(frozen=True, slots=True)
class PhaseWindow:
    """`phase` runs from `start_ns` (inclusive) to `end_ns` (exclusive), Unix-epoch ns."""

    phase: Phase
    start_ns: int
    end_ns: int


def _hkt(h: int, m: int) -> int:
    return (h * 3600 + m * 60) * NS_PER_S


# (phase, start) in Hong Kong time; each phase ends where the next one starts.
_FULL_DAY: tuple[tuple[Phase, int], ...] = (
    (Phase.POS_ORDER_INPUT, _hkt(9, 0)),
    (Phase.POS_NO_CANCEL, _hkt(9, 15)),
    (Phase.POS_RANDOM_MATCHING, _hkt(9, 20)),
    (Phase.BLOCKING, _hkt(9, 22)),
    (Phase.CONTINUOUS, _hkt(9, 30)),
    (Phase.LUNCH_BREAK, _hkt(12, 0)),
    (Phase.CONTINUOUS, _hkt(13, 0)),
    (Phase.CAS_REFERENCE_PRICE_FIXING, _hkt(16, 0)),
    (Phase.CAS_ORDER_INPUT, _hkt(16, 1)),
    (Phase.CAS_NO_CANCEL, _hkt(16, 6)),
    (Phase.CAS_RANDOM_CLOSE, _hkt(16, 8)),
    (Phase.CLOSED, _hkt(16, 10)),
)
_HALF_DAY: tuple[tuple[Phase, int], ...] = (
    *_FULL_DAY[:5],
    (Phase.CAS_REFERENCE_PRICE_FIXING, _hkt(12, 0)),
    (Phase.CAS_ORDER_INPUT, _hkt(12, 1)),
    (Phase.CAS_NO_CANCEL, _hkt(12, 6)),
    (Phase.CAS_RANDOM_CLOSE, _hkt(12, 8)),
    (Phase.CLOSED, _hkt(12, 10)),
)
_DAY_END = _hkt(24, 0)


def timetable(day: date, kind: DayKind) -> tuple[PhaseWindow, ...]:
    """The phases of `day` in order, from midnight (NOT_YET_OPEN) to the next midnight
    (CLOSED until then). A holiday is one NOT_YET_OPEN window: nothing trades."""
    base = midnight_ns(day)
    if kind is DayKind.HOLIDAY:
        return (PhaseWindow(Phase.NOT_YET_OPEN, base, base + _DAY_END),)
    rows = _FULL_DAY if kind is DayKind.FULL else _HALF_DAY
    out = [PhaseWindow(Phase.NOT_YET_OPEN, base, base + rows[0][1])]
    for i, (phase, start) in enumerate(rows):
        end = rows[i + 1][1] if i + 1 < len(rows) else _DAY_END
        out.append(PhaseWindow(phase, base + start, base + end))
    return tuple(out)


def phase_at(windows: tuple[PhaseWindow, ...], ts_ns: int) -> Phase:
    """The scheduled phase at `ts_ns` (which must fall inside the day of `windows`)."""
    for window in windows:
        if window.start_ns <= ts_ns < window.end_ns:
            return window.phase
    raise ValueError(f"{ts_ns} is outside the day of this timetable")


def random_end_ns(seed: int, window: PhaseWindow) -> int:
    """The moment inside `window` (a random-end phase) at which it ends, whole seconds after
    its start, drawn from `seed` and the window alone: the same seed draws the same moment, so
    the draw itself can be recorded (seed and result) and checked on replay."""
    assert window.phase in RANDOM_END_PHASES, f"{window.phase.name} has no random end"
    span_s = (window.end_ns - window.start_ns) // NS_PER_S
    assert span_s > 0, "a random window lasts at least a second"
    digest = hashlib.sha256(f"{seed}:{window.phase.name}:{window.start_ns}".encode()).digest()
    offset_s = int.from_bytes(digest[:8], "big") % span_s
    return window.start_ns + offset_s * NS_PER_S
