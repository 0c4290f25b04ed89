"""Prometheus metrics of an agent: records in and out, batch latency, dead letters, aborts,
consumer lag. Served over HTTP on `metrics_port` when it is not 0.

Each agent has its own registry, so several agents (or tests) in one process never collide.
Consumer lag comes from librdkafka's statistics callback (every `statistics.interval.ms`):
the last stable offset less the consumer's position, per partition.
"""

from __future__ import annotations

import json
import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

BATCH_BUCKETS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class AgentMetrics:
    def __init__(self, agent: str, port: int) -> None:
        self.registry = CollectorRegistry()
        labels = {"agent": agent}
        self.records_in = Counter(
            "sampan_records_in", "records consumed and committed", ["agent"], registry=self.registry
        ).labels(**labels)
        self.records_out = Counter(
            "sampan_records_out",
            "records produced and committed",
            ["agent"],
            registry=self.registry,
        ).labels(**labels)
        self.dead_letters = Counter(
            "sampan_dead_letters",
            "records sent to a dead-letter topic",
            ["agent"],
            registry=self.registry,
        ).labels(**labels)
        self.aborts = Counter(
            "sampan_transaction_aborts",
            "transactions aborted and rewound",
            ["agent"],
            registry=self.registry,
        ).labels(**labels)
        self.batch_seconds = Histogram(
            "sampan_batch_seconds",
            "time from first record handled to commit",
            ["agent"],
            buckets=BATCH_BUCKETS_S,
            registry=self.registry,
        ).labels(**labels)
        self.lag = Gauge(
            "sampan_consumer_lag",
            "records behind the partition's high watermark",
            ["agent", "topic", "partition"],
            registry=self.registry,
        )
        self._agent = agent
        if port:
            start_http_server(port, addr="127.0.0.1", registry=self.registry)
            log.info("%s: metrics on http://127.0.0.1:%d/metrics", agent, port)

    def batch_done(self, inputs: int, outputs: int, seconds: float) -> None:
        self.records_in.inc(inputs)
        self.records_out.inc(outputs)
        self.batch_seconds.observe(seconds)

    def on_consumer_stats(self, stats_json: str) -> None:
        stats = json.loads(stats_json)
        for topic, topic_stats in stats.get("topics", {}).items():
            for partition, p in topic_stats.get("partitions", {}).items():
                # librdkafka's own consumer_lag needs offsets committed by the consumer; ours
                # commit through the producer's transaction, so measure from the position:
                # the last stable offset (what read_committed may read) less the next to read.
                stable, position = p.get("ls_offset", -1), p.get("app_offset", -1)
                if partition == "-1" or stable < 0 or position < 0:
                    continue
                self.lag.labels(self._agent, topic, partition).set(max(0, stable - position))
