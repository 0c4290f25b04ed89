"""`sampan bench venue`: the whole venue under paced load, from `orders.requests` to the ledger.

Every process of the venue runs as in the demo (`tools.venue.venue_specs`: hkex-sim with OMD-C,
matcher, router, ledger-sink, dropcopy, recon, analytics; omd-ingest not yet, see `OMD`) against a fresh topic
prefix and ledger schema on the running stack. The bench offers crossing internal orders to
`orders.requests` (a short sell resting, then a buy from another account taking it, 100 shares
at the previous close of 700) at each fixed rate for a fixed time, paced by the sender, and
first measures the floor on the same broker (`bench floor`: Kafka's EndToEndLatency tool and a
bare transactional produce-and-commit from Python), then reports per rate:

- the rate achieved (orders sent over the time they took; the pacing falls behind when the
  sender's own process does not get the CPU);
- request → first execution report on `orders.events` (read_committed): p50, p99, p99.9;
- request → fill posted in the ledger: from the taking buy's request to the moment its fill's
  row is seen committed in PostgreSQL (polled every `LEDGER_POLL_S`, so up to that much late);
- how many venue processes died and were restarted so far (as the demo's supervisor does; the
  agents recover exactly once, and a crash loop stops the bench);
- each agent's lag when the rate's sending ends (router: `orders.requests`; matcher:
  `orders.internal`; ledger sink: `fills`, from the offsets it stores in PostgreSQL) and how
  long after the last send everything was confirmed and posted.

Limits: the load generator, every venue process, the broker and PostgreSQL share the machine;
the figures say what this machine did at that moment (the run prints the load average). Each
run leaves its `bv<id>.` topics and ledger schema behind for inspection.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import replace
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from sampan import topics_cli
from sampan.config import Settings, settings
from sampan.errors import SampanError
from sampan.market.listings import listings
from sampan.schemas import registry
from sampan.streams import profiles
from sampan.tools.bench.cli import percentile
from sampan.tools.bench.floor import E2E_RECORDS, TXN_ROUNDS, run_floor
from sampan.tools.bench.matcher_e2e import _producer

RATES = (250, 1000)
DURATION_S = 10.0
SECURITY = 700
QTY = 100
ACCOUNTS = 8
LEDGER_POLL_S = 0.025
RESCAN_IDS = 5_000
SETTLE_TIMEOUT_S = 120.0
KAFKA_TIMEOUT_S = 10.0
WARMUP_PAIRS = 50
READY_TIMEOUT_S = 240.0
RESTARTS_MAX = 3
# omd-ingest is left out: it writes md.trades lz4-compressed, and the analytics app's client
# (aiokafka) cannot read lz4 without the `lz4` package, which sampan does not install yet, so
# analytics dies on the first HKEX trade. The internal order path does not read HKEX data.
OMD = False


def _seeds() -> tuple[Any, ...]:
    from sampan.tools.seed import AccountSeed

    big = 10**13
    return tuple(
        AccountSeed(f"BV{n}", f"BM{n}", big, big, -big, big, allow_short=True)
        for n in range(1, ACCOUNTS + 1)
    )


def pair_accounts(pair: int) -> tuple[str, str]:
    """(seller, buyer) of crossing pair `pair`. Sellers and buyers are different accounts, so
    no order can meet one of its own account's (self-trade prevention would cancel it),
    whatever order the router's partitions deliver them in."""
    half = ACCOUNTS // 2
    return f"BV{pair % half + 1}", f"BV{half + pair % half + 1}"


def _order(cl_ord_id: str, account: str, side: str, price_e3: int) -> dict[str, Any]:
    from sampan.tools.records import new_order

    return {
        **new_order(cl_ord_id, account, side, QTY, price_e3, "INTERNAL"),
        "member": "BM" + account[2:],
    }


