"""Live balances: the snapshot arithmetic and its Avro record."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sampan.ledger_sink.snapshot import AccountState, snapshot, to_record
from sampan.schemas import registry


def test_snapshot_by_hand() -> None:
    state = AccountState(
        "A",
        "M1",
        cash_cents=-1_000_000,
        holds_cents=50_000,
        credit_line_cents=5_000_000,
        cut_loss_cents=100_000,
        holdings=((700, 100), (5, -400)),
    )
    snap = snapshot(state, {700: 380_005, 5: 62_500}, ts_ns=7)
    assert [p.value_cents for p in snap.positions] == [-2_500_000, 3_800_050]
    assert snap.holdings_value_cents == 1_300_050
    assert snap.credit_line_used_cents == 1_000_000
    assert snap.available_cash_cents == -1_000_000 - 50_000 + 5_000_000
    assert snap.portfolio_value_cents == 1_300_050
    assert snap.equity_cents == 300_050
    assert not snap.cut_loss_breached
    assert registry().decode(
        "AccountSnapshot", registry().encode("AccountSnapshot", to_record(snap))
    ) == to_record(snap)


@given(
    st.integers(-(10**9), 10**9),
    st.integers(0, 10**7),
    st.integers(0, 10**9),
    st.lists(
        st.tuples(st.integers(1, 99_999), st.integers(-(10**5), 10**5)),
        max_size=5,
        unique_by=lambda t: t[0],
    ),
)
def test_snapshot_identities(cash: int, holds: int, line: int, held: list[tuple[int, int]]) -> None:
    state = AccountState("A", "M", cash, holds, line, 0, tuple(held))
    snap = snapshot(state, {s: 1_000 for s, _ in held}, 0)
    assert snap.equity_cents == snap.portfolio_value_cents - snap.credit_line_used_cents
    assert snap.available_cash_cents == cash - holds + line
    assert snap.cut_loss_breached == (snap.equity_cents < 0)


def test_snapshot_says_which_fills_it_includes() -> None:
    state = AccountState("A", "M1", 0, 0, 0, 0, (), fills_offsets=((1, 40), (0, 7)))
    record = to_record(snapshot(state, {}, ts_ns=1))
    assert record["fills_offsets"] == [
        {"partition": 0, "next_offset": 7},
        {"partition": 1, "next_offset": 40},
    ]
    decoded = registry().decode("AccountSnapshot", registry().encode("AccountSnapshot", record))
    assert decoded == record
