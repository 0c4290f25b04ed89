from sampan.tools.bench import cli as bench


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert bench.percentile(values, 0.5) == 50
    assert bench.percentile(values, 0.99) == 99
    assert bench.percentile([7.0], 0.999) == 7


def test_serde_bench_reports_rates() -> None:
    result = bench.bench_serde(200)
    assert result["serde_encode_records_per_s"] > 0
    assert result["serde_decode_records_per_s"] > 0
    assert result["serde_record_bytes"] > 10


def test_bench_analytics_takes_the_first_mark_priced_at_or_after_each_tick() -> None:
    from sampan.tools.bench.analytics import _latencies_ms

    ms = 1_000_000
    sampled = [(100 * ms, 700), (200 * ms, 5)]
    holders = {700: ["A", "B"], 5: ["A"]}
    marks = {
        "A": [(110 * ms, 90 * ms), (130 * ms, 100 * ms), (250 * ms, 210 * ms)],
        "B": [(105 * ms, 99 * ms)],  # priced before the tick: never answers it
    }
    latencies, unmarked = _latencies_ms(sampled, holders, marks)
    assert sorted(latencies) == [30.0, 50.0] and unmarked == 1