class Watcher(threading.Thread):
    """Follows orders.events and fills (read_committed): when each ClOrdID's first report was
    seen, and which taking order each exec id filled."""

    def __init__(self, current: Settings) -> None:
        super().__init__(daemon=True)
        self.first_report: dict[str, float] = {}
        self.order_of_exec: dict[str, str] = {}
        self.cl_of_order: dict[str, str] = {}
        self.stop = threading.Event()
        self.assigned = threading.Event()
        self._current = current
        self.consumer = Consumer(profiles.follower(current, f"bench-venue-{uuid.uuid4().hex[:8]}"))
        self.consumer.subscribe([current.topic("orders.events"), current.topic("fills")])

    def run(self) -> None:
        decode = registry().decode
        events, fills = self._current.topic("orders.events"), self._current.topic("fills")
        while not self.stop.is_set():
            messages = self.consumer.consume(1000, 0.05)
            if self.consumer.assignment():
                self.assigned.set()
            now = time.perf_counter()
            for message in messages:
                if message.error() is not None:
                    continue
                if message.topic() == events:
                    report = decode("ExecutionReport", message.value())
                    self.first_report.setdefault(report["cl_ord_id"], now)
                    self.cl_of_order.setdefault(report["order_id"], report["cl_ord_id"])
                elif message.topic() == fills:
                    fill = decode("Fill", message.value())
                    self.order_of_exec[fill["exec_id"]] = fill["buy_order_id"]
        self.consumer.close()


class LedgerPoller(threading.Thread):
    """Notes when each fill's row is first seen committed in the ledger (by exec id)."""

    def __init__(self, current: Settings, schema: str) -> None:
        super().__init__(daemon=True)
        self.posted: dict[str, float] = {}
        self.stop = threading.Event()
        self._current = current
        self._schema = schema

    def run(self) -> None:
        from sampan.ledger_sink import db

        # Fill ids come from a sequence: a row may commit after one with a higher id was seen,
        # so each poll looks back `RESCAN_IDS` ids and skips the refs already noted.
        top = 0
        with db.connect(self._current, self._schema) as conn:
            while not self.stop.is_set():
                rows = conn.execute(
                    "SELECT fill_id, fill_ref FROM fills WHERE fill_id > %s",
                    (top - RESCAN_IDS,),
                ).fetchall()
                conn.commit()
                now = time.perf_counter()
                for fill_id, fill_ref in rows:
                    top = max(top, int(fill_id))
                    self.posted.setdefault(_exec_id_of(str(fill_ref)), now)
                time.sleep(LEDGER_POLL_S)


def _exec_id_of(fill_ref: str) -> str:
    """`rules.fill_ref` is `<venue>:<exec id>` (internal) or `<venue>:<day>:<exec id>`."""
    return fill_ref.rsplit(":", 1)[-1]


def _lag(current: Settings, schema: str) -> dict[str, int]:
    """Records each agent has yet to take in: end offsets minus committed offsets."""
    from sampan.ledger_sink import db

    probe = Consumer(profiles.lookup(current, f"bench-venue-lag-{uuid.uuid4().hex[:6]}"))
    try:
        lags = {}
        for agent, group, topic in (
            ("router", "sampan-router", "orders.requests"),
            ("matcher", "sampan-matcher", "orders.internal"),
        ):
            name = current.topic(topic)
            parts = probe.list_topics(name, timeout=KAFKA_TIMEOUT_S).topics[name].partitions
            ends = {
                p: probe.get_watermark_offsets(TopicPartition(name, p), KAFKA_TIMEOUT_S)[1]
                for p in parts
            }
            reader = Consumer(profiles.lookup(current, current.topic(group)))
            try:
                committed = reader.committed(
                    [TopicPartition(name, p) for p in parts], KAFKA_TIMEOUT_S
                )
            finally:
                reader.close()
            lags[f"lag_{agent}"] = sum(ends[tp.partition] - max(tp.offset, 0) for tp in committed)
        fills = current.topic("fills")
        parts = probe.list_topics(fills, timeout=KAFKA_TIMEOUT_S).topics[fills].partitions
        ends = {
            p: probe.get_watermark_offsets(TopicPartition(fills, p), KAFKA_TIMEOUT_S)[1]
            for p in parts
        }
        with db.connect(current, schema) as conn:
            rows = conn.execute(
                "SELECT partition, max(next_offset) FROM consumer_offsets WHERE topic = %s "
                "GROUP BY partition",
                (fills,),
            ).fetchall()
        stored = {int(p): int(o) for p, o in rows}
        lags["lag_ledger_sink"] = sum(end - stored.get(p, 0) for p, end in ends.items())
        return lags
    finally:
        probe.close()


