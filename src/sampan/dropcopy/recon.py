"""Reconciliation of HKEX executions: drop copy against fills, by ExecID. Pure.

Each HKEX trade execution is seen twice: on the drop copy (`hkex.dropcopy`, ExecType F) and as
a fill the router books (`fills`, venue HKEX, exec_id = the same ExecID). The `Reconciler`
keeps both sides per ExecID and, when asked to `evaluate` at a time, returns the break
records whose state changed since it last said anything about that ExecID.

Rules, in order of precedence for one ExecID:
- DUPLICATE: a side holds the ExecID more than once (a double-booked fill). Permanent.
- QTY_MISMATCH, then PRICE_MISMATCH: both sides present and they differ. A fill booked on the
  wrong security or the wrong side is a QTY_MISMATCH too, checked first, its `detail` starting
  `security differs:` or `side differs:` (the ReconBreak schema has no kind of its own for it;
  see `_desired`). Sides are the member's: BUY, or SELL for SELL and SELL_SHORT (a fill does
  not say whether a sale was short).
- MISSING_FILL / MISSING_DROPCOPY: only one side present, `grace_ns` after it was first seen
  (the other side may simply be in flight; the grace period is measured on the caller's clock).
- none: both present and equal (matched); one side present within the grace period (pending).

Guarantees: the result is a function of the records added (in any order) and `now_ns`;
each change is reported once: a new or different break as OPEN (a kind that is replaced is
first reported HEALED), a break that no longer applies as HEALED. `load_published` teaches it
what an earlier run already published, so a restarted reconciler republishes nothing
unchanged. Money and quantities are integers.

Limits: memory holds one entry per execution of the day (the shell scopes input to a trading
day); trade cancels (ExecType H) are not reconciled.
"""

from __future__ import annotations

import enum
import heapq
from collections import Counter
from dataclasses import dataclass, field

from sampan.market.money import format_price_e3


class BreakKind(enum.StrEnum):
    MISSING_FILL = "MISSING_FILL"
    MISSING_DROPCOPY = "MISSING_DROPCOPY"
    QTY_MISMATCH = "QTY_MISMATCH"
    PRICE_MISMATCH = "PRICE_MISMATCH"
    DUPLICATE = "DUPLICATE"


class BreakStatus(enum.StrEnum):
    OPEN = "OPEN"
    HEALED = "HEALED"


@dataclass(frozen=True, slots=True)
class Execution:
    """One side's view of an execution."""

    exec_id: str
    qty: int
    price_e3: int
    seen_ns: int  # when it was first seen, on the clock `evaluate` is given
    side: str  # the member's side: BUY or SELL
    security: int


@dataclass(frozen=True, slots=True)
class Break:
    """The state of one ExecID's break, as published to `recon.breaks` (keyed by exec id)."""

    exec_id: str
    kind: BreakKind
    status: BreakStatus
    detail: str
    ts_ns: int


@dataclass(frozen=True, slots=True)
class Summary:
    matched: int
    pending: int
    open_by_kind: dict[BreakKind, int]
    healed: int


@dataclass(slots=True)
class _Entry:
    dropcopy: list[Execution] = field(default_factory=list)
    fills: list[Execution] = field(default_factory=list)
    published: Break | None = None


def _describe(side: str, executions: list[Execution]) -> str:
    if not executions:
        return f"{side} none"
    return f"{side} " + ", ".join(
        f"{e.side} {e.qty}@{format_price_e3(e.price_e3)} in {e.security}" for e in executions
    )


