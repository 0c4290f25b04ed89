"""`sampan bench analytics`: live risk's price move → marked equity latency, on the real broker.

What runs: a fresh topic prefix; `accounts` accounts (default 1,000), each with a ledger snapshot
holding three of the venue's securities and its limits (far from any cut-loss), written to
`ledger.balances` and `reference.accounts`; the real `sampan risk` process; in this process a
producer of `md.trades` at `ticks_per_s` (default 10,000) for `RUN_S` seconds, round robin over
the securities, every tick a price move (one tick up or down), stamped with the wall clock just
before it is produced; and a read_committed reader of `risk.marks`.

What is measured: `mark_latency_ms_p50/p99/p999`: for every `SAMPLE_EVERY`-th tick and every
account holding that security, the time from the tick's stamp until this process reads a mark
of that account whose `priced_ts_ns` (the newest trade time among the prices it used) is at or
after the tick's. That is Kafka produce, the risk process's read, its per-account rate bound
(50 ms), its transaction and the read_committed fetch. With every security trading hundreds of
times a second, a mark priced at or after the tick has taken it in to within a few
milliseconds. `ticks_per_s` is what the producer achieved; `marks_per_s` what risk published;
`unmarked` the (tick, account) pairs no mark answered before the run ended.

Limits: the producer, the reader, the risk process and the broker share this machine's cores,
so every figure is theirs together.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition

from sampan import topics
from sampan.config import Settings
from sampan.market.listings import listings
from sampan.schemas import registry
from sampan.streams import profiles
from sampan.tools.bench.cli import percentile

ACCOUNTS_DEFAULT = 1_000
TICKS_PER_S_DEFAULT = 10_000
RUN_S = 10.0
DRAIN_S = 3.0
SAMPLE_EVERY = 50
HELD = 3  # securities per account
READY_TIMEOUT_S = 120.0
ADMIN_TIMEOUT_S = 30.0
TICK_E3 = 1_000  # a price move: HK$1 from a whole-dollar price, on tick in every spread table
PACE_S = 0.005  # the producer sends a slice of ticks every 5 ms


def _securities() -> list[tuple[int, int]]:
    """(security, a price on tick around its previous close) of the enabled listings."""
    return [(x.security, x.prev_close_e3 // 1_000 * 1_000) for x in listings() if x.enabled]


def _holdings(i: int, securities: list[int]) -> dict[int, int]:
    n = len(securities)
    return {securities[(i * 7 + k * 5) % n]: 1_000 * (k + 1) for k in range(HELD)}


def _seed(
    bench: Settings, accounts: int, securities: list[tuple[int, int]]
) -> dict[int, list[str]]:
    """Limits, a ledger snapshot per account, one trade per security; security → holders."""
    encode, now = registry().encode, time.time_ns()
    producer = Producer(profiles.producer(bench, linger_ms=20))
    holders: dict[int, list[str]] = {}
    codes = [s for s, _ in securities]
    for i in range(accounts):
        account = f"B{i:05d}"
        limits = {
            "account": account, "member": f"M{i % 7}", "credit_line_cents": 10**10,
            "cut_loss_cents": -(10**14), "max_order_notional_cents": 10**12,
            "allow_short": False, "stp": "CANCEL_RESTING", "enabled": True, "ts_ns": now,
        }  # fmt: skip
        producer.produce(
            bench.topic("reference.accounts"), encode("Account", limits), account.encode()
        )
        held = _holdings(i, codes)
        for security in held:
            holders.setdefault(security, []).append(account)
        snapshot = {
            "account": account, "member": f"M{i % 7}", "cash_cents": 10**9,
            "available_cash_cents": 10**9, "holdings_value_cents": 0,
            "portfolio_value_cents": 10**9, "equity_cents": 10**9, "credit_line_used_cents": 0,
            "cut_loss_equity_cents": -(10**14), "cut_loss_breached": False,
            "positions": [
                {"security": s, "qty": q, "last_e3": 0, "value_cents": 0} for s, q in held.items()
            ],
            "ts_ns": now, "fills_offsets": [],
        }  # fmt: skip
        producer.produce(
            bench.topic("ledger.balances"), encode("AccountSnapshot", snapshot), account.encode()
        )
    for security, price in securities:
        producer.produce(
            bench.topic("md.trades"),
            encode("TradeTick", _tick(security, price, 0, now)),
            f"HKEX:{security}".encode(),
        )
    if producer.flush(60):
        raise TimeoutError("bench analytics: the seed records were not delivered in 60 s")
    return holders


def _tick(security: int, price_e3: int, n: int, ts_ns: int) -> dict[str, Any]:
    return {
        "venue": "HKEX",
        "security": security,
        "trade_id": f"bench-{n}",
        "price_e3": price_e3,
        "qty": 100,
        "aggressor": "BUY",
        "ts_ns": ts_ns,
    }


class _MarkReader(threading.Thread):
    """Reads risk.marks from its end: per account, (arrival ns, priced_ts_ns) in arrival order."""

    def __init__(self, bench: Settings) -> None:
        super().__init__(name="bench-marks", daemon=True)
        self.bench = bench
        self.marks: dict[str, list[tuple[int, int]]] = {}
        self.count = 0
        self.stop = threading.Event()
        self.assigned = threading.Event()

    def run(self) -> None:
        consumer = Consumer(
            profiles.end_reader(
                self.bench,
                f"sampan-reader-bench-{uuid.uuid4().hex[:8]}",
                **{"enable.partition.eof": False, "fetch.wait.max.ms": 5},
            )
        )
        name = self.bench.topic("risk.marks")
        partitions = consumer.list_topics(name, timeout=30).topics[name].partitions
        consumer.assign([TopicPartition(name, p, OFFSET_END) for p in partitions])
        self.assigned.set()
        decode = registry().decode
        try:
            while not self.stop.is_set():
                for message in consumer.consume(1_000, 0.05):
                    if message.error() is not None or message.value() is None:
                        continue
                    arrival = time.time_ns()
                    mark = decode("AccountMark", message.value())
                    self.marks.setdefault(mark["account"], []).append(
                        (arrival, mark["priced_ts_ns"])
                    )
                    self.count += 1
        finally:
            consumer.close()


def _produce_ticks(
    bench: Settings, securities: list[tuple[int, int]], rate: int, run_s: float
) -> tuple[list[tuple[int, int]], int, float]:
    """Ticks at `rate` a second for `run_s`; the sampled (ts_ns, security), count, seconds."""
    producer = Producer(profiles.producer(bench, linger_ms=1))
    encode, topic = registry().encode, bench.topic("md.trades")
    sampled: list[tuple[int, int]] = []
    n = 0
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < run_s:
        due = int(elapsed * rate)
        while n < due:
            security, base = securities[n % len(securities)]
            price = base + TICK_E3 * (1 + (n // len(securities)) % 2)  # every tick moves
            ts_ns = time.time_ns()
            producer.produce(
                topic,
                encode("TradeTick", _tick(security, price, n + 1, ts_ns)),
                f"HKEX:{security}".encode(),
            )
            if n % SAMPLE_EVERY == 0:
                sampled.append((ts_ns, security))
            n += 1
        producer.poll(0)
        time.sleep(PACE_S)
    elapsed_s = time.monotonic() - started
    if producer.flush(30):
        raise TimeoutError("bench analytics: ticks not delivered in 30 s")
    return sampled, n, elapsed_s


def _latencies_ms(
    sampled: list[tuple[int, int]],
    holders: dict[int, list[str]],
    marks: dict[str, list[tuple[int, int]]],
) -> tuple[list[float], int]:
    """Per (sampled tick, holder): ms until a mark priced at or after the tick was read."""
    # Per account: arrival times and the running maximum of priced_ts_ns, for a bisect.
    indexed: dict[str, tuple[list[int], list[int]]] = {}
    for account, rows in marks.items():
        running, best = [], 0
        for _, priced in rows:
            best = max(best, priced)
            running.append(best)
        indexed[account] = ([a for a, _ in rows], running)
    out: list[float] = []
    unmarked = 0
    for ts_ns, security in sampled:
        for account in holders.get(security, ()):
            arrivals, running = indexed.get(account, ([], []))
            i = bisect.bisect_left(running, ts_ns)
            if i == len(running):
                unmarked += 1
                continue
            out.append(max(0, arrivals[i] - ts_ns) / 1e6)
    return out, unmarked


def run_bench(settings: Settings, accounts: int, rate: int) -> dict[str, Any]:
    from sampan import topics_cli
    from sampan.tools.venue import ProcessSpec, Supervisor, sampan_command

    bench = dataclasses.replace(settings, topic_prefix=f"bench{uuid.uuid4().hex[:8]}.")
    topics_cli.apply(bench)
    securities = _securities()
    results: dict[str, Any] = {"accounts": accounts, "securities": len(securities)}
    logs = Path(tempfile.mkdtemp(prefix="sampan-bench-risk-"))
    env = {**os.environ, "SAMPAN_TOPIC_PREFIX": bench.topic_prefix}
    try:
        holders = _seed(bench, accounts, securities)
        reader = _MarkReader(bench)
        reader.start()
        with Supervisor(logs, env) as supervisor:
            spec = ProcessSpec(
                "risk",
                sampan_command("risk"),
                ready_log=("risk: following",),
                ready_timeout_s=READY_TIMEOUT_S,
            )
            supervisor.start([spec])
            if not reader.assigned.wait(30):
                raise TimeoutError("bench analytics: the marks reader was not assigned in 30 s")
            time.sleep(2.0)  # the first marks of every account (its seed) go out first
            before = reader.count
            print(f"risk following {accounts} accounts; {rate:,} ticks/s for {RUN_S:.0f} s")
            sampled, ticks, elapsed_s = _produce_ticks(bench, securities, rate, RUN_S)
            time.sleep(DRAIN_S)
            supervisor.check()
            reader.stop.set()
            reader.join(10)
            marks_read = reader.count - before
        latencies, unmarked = _latencies_ms(sampled, holders, reader.marks)
        latencies.sort()
        results.update(
            {
                "ticks": ticks,
                "ticks_per_s": round(ticks / elapsed_s),
                "marks_per_s": round(marks_read / (elapsed_s + DRAIN_S)),
                "mark_latency_samples": len(latencies),
                "unmarked": unmarked,
            }
        )
        if latencies:
            results["mark_latency_ms_p50"] = round(percentile(latencies, 0.50), 1)
            results["mark_latency_ms_p99"] = round(percentile(latencies, 0.99), 1)
            results["mark_latency_ms_p999"] = round(percentile(latencies, 0.999), 1)
    finally:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient(profiles.admin(bench))
        names = [bench.topic(t.name) for t in topics.ALL]
        for future in admin.delete_topics(names, operation_timeout=ADMIN_TIMEOUT_S).values():
            # Best effort: the prefix is unique, a leftover topic harms nothing.
            with contextlib.suppress(Exception):
                future.result(timeout=ADMIN_TIMEOUT_S)
    return results


def run(args: Any) -> dict[str, Any]:
    """Entry for `sampan bench analytics` (`--records` sets the number of accounts)."""
    from sampan.config import settings

    return run_bench(settings(), args.records or ACCOUNTS_DEFAULT, TICKS_PER_S_DEFAULT)
