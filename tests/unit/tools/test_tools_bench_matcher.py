"""The core benchmark runs, is deterministic in its event counts, and reports its metrics."""

from sampan.tools.bench.matcher_core import run_core_bench


def test_core_bench_smoke() -> None:
    result = run_core_bench(seed=7, books=2, commands=3_000)
    for key in ("core_commands_per_s", "core_latency_us_p50", "core_latency_us_p99"):
        assert result[key] > 0
    assert result["core_latency_us_p50"] <= result["core_latency_us_p99"]
    assert result["core_latency_us_p99"] <= result["core_latency_us_p999"]
    assert result["fills"] > 0 and result["resting_orders_end"] > 1_000
    again = run_core_bench(seed=7, books=2, commands=3_000)
    assert (again["events"], again["fills"]) == (result["events"], result["fills"])
