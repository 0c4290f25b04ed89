"""Average cost and realised P&L: hand-computed examples and order-independent invariants."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sampan.ledger_sink.positions import Position, apply_trade


def test_average_cost_and_realised_pnl_by_hand() -> None:
    p = apply_trade(Position(), 100, 10_000)  # buy 100 @ HK$10
    p = apply_trade(p, 100, 12_000)  # buy 100 @ HK$12
    assert p == Position(200, 2_200_000, 0)
    assert p.avg_cost_e6 == 11_000_000  # HK$11.000000
    p = apply_trade(p, -50, 13_000)  # sell 50 @ 13: cost out 550,000, proceeds 650,000
    assert p == Position(150, 1_650_000, 100_000)  # HK$100 realised
    p = apply_trade(p, -300, 10_000)  # sell 300 @ 10: close 150 (loss 150), short 150
    assert p == Position(-150, -1_500_000, -50_000)
    assert p.avg_cost_e6 == 10_000_000
    p = apply_trade(p, 150, 9_000)  # cover at 9: gain HK$150
    assert p == Position(0, 0, 100_000)


def test_partial_close_rounds_the_removed_cost_half_even() -> None:
    p = apply_trade(apply_trade(Position(), 1, 1), 2, 2)  # cost 5 for 3 shares
    p = apply_trade(p, -1, 3)  # removes 5/3 = 1.67 -> 2
    assert p == Position(2, 3, 1)


trades = st.lists(
    st.tuples(st.integers(-500, 500).filter(bool), st.integers(1, 100_000)),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(trades)
def test_cost_less_realised_is_the_net_amount_paid(seq: list[tuple[int, int]]) -> None:
    p = Position()
    for qty, price in seq:
        p = apply_trade(p, qty, price)
        if p.qty == 0:
            assert p.cost_e3 == 0
        else:
            assert (p.cost_e3 > 0) == (p.qty > 0)
    assert p.qty == sum(q for q, _ in seq)
    assert p.cost_e3 - p.realised_pnl_e3 == sum(q * price for q, price in seq)