def _offer(
    current: Settings, rate: int, duration_s: float, tag: str, price_e3: int
) -> tuple[dict[str, float], dict[str, float], float]:
    """Send crossing pairs at `rate` orders/s for `duration_s`; (sent per ClOrdID, the taking
    orders' send times, seconds the sending took)."""
    producer = _producer(current)
    topic = current.topic("orders.requests")
    encode = registry().encode
    count = max(2, int(rate * duration_s)) // 2 * 2
    sent: dict[str, float] = {}
    takers: dict[str, float] = {}
    started = time.perf_counter()
    for n in range(count):
        due = started + n / rate
        while (now := time.perf_counter()) < due:
            producer.poll(0)
            time.sleep(min(0.0005, due - now))
        pair, taking = divmod(n, 2)
        seller, buyer = pair_accounts(pair)
        account = buyer if taking else seller
        cl_ord_id = f"{tag}-{n}"
        order = _order(cl_ord_id, account, "BUY" if taking else "SELL_SHORT", price_e3)
        sent[cl_ord_id] = time.perf_counter()
        if taking:
            takers[cl_ord_id] = sent[cl_ord_id]
        value = encode("OrderCommand", {**order, "ts_ns": time.time_ns()})
        while True:
            try:
                producer.produce(topic, value, account.encode())
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    elapsed_s = time.perf_counter() - started
    if producer.flush(60):
        raise SampanError("bench venue: orders not delivered within 60 s")
    return sent, takers, elapsed_s


