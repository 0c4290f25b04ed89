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