class Reconciler:
    def __init__(self, grace_ns: int) -> None:
        assert grace_ns >= 0
        self.grace_ns = grace_ns
        self._entries: dict[str, _Entry] = {}
        self._dirty: set[str] = set()
        self._deadlines: list[tuple[int, str]] = []  # (grace ends, exec id), a min-heap

    def load_published(self, brk: Break) -> None:
        """What an earlier run last published for `brk.exec_id`."""
        self._entries.setdefault(brk.exec_id, _Entry()).published = brk
        self._dirty.add(brk.exec_id)

    def add_dropcopy(self, execution: Execution) -> None:
        self._add(execution, dropcopy=True)

    def add_fill(self, execution: Execution) -> None:
        self._add(execution, dropcopy=False)

    def _add(self, execution: Execution, *, dropcopy: bool) -> None:
        entry = self._entries.setdefault(execution.exec_id, _Entry())
        (entry.dropcopy if dropcopy else entry.fills).append(execution)
        self._dirty.add(execution.exec_id)
        heapq.heappush(self._deadlines, (execution.seen_ns + self.grace_ns, execution.exec_id))

    def evaluate(self, now_ns: int) -> list[Break]:
        """Break records to publish now, in a deterministic order."""
        while self._deadlines and self._deadlines[0][0] <= now_ns:
            self._dirty.add(heapq.heappop(self._deadlines)[1])
        changes: list[Break] = []
        for exec_id in sorted(self._dirty):
            changes += self._evaluate_one(exec_id, self._entries[exec_id], now_ns)
        self._dirty.clear()
        return changes

    def _evaluate_one(self, exec_id: str, entry: _Entry, now_ns: int) -> list[Break]:
        desired = self._desired(entry, now_ns)
        published = entry.published
        out: list[Break] = []
        was_open = published is not None and published.status is BreakStatus.OPEN
        if desired is None:
            if was_open and _settled(entry):
                assert published is not None
                out.append(
                    Break(exec_id, published.kind, BreakStatus.HEALED, _detail(entry), now_ns)
                )
        else:
            kind, detail = desired
            if was_open and published is not None and published.kind == kind:
                return []
            if was_open and published is not None:
                out.append(Break(exec_id, published.kind, BreakStatus.HEALED, detail, now_ns))
            out.append(Break(exec_id, kind, BreakStatus.OPEN, detail, now_ns))
        if out:
            entry.published = out[-1]
        return out

    def _desired(self, entry: _Entry, now_ns: int) -> tuple[BreakKind, str] | None:
        dc, fills = entry.dropcopy, entry.fills
        detail = _detail(entry)
        if len(dc) > 1 or len(fills) > 1:
            return BreakKind.DUPLICATE, detail
        if dc and fills:
            # A wrong security or side means the member's signed position per security differs
            # from the exchange's, which is what QTY_MISMATCH flags; the detail says which.
            # A kind of its own for each would need a schema change (a new BreakKind symbol).
            if dc[0].security != fills[0].security:
                return BreakKind.QTY_MISMATCH, f"security differs: {detail}"
            if dc[0].side != fills[0].side:
                return BreakKind.QTY_MISMATCH, f"side differs: {detail}"
            if dc[0].qty != fills[0].qty:
                return BreakKind.QTY_MISMATCH, detail
            if dc[0].price_e3 != fills[0].price_e3:
                return BreakKind.PRICE_MISMATCH, detail
            return None
        only = dc or fills
        if not only or now_ns < only[0].seen_ns + self.grace_ns:
            return None  # nothing yet, or the other side may still be in flight
        return (BreakKind.MISSING_FILL if dc else BreakKind.MISSING_DROPCOPY), detail

    def summary(self, now_ns: int) -> Summary:
        matched = pending = healed = 0
        open_by_kind: Counter[BreakKind] = Counter()
        for entry in self._entries.values():
            desired = self._desired(entry, now_ns)
            if desired is not None:
                open_by_kind[desired[0]] += 1
            elif _settled(entry):
                matched += 1
                healed += entry.published is not None
            elif entry.dropcopy or entry.fills:
                pending += 1
        return Summary(matched, pending, dict(open_by_kind), healed)


def _settled(entry: _Entry) -> bool:
    """Both sides present exactly once (and so, with no desired break, equal)."""
    return len(entry.dropcopy) == 1 and len(entry.fills) == 1


def _detail(entry: _Entry) -> str:
    return f"{_describe('dropcopy', entry.dropcopy)} | {_describe('fill', entry.fills)}"