def _settle(
    watcher: Watcher,
    ledger: LedgerPoller,
    sent: dict[str, float],
    takers: dict[str, float],
    check: Any,
    required: bool = True,
) -> tuple[dict[str, float], bool]:
    """Wait (bounded) until every order has a report and every taker's fill is posted; the
    taking order's request → ledger time per ClOrdID, and whether everything arrived (when
    not `required`, a venue that did not keep up is a result, not an error)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        check()
        posted: dict[str, float] = {}
        for exec_id, seen in list(ledger.posted.items()):
            order_id = watcher.order_of_exec.get(exec_id)
            cl = watcher.cl_of_order.get(order_id) if order_id else None
            if cl in takers:
                posted[cl] = seen - takers[cl]
        reported = sum(1 for cl in sent if cl in watcher.first_report)
        if reported == len(sent) and len(posted) == len(takers):
            return posted, True
        if time.monotonic() > deadline:
            if not required:
                return posted, False
            raise SampanError(
                f"bench venue: after {SETTLE_TIMEOUT_S:.0f} s, {len(sent) - reported} of "
                f"{len(sent)} orders had no report and {len(takers) - len(posted)} of "
                f"{len(takers)} fills were not in the ledger ({len(watcher.order_of_exec)} fills "
                f"on the topic, {len(ledger.posted)} rows seen in the ledger)"
            )
        time.sleep(0.05)


def _figures(rate: int, values_s: list[float], what: str) -> dict[str, float]:
    ordered = sorted(v * 1000 for v in values_s)
    return {
        f"venue_{what}_ms_{name}_at_{rate}": round(percentile(ordered, fraction), 1)
        for name, fraction in (("p50", 0.5), ("p99", 0.99), ("p999", 0.999))
    }


def _measure(
    current: Settings,
    schema: str,
    watcher: Watcher,
    ledger: LedgerPoller,
    check: Any,
    rate: int,
    duration_s: float,
    price_e3: int,
) -> dict[str, Any]:
    """One rate: offer, take the lags as the sending ends, wait for everything to settle."""
    sent, takers, elapsed_s = _offer(current, rate, duration_s, f"r{rate}", price_e3)
    lags = _lag(current, schema)
    ended = time.perf_counter()
    posted, settled = _settle(watcher, ledger, sent, takers, check, required=False)
    confirmed = {c: watcher.first_report[c] for c in sent if c in watcher.first_report}
    results: dict[str, Any] = {f"venue_offered_per_s_at_{rate}": round(len(sent) / elapsed_s)}
    results.update({f"venue_{k}_at_{rate}": v for k, v in lags.items()})
    # Not kept up: the percentiles cover what arrived within SETTLE_TIMEOUT_S (the missing
    # ones are the slowest), so the counts of what did not arrive come with them.
    results[f"venue_unconfirmed_at_{rate}"] = len(sent) - len(confirmed)
    results[f"venue_unposted_at_{rate}"] = len(takers) - len(posted)
    if confirmed:
        results.update(_figures(rate, [t - sent[c] for c, t in confirmed.items()], "confirm"))
    if posted:
        results.update(_figures(rate, list(posted.values()), "ledger"))
    if settled:
        last = max(*confirmed.values(), *ledger.posted.values())
        results[f"venue_drain_s_at_{rate}"] = round(max(0.0, last - ended), 2)
    return results


def run_venue_bench(rates: tuple[int, ...], duration_s: float) -> dict[str, Any]:
    from sampan.ledger_sink import db
    from sampan.tools.demo_venue import publish_seed
    from sampan.tools.records import publish_records
    from sampan.tools.seed import account_record, fund_seed
    from sampan.tools.venue import Supervisor, VenueOptions, VenuePorts, venue_specs

    run_id = f"bv{uuid.uuid4().hex[:8]}"
    saved = {k: os.environ.get(k) for k in ("SAMPAN_TOPIC_PREFIX", "SAMPAN_LEDGER_SCHEMA")}
    env = {**os.environ, "SAMPAN_TOPIC_PREFIX": f"{run_id}.", "SAMPAN_LEDGER_SCHEMA": run_id}
    os.environ.update(env)  # this process reads the topics and schema its children use
    try:
        current = settings()
        topics_cli.apply(current)
        db.migrate(current, run_id)
        publish_seed(current)
        now = time.time_ns()
        publish_records(
            current,
            "reference.accounts",
            "Account",
            [(s.account, account_record(s, now)) for s in _seeds()],
        )
        fund_seed(current, _seeds())
        price_e3 = next(x.prev_close_e3 for x in listings() if x.security == SECURITY)
        state_dir = current.state_dir / "bench-venue" / run_id
        # A shared machine can take minutes to start nine Python processes: wait longer than
        # the demo does (still bounded).
        specs = [
            replace(spec, ready_timeout_s=max(spec.ready_timeout_s, READY_TIMEOUT_S))
            for spec in venue_specs(
                VenuePorts.free(), VenueOptions(state_dir, run_id, with_omd=OMD)
            )
        ]
        # The floor first, on the same broker in the same run (`bench floor`).
        results: dict[str, Any] = run_floor(current, E2E_RECORDS, TXN_ROUNDS)
        results["venue_processes"] = len(specs)
        with Supervisor(state_dir / "logs", env) as venue:
            venue.start(specs, progress=True)
            deaths: list[str] = []

            def check() -> None:
                # As under the demo's supervisor: a process that dies is restarted (it recovers
                # exactly once) and counted; a crash loop still stops the bench.
                venue.restart_dead(RESTARTS_MAX, deaths.append)

            watcher = Watcher(current)
            ledger = LedgerPoller(current, run_id)
            watcher.start()
            ledger.start()
            try:
                if not watcher.assigned.wait(30):
                    raise SampanError("bench venue: the report reader got no partitions in 30 s")
                sent, takers, _ = _offer(current, 200, WARMUP_PAIRS * 2 / 200, "warm", price_e3)
                _settle(watcher, ledger, sent, takers, check)  # the warm-up must settle
                for rate in rates:
                    figures = _measure(
                        current, run_id, watcher, ledger, check, rate, duration_s, price_e3
                    )
                    results.update(figures)
                    results[f"venue_restarts_so_far_at_{rate}"] = sum(
                        "restart" in d for d in deaths
                    )
                    p99 = figures.get(f"venue_confirm_ms_p99_at_{rate}")
                    if p99 is not None:
                        # How far the venue's confirmation is from one bare transaction's p99.
                        results[f"venue_confirm_p99_over_floor_txn_p99_at_{rate}"] = round(
                            p99 / max(results["floor_python_txn_ms_p99"], 0.001), 1
                        )
                    if figures[f"venue_unconfirmed_at_{rate}"]:
                        print(f"  the venue did not keep up at {rate}/s: no higher rate tried")
                        break
                for line in deaths:
                    print(f"  {line}")
            finally:
                watcher.stop.set()
                ledger.stop.set()
                watcher.join(10)
                ledger.join(10)
            venue.stop([s.name for s in specs[1:]])
            venue.stop()
        results["venue_run"] = run_id
        return results
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run(args: Any) -> dict[str, Any]:
    """Entry for `sampan bench venue [--rates 250,1000] [--duration S]`."""
    rates = tuple(int(r) for r in (getattr(args, "rates", "") or "").split(",") if r) or RATES
    duration_s = getattr(args, "duration", 0.0) or DURATION_S
    return run_venue_bench(rates, duration_s)
