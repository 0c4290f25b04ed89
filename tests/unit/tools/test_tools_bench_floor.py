"""`sampan bench floor`: reading Kafka's EndToEndLatency tool's output."""

from __future__ import annotations

import pytest

from sampan.errors import SampanError
from sampan.tools.bench.floor import parse_tool_output


def test_percentiles_from_the_tools_last_lines() -> None:
    printed = "0\t2020.064588\nAvg latency: 118.7957 ms\nPercentiles: 50th = 80, 99th = 2020, 99.9th = 2021\n"
    assert parse_tool_output(printed) == {
        "floor_kafka_e2e_ms_p50": 80.0,
        "floor_kafka_e2e_ms_p99": 2020.0,
        "floor_kafka_e2e_ms_p999": 2021.0,
    }


def test_output_without_percentiles_is_an_error() -> None:
    with pytest.raises(SampanError, match="no percentiles"):
        parse_tool_output("Avg latency: 1.0 ms\n")
