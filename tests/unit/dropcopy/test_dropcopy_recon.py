"""Reconciliation's pure core: each break kind, the grace period, healing, restarts."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sampan.dropcopy.recon import Break, BreakKind, BreakStatus, Execution, Reconciler
from sampan.dropcopy.recon_runner import DROPCOPY, FILLS, _Input, feed

S = 1_000_000_000
GRACE = 5 * S


def ex(
    exec_id: str,
    qty: int = 400,
    price_e3: int = 98_550,
    at: int = 0,
    side: str = "BUY",
    security: int = 700,
) -> Execution:
    return Execution(exec_id, qty, price_e3, at, side, security)


def states(breaks: list[Break]) -> list[tuple[str, BreakKind, BreakStatus]]:
    return [(b.exec_id, b.kind, b.status) for b in breaks]


def test_equal_sides_match_without_a_break() -> None:
    r = Reconciler(GRACE)
    r.add_dropcopy(ex("1"))
    r.add_fill(ex("1", at=S))
    assert r.evaluate(100 * S) == []
    summary = r.summary(100 * S)
    assert (summary.matched, summary.pending, summary.open_by_kind, summary.healed) == (1, 0, {}, 0)


def test_one_side_is_pending_within_grace_then_missing_then_healed() -> None:
    r = Reconciler(GRACE)
    r.add_dropcopy(ex("1", at=10 * S))
    r.add_fill(ex("2", at=10 * S))
    assert r.evaluate(10 * S + GRACE - 1) == []
    assert r.summary(10 * S + GRACE - 1).pending == 2
    opened = r.evaluate(10 * S + GRACE)
    assert states(opened) == [
        ("1", BreakKind.MISSING_FILL, BreakStatus.OPEN),
        ("2", BreakKind.MISSING_DROPCOPY, BreakStatus.OPEN),
    ]
    assert "fill none" in opened[0].detail and "98.550" in opened[0].detail
    assert r.evaluate(20 * S) == []  # each change is said once
    r.add_fill(ex("1", at=30 * S))
    assert states(r.evaluate(30 * S)) == [("1", BreakKind.MISSING_FILL, BreakStatus.HEALED)]
    summary = r.summary(30 * S)
    assert summary.matched == 1 and summary.healed == 1
    assert summary.open_by_kind == {BreakKind.MISSING_DROPCOPY: 1}


def test_quantity_and_price_mismatches_open_at_once() -> None:
    r = Reconciler(GRACE)
    r.add_dropcopy(ex("q", qty=400))
    r.add_fill(ex("q", qty=300))
    r.add_dropcopy(ex("p", price_e3=98_550))
    r.add_fill(ex("p", price_e3=98_600))
    r.add_dropcopy(ex("both", qty=400, price_e3=1))
    r.add_fill(ex("both", qty=300, price_e3=2))
    got = r.evaluate(0)
    assert states(got) == [
        ("both", BreakKind.QTY_MISMATCH, BreakStatus.OPEN),
        ("p", BreakKind.PRICE_MISMATCH, BreakStatus.OPEN),
        ("q", BreakKind.QTY_MISMATCH, BreakStatus.OPEN),
    ]
    assert got[2].detail == "dropcopy BUY 400@98.550 in 700 | fill BUY 300@98.550 in 700"


def test_a_fill_on_the_wrong_side_or_security_is_a_break() -> None:
    """Reported as QTY_MISMATCH (the schema's closest kind), the detail naming what differs."""
    r = Reconciler(GRACE)
    r.add_dropcopy(ex("side", side="BUY"))
    r.add_fill(ex("side", side="SELL"))
    r.add_dropcopy(ex("sec", security=700))
    r.add_fill(ex("sec", security=5, qty=1))
    got = r.evaluate(0)
    assert states(got) == [
        ("sec", BreakKind.QTY_MISMATCH, BreakStatus.OPEN),
        ("side", BreakKind.QTY_MISMATCH, BreakStatus.OPEN),
    ]
    assert got[0].detail == (
        "security differs: dropcopy BUY 400@98.550 in 700 | fill BUY 1@98.550 in 5"
    )
    assert got[1].detail.startswith("side differs: dropcopy BUY 400@")
    assert r.summary(0).matched == 0


def test_duplicate_on_either_side_replaces_an_earlier_break_and_stays() -> None:
    r = Reconciler(GRACE)
    r.add_dropcopy(ex("1"))
    assert states(r.evaluate(GRACE)) == [("1", BreakKind.MISSING_FILL, BreakStatus.OPEN)]
    r.add_fill(ex("1", at=GRACE))
    r.add_fill(ex("1", at=GRACE))
    assert states(r.evaluate(GRACE)) == [
        ("1", BreakKind.MISSING_FILL, BreakStatus.HEALED),
        ("1", BreakKind.DUPLICATE, BreakStatus.OPEN),
    ]
    r.add_dropcopy(ex("2"))
    r.add_dropcopy(ex("2"))
    assert states(r.evaluate(GRACE)) == [("2", BreakKind.DUPLICATE, BreakStatus.OPEN)]
    assert r.summary(GRACE).open_by_kind == {BreakKind.DUPLICATE: 2}


def test_a_restarted_reconciler_republishes_nothing_unchanged() -> None:
    first = Reconciler(GRACE)
    first.add_dropcopy(ex("1"))
    first.add_dropcopy(ex("2"))
    first.add_fill(ex("2"))
    first.add_dropcopy(ex("3"))
    published = first.evaluate(GRACE)
    first.add_fill(ex("3", at=GRACE))
    published += first.evaluate(GRACE)
    again = Reconciler(GRACE)
    for brk in published:
        again.load_published(brk)
    for exec_id in ("1", "2", "3"):
        again.add_dropcopy(ex(exec_id))
    again.add_fill(ex("2"))
    again.add_fill(ex("3", at=GRACE))
    assert again.evaluate(10 * GRACE) == []


@settings(deadline=None)  # speed is for benchmarks; a loaded machine stalls a case
@given(
    st.lists(
        st.tuples(st.sampled_from("abcde"), st.booleans(), st.integers(1, 3)),
        max_size=20,
    ),
    st.randoms(use_true_random=False),
)
def test_order_of_arrival_does_not_change_the_outcome(
    records: list[tuple[str, bool, int]], rnd: object
) -> None:
    def run(items: list[tuple[str, bool, int]]) -> dict[str, tuple[BreakKind, BreakStatus]]:
        r = Reconciler(GRACE)
        for exec_id, is_dc, qty in items:
            (r.add_dropcopy if is_dc else r.add_fill)(ex(exec_id, qty=qty * 100))
        final: dict[str, tuple[BreakKind, BreakStatus]] = {}
        for brk in r.evaluate(GRACE):
            final[brk.exec_id] = (brk.kind, brk.status)
        return final

    shuffled = list(records)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert run(records) == run(shuffled)


def test_feed_takes_the_member_side_of_each_record() -> None:
    """A fill's member bought unless its buyer is the exchange; a short sale is a sale."""
    r = Reconciler(GRACE)
    base = {"exec_id": "1", "security": 5, "exec_type": "F", "last_qty": 1, "last_px_e3": 1}
    feed(r, _Input(DROPCOPY, base | {"side": "SELL_SHORT"}, 0))
    fill = {"exec_id": "1", "venue": "HKEX", "security": 5, "qty": 1, "price_e3": 1}
    feed(r, _Input(FILLS, fill | {"buy_member": "HKEX"}, 0))
    assert r.evaluate(0) == [] and r.summary(0).matched == 1
    feed(r, _Input(DROPCOPY, base | {"exec_id": "2", "side": "BUY"}, 0))
    feed(r, _Input(FILLS, fill | {"exec_id": "2", "buy_member": "HKEX"}, 0))
    assert states(r.evaluate(0)) == [("2", BreakKind.QTY_MISMATCH, BreakStatus.OPEN)]
