"""The ledger benchmark: fills per second from Kafka to committed rows, commit latency.

`run_ledger_bench` creates its own topics under a fresh prefix, produces `fills` synthetic
fills once, then for each batch size runs the real sink (same code, snapshots and dead letters
on) from the beginning of the topic to its end into a fresh schema, and measures:
- `fills_per_s_b<N>`: fills posted / (last commit end - first record received), i.e. the
  sustained rate, excluding the consumer's start-up; `fills_per_s` is the best of them;
- `commit_latency_ms_p50_b<N>` / `_p99_b<N>`: duration of each batch's database work,
  from the first query to the commit's return;
- `sink_cpu_us_per_fill_b<N>`: CPU time of this process (all its threads: the consuming
  thread, the database worker, librdkafka's) per fill posted. The sink's Python is the
  bottleneck on a small machine (the GIL makes it one core), so this is the figure to watch;
- `transfers_per_fill`: journal rows per fill (about 11 for the synthetic mix).
Topics and schemas are removed afterwards. Limits: the broker, PostgreSQL and the sink share
one machine, so the figures are of the whole local stack, not of the sink alone; on a shared
machine they move by ±20% from run to run, so compare two versions back to back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from sampan.config import Settings
from sampan.ledger_sink import db
from sampan.ledger_sink.intake import SinkStats
from sampan.ledger_sink.sink import LedgerSink, SinkOptions
from sampan.schemas import registry
from sampan.streams import profiles

PRODUCE_FLUSH_TIMEOUT_S = 60.0
ADMIN_TIMEOUT_S = 30.0
BASE_PRICES_E3 = {700: 380_000, 5: 62_500, 9988: 81_200, 2800: 17_460, 1299: 78_050}


def synthetic_fills(
    count: int,
    seed: int = 1,
    accounts: int = 200,
    hkex_every: int = 5,
    start: int = 0,
) -> Iterator[dict[str, Any]]:
    """Deterministic Fill records: internal fills between member accounts, every
    `hkex_every`-th one against the HKEX clearing account."""
    rng = random.Random(seed)
    securities = sorted(BASE_PRICES_E3)
    for n in range(start, start + count):
        security = rng.choice(securities)
        price_e3 = max(1, BASE_PRICES_E3[security] + rng.randint(-50, 50) * 10)
        buyer, seller = rng.sample(range(accounts), 2)
        buy = (f"ACC{buyer:04d}", f"M{buyer % 10:02d}")
        sell = (f"ACC{seller:04d}", f"M{seller % 10:02d}")
        venue = "INTERNAL"
        if hkex_every and n % hkex_every == 0:
            venue = "HKEX"
            if rng.random() < 0.5:
                buy = ("HKEX.CLEARING", "HKEX")
            else:
                sell = ("HKEX.CLEARING", "HKEX")
        yield {
            "exec_id": f"E{seed}-{n:09d}",
            "venue": venue,
            "security": security,
            "price_e3": price_e3,
            "qty": rng.randint(1, 20) * 100,
            "buy_account": buy[0],
            "buy_member": buy[1],
            "buy_order_id": f"B{n}",
            "sell_account": sell[0],
            "sell_member": sell[1],
            "sell_order_id": f"S{n}",
            "aggressor": rng.choice(("BUY", "SELL")),
            "parent_id": None,
            "ts_ns": 1_750_000_000_000_000_000 + n * 1_000,
        }


def produce_fills(settings: Settings, records: Iterator[dict[str, Any]]) -> int:
    """Encode and produce fills keyed by the aggressor's account; returns how many."""
    from confluent_kafka import Producer

    producer = Producer(
        profiles.producer(
            settings,
            linger_ms=20,
            **{
                "batch.size": 1_000_000,
                "compression.type": "lz4",
                "queue.buffering.max.messages": 1_000_000,
            },
        )
    )
    topic = settings.topic("fills")
    count = 0
    for record in records:
        key = record["buy_account"] if record["aggressor"] == "BUY" else record["sell_account"]
        while True:
            try:
                producer.produce(topic, key=key.encode(), value=registry().encode("Fill", record))
                break
            except BufferError:  # the local queue is full: let it drain
                producer.poll(0.1)
        count += 1
    remaining = producer.flush(PRODUCE_FLUSH_TIMEOUT_S)
    assert remaining == 0, f"{remaining} fills not acknowledged in {PRODUCE_FLUSH_TIMEOUT_S} s"
    return count


