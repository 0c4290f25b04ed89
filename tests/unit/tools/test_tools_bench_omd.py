"""The decode+apply bench runs, is seeded, and reports a rate."""

from __future__ import annotations

from sampan.tools.bench.omd_core import run_decode_apply_bench


def test_bench_reports_a_positive_rate_for_every_message() -> None:
    result = run_decode_apply_bench(seed=3, messages=5_000)
    assert result["messages"] == 5_000
    assert result["decode_apply_msgs_per_s"] > 0
    assert run_decode_apply_bench(seed=3, messages=5_000)["packets"] == result["packets"]
