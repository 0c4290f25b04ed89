"""The auction benchmark runs on a small book, uncrosses at the IEP and reports its numbers."""

from sampan.tools.bench.auction import run_auction_bench


def test_auction_bench_smoke() -> None:
    result = run_auction_bench(seed=7, orders=2_000)
    assert result["auction_orders_accepted"] == 2_000
    assert result["auction_input_orders_per_s"] > 0 and result["auction_uncross_ms"] > 0
    assert result["auction_iev"] > 0 and result["auction_fills"] > 0
    again = run_auction_bench(seed=7, orders=2_000)
    assert (again["auction_iep_e3"], again["auction_events"]) == (
        result["auction_iep_e3"],
        result["auction_events"],
    )