def end_offsets(settings: Settings) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(profiles.lookup(settings, "ledger-bench-watermarks"))
    try:
        topic = settings.topic("fills")
        metadata = consumer.list_topics(topic, timeout=ADMIN_TIMEOUT_S)
        partitions = sorted(metadata.topics[topic].partitions)
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=ADMIN_TIMEOUT_S)[1]
            for p in partitions
        }
    finally:
        consumer.close()


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _run_one(settings: Settings, batch_max: int, ends: dict[int, int]) -> tuple[SinkStats, float]:
    """The sink's stats and the CPU seconds this process spent running it."""
    schema = f"ledger_bench_{uuid.uuid4().hex[:8]}"
    db.migrate(settings, schema)
    try:
        sink = LedgerSink(
            settings,
            SinkOptions(
                schema=schema,
                group_id=f"ledger-bench-{batch_max}",
                batch_max=batch_max,
                stop_at=dict(ends),
            ),
        )
        cpu_started_s = time.process_time()
        sink.run()
        return sink.stats, time.process_time() - cpu_started_s
    finally:
        db.drop_schema(settings, schema)


def run_ledger_bench(settings: Settings, fills: int, batch_sizes: Sequence[int]) -> dict[str, Any]:
    """Measure the sink at each batch size; prints a table and returns the figures."""
    from confluent_kafka.admin import AdminClient

    from sampan import topics, topics_cli

    bench = dataclasses.replace(settings, topic_prefix=f"bench{uuid.uuid4().hex[:8]}.")
    topics_cli.apply(bench)
    results: dict[str, Any] = {"fills": fills}
    try:
        started = time.monotonic()
        produce_fills(bench, synthetic_fills(fills))
        print(f"produced {fills} fills in {time.monotonic() - started:.1f} s")
        ends = end_offsets(bench)
        rates = []
        print(
            f"{'batch':>7} {'fills/s':>10} {'transfers/s':>12} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'cpu us/fill':>12}"
        )
        for batch_max in batch_sizes:
            stats, cpu_s = _run_one(bench, batch_max, ends)
            assert stats.posted == fills, f"posted {stats.posted} of {fills}"
            elapsed_s = max(1e-9, stats.last_commit_at - stats.first_record_at)
            rate = stats.posted / elapsed_s
            rates.append(rate)
            p50 = _percentile(stats.commit_ms, 0.50)
            p99 = _percentile(stats.commit_ms, 0.99)
            results[f"fills_per_s_b{batch_max}"] = round(rate)
            results[f"commit_latency_ms_p50_b{batch_max}"] = round(p50, 2)
            results[f"commit_latency_ms_p99_b{batch_max}"] = round(p99, 2)
            cpu_us = cpu_s / stats.posted * 1e6
            results[f"sink_cpu_us_per_fill_b{batch_max}"] = round(cpu_us, 1)
            results["transfers_per_fill"] = round(stats.transfers / stats.posted, 2)
            print(
                f"{batch_max:>7} {rate:>10.0f} {stats.transfers / elapsed_s:>12.0f} "
                f"{p50:>8.1f} {p99:>8.1f} {cpu_us:>12.1f}"
            )
        results["fills_per_s"] = round(max(rates)) if rates else 0
    finally:
        admin = AdminClient(profiles.admin(bench))
        names = [bench.topic(t.name) for t in topics.ALL]
        for future in admin.delete_topics(names, operation_timeout=ADMIN_TIMEOUT_S).values():
            # Cleanup is best effort: the prefix is unique, a leftover topic harms nothing.
            with contextlib.suppress(Exception):
                future.result(timeout=ADMIN_TIMEOUT_S)
    return results


def run(args: Any) -> dict[str, Any]:
    """Entry for `sampan bench ledger` (`--records` sets the number of fills)."""
    from sampan.config import settings

    return run_ledger_bench(settings(), args.records or 30_000, (500, 2000))
