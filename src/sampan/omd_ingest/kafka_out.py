"""The feed handler's Kafka output: md.depth, md.trades, md.stats and reference.instruments.

Guarantees:
- One transactional producer (acks=all, idempotence on, murmur2_random like the Java client,
  every option that matters set here) under the transactional id ``omd-ingest.<channel>``
  (prefixed): a restarted ingest fences its predecessor and aborts whatever it had not
  committed. ``poll`` commits the open transaction once it is ``commit_interval_s`` old (and
  ``close`` commits the rest): a commit blocks the caller for a broker round trip, so it is
  paid a few times a second, not per datagram. Readers with read_committed see a
  transaction's records together or not at all.
- Records are Avro single-object encoded through the schema registry: DepthSnapshot (top five
  a side, venue HKEX) keyed ``HKEX:<security>``, TradeTick keyed ``HKEX:<security>``,
  SecurityStats and Instrument keyed ``<security>`` (the catalog's keys).
- Each HKEX trade is on md.trades once. Its identity is deterministic: HKEX's TradeID is
  unique per security and trading day, so trade_id is ``<YYYY-MM-DD>:<security>-<TradeID>``
  (the Hong Kong day of the trade time). A trade whose TradeID is not above the highest
  already published for its security and day is dropped (counted in ``duplicates``): a
  retransmission, a refresh backfill or a wrongly believed reset cannot publish it again.
  ``recover`` reads back today's committed HKEX trades at start (read_committed, after the
  fencing) to rebuild those highest TradeIDs and returns the OMD-C sequence number of the
  last trade committed (carried in each trade's ``omd.seq`` header), from which the ingest
  completes what it missed.
- The producer's local queue is bounded (``QUEUE_MESSAGES_MAX``); when full, ``publish``
  polls for deliveries for at most ``BLOCK_S_MAX`` and then drops the record, counting and
  logging it, rather than growing without limit.
- Transactions are driven by ``streams.txn`` (every call bounded, retriable errors retried
  in that one place). A commit that fails is redone until it succeeds or ``BROKER_WAIT_S``
  has passed, so a broker restart costs a wait, not the process: an abortable error aborts
  and produces the turn's records again in a new transaction; a producer fenced by the
  broker's own abort of a transaction that outlived its timeout, or one whose call hung
  (librdkafka #5456), is replaced by a new producer that takes the transactional id over (at
  most ``RENEWALS_MAX`` times per ``RENEWAL_WINDOW_S``), and the records are produced again.
  Anything else, or a broker away for longer, raises ``SinkFailed``, which stops the process
  (a restart recovers).
- Each delivery acknowledgement records the time from the packet's SendTime to the ack in a
  bounded sample (``LATENCY_SAMPLES_MAX``), for the benchmark and the status line.

Limits: trades of one security must reach ``publish`` in TradeID order (the feed keeps them
so, holding live trades while it backfills). A restarted ingest publishes again the depth,
stats and instruments of its first snapshot (compacted topics absorb that). If the simulator
restarts within a day its TradeIDs start again at 1 and collide with the day's earlier ones,
which HKEX's never do.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from sampan.config import Settings
from sampan.errors import SampanError
from sampan.market.calendar import midnight_ns, trading_day, trading_day_iso
from sampan.omd_ingest.book import Level
from sampan.omd_ingest.feed import DepthOut, InstrumentOut, Output, StatsOut, TradeOut
from sampan.schemas import SchemaError, registry
from sampan.streams import profiles
from sampan.streams.liveness import CallHung, Liveness
from sampan.streams.txn import Transactions, fenced

log = logging.getLogger(__name__)

QUEUE_MESSAGES_MAX = 200_000
BLOCK_S_MAX = 5.0
LATENCY_SAMPLES_MAX = 1_000_000
FLUSH_TIMEOUT_S = 30.0
SPREAD_TABLE_NAMES = {"01": "01"}  # OMD-C SpreadTableCode -> Instrument.spread_table
TXN_TIMEOUT_S = 30.0
COMMIT_INTERVAL_S_DEFAULT = 0.05
# How long a commit (or the start) waits for a broker that is away: a restart on a loaded
# machine has taken minutes.
BROKER_WAIT_S = 300.0
RENEWALS_MAX = 3
RENEWAL_WINDOW_S = 600.0
RECOVER_TIMEOUT_S = 60.0
HEADER_SEQ = "omd.seq"
HEADER_CHANNEL = "omd.channel"


class SinkFailed(SampanError):
    """The transactional producer cannot go on (fenced, fatal error): the process stops."""


def hk_day(ts_ns: int) -> str:
    """The Hong Kong calendar day (YYYY-MM-DD) of a time in ns since the epoch."""
    return trading_day_iso(ts_ns)


def hk_day_start_ms(ts_ns: int) -> int:
    """Midnight in Hong Kong of the day of ``ts_ns``, in ms since the epoch."""
    return midnight_ns(trading_day(ts_ns)) // 1_000_000


def trade_identity(security: int, trade_id: int, trade_time_ns: int) -> str:
    """md.trades' trade_id for an HKEX trade: TradeID is unique per security and day."""
    return f"{hk_day(trade_time_ns)}:{security}-{trade_id}"


@dataclass(frozen=True, slots=True)
class Recovered:
    """What ``recover`` read back: HKEX trades committed today and where the feed was."""

    trades: int
    last_seq_num: int | None  # the OMD-C sequence number of the last trade committed


def producer_config(settings: Settings, linger_ms: int, transactional_id: str) -> dict[str, Any]:
    return profiles.transactional_producer(
        settings,
        transactional_id,
        transaction_timeout_ms=int(TXN_TIMEOUT_S * 2 * 1000),
        linger_ms=linger_ms,
        **{
            "batch.num.messages": 10_000,
            "compression.type": "lz4",
            "message.timeout.ms": 60_000,
            "queue.buffering.max.messages": QUEUE_MESSAGES_MAX,
            "queue.buffering.max.kbytes": 262_144,
        },
    )


def _levels(levels: Sequence[Level]) -> list[dict[str, int]]:
    return [
        {"price_e3": lv.price_e3, "qty": lv.aggregate_quantity, "orders": lv.number_of_orders}
        for lv in levels
    ]


class KafkaSink:
    def __init__(
        self,
        settings: Settings,
        linger_ms: int = 2,
        channel_id: int = 1,
        commit_interval_s: float = COMMIT_INTERVAL_S_DEFAULT,
    ) -> None:
        self.settings = settings
        self.commit_interval_s = commit_interval_s
        self._txn_started = 0.0
        self.channel_id = channel_id
        self.transactional_id = settings.topic(f"omd-ingest.{channel_id}")
        self._linger_ms = linger_ms
        self.producer = Producer(producer_config(settings, linger_ms, self.transactional_id))
        self.txn = Transactions(
            self.producer,
            self.transactional_id,
            Liveness(self.transactional_id, BROKER_WAIT_S),
            TXN_TIMEOUT_S,
            retry_for_s=BROKER_WAIT_S,
        )
        self._renewals: list[float] = []
        try:
            self.txn.init(BROKER_WAIT_S)
        except KafkaException as exc:
            raise SinkFailed(
                f"cannot start transactions as {self.transactional_id}: {exc}"
            ) from exc
        self.registry = registry()
        self._in_txn = False
        self._txn_records: list[tuple[str, bytes, bytes, int, list[tuple[str, bytes]] | None]] = []
        self._trade_high: dict[tuple[str, int], int] = {}  # (day, security) -> highest TradeID
        self.duplicates = 0
        self.commits = 0
        self.topic_depth = settings.topic("md.depth")
        self.topic_trades = settings.topic("md.trades")
        self.topic_stats = settings.topic("md.stats")
        self.topic_instruments = settings.topic("reference.instruments")
        self.latencies_ns: list[int] = []
        self.produced = 0
        self.delivered = 0
        self.delivered_trades = 0
        self.failed = 0
        self.dropped = 0

    def _on_delivery(self, send_ns: int, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.failed += 1
            if self.failed <= 10 or self.failed % 1000 == 0:
                log.error("kafka delivery failed (%d so far): %s", self.failed, err)
            return
        self.delivered += 1
        if msg.topic() == self.topic_trades:
            self.delivered_trades += 1
        if len(self.latencies_ns) < LATENCY_SAMPLES_MAX:
            self.latencies_ns.append(time.time_ns() - send_ns)

    def publish(self, outputs: Sequence[Output]) -> None:
        for out in outputs:
            headers: list[tuple[str, bytes]] | None = None
            if type(out) is TradeOut:
                if not self._first_time(out):
                    self.duplicates += 1
                    continue
                headers = [
                    (HEADER_SEQ, str(out.seq_num).encode()),
                    (HEADER_CHANNEL, str(self.channel_id).encode()),
                ]
            topic, key, value = self._record(out)
            if not self._in_txn:
                self._begin()
            self._txn_records.append((topic, key, value, out.send_time_ns, headers))
            self._produce(topic, key, value, out.send_time_ns, headers)

    def _first_time(self, trade: TradeOut) -> bool:
        key = (hk_day(trade.trade_time_ns), trade.security)
        if trade.trade_id <= self._trade_high.get(key, 0):
            return False
        self._trade_high[key] = trade.trade_id
        return True

    def _begin(self) -> None:
        try:
            self.txn.begin()
        except KafkaException as exc:
            raise SinkFailed(f"begin_transaction: {exc}") from exc
        self._in_txn = True
        self._txn_started = time.monotonic()

    def commit(self) -> None:
        """Commit the open transaction, if any (see the module's guarantees for errors)."""
        if not self._in_txn:
            return
        deadline = time.monotonic() + BROKER_WAIT_S
        while True:
            try:
                if self.txn.commit():
                    break
                why = "aborted"
            except CallHung as hung:
                why = self._renew(str(hung))
            except KafkaException as exc:
                if not fenced(exc):
                    raise SinkFailed(f"commit_transaction: {exc}") from exc
                why = self._renew(f"fenced: {exc}")
            if time.monotonic() > deadline:
                raise SinkFailed(f"not committed within {BROKER_WAIT_S:.0f} s ({why})")
            log.warning("kafka: transaction %s; producing its records again", why)
            self._redo()
        self._in_txn = False
        self._txn_records.clear()
        self.commits += 1

    def _renew(self, why: str) -> str:
        """Take the transactional id over with a new producer: its `init_transactions` fences
        the old one (fenced by the broker's abort of a timed-out transaction, or stuck in a
        call) and aborts its open transaction."""
        now = time.monotonic()
        self._renewals = [t for t in self._renewals if now - t < RENEWAL_WINDOW_S]
        if len(self._renewals) >= RENEWALS_MAX:
            raise SinkFailed(f"{why}; the producer was renewed {RENEWALS_MAX} times already")
        self._renewals.append(now)
        log.error("kafka: %s; taking the transactional id over with a new producer", why)
        self.producer = self.txn.producer = Producer(
            producer_config(self.settings, self._linger_ms, self.transactional_id)
        )
        try:
            self.txn.init(BROKER_WAIT_S)
        except KafkaException as exc:
            raise SinkFailed(f"init_transactions of a new producer: {exc}") from exc
        return why

    def _redo(self) -> None:
        """Produce the aborted transaction's records again in a new one."""
        try:
            self.txn.begin()
        except KafkaException as exc:
            raise SinkFailed(f"begin again: {exc}") from exc
        for topic, key, value, send_ns, headers in self._txn_records:
            self._produce(topic, key, value, send_ns, headers)

    def _produce(
        self,
        topic: str,
        key: bytes,
        value: bytes,
        send_ns: int,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            self._on_delivery(send_ns, err, msg)

        deadline = time.monotonic() + BLOCK_S_MAX
        while True:
            try:
                self.producer.produce(topic, value, key, headers=headers, on_delivery=on_delivery)
                self.produced += 1
                return
            except BufferError:
                if time.monotonic() >= deadline:
                    self.dropped += 1
                    log.error(
                        "kafka queue full for %.0f s: dropped a %s record", BLOCK_S_MAX, topic
                    )
                    return
                self.producer.poll(0.05)

    def _record(self, out: Output) -> tuple[str, bytes, bytes]:
        enc = self.registry.encode
        if type(out) is DepthOut:
            value = enc(
                "DepthSnapshot",
                {
                    "venue": "HKEX",
                    "security": out.security,
                    "bids": _levels(out.bids),
                    "asks": _levels(out.asks),
                    "seq": out.seq_num,
                    "ts_ns": out.send_time_ns,
                },
            )
            return self.topic_depth, f"HKEX:{out.security}".encode(), value
        if type(out) is TradeOut:
            value = enc(
                "TradeTick",
                {
                    "venue": "HKEX",
                    "security": out.security,
                    "trade_id": trade_identity(out.security, out.trade_id, out.trade_time_ns),
                    "price_e3": out.price_e3,
                    "qty": out.qty,
                    "aggressor": None,
                    "ts_ns": out.trade_time_ns,
                },
            )
            return self.topic_trades, f"HKEX:{out.security}".encode(), value
        if type(out) is StatsOut:
            value = enc(
                "SecurityStats",
                {
                    "venue": "HKEX",
                    "security": out.security,
                    "last_e3": out.last_e3,
                    "open_e3": out.open_e3,
                    "high_e3": out.high_e3,
                    "low_e3": out.low_e3,
                    "prev_close_e3": out.prev_close_e3,
                    "nominal_e3": out.nominal_e3,
                    "volume": out.volume,
                    "turnover_e3": out.turnover_e3,
                    "ts_ns": out.send_time_ns,
                },
            )
            return self.topic_stats, f"HKEX:{out.security}".encode(), value
        assert type(out) is InstrumentOut, out
        d = out.definition
        value = enc(
            "Instrument",
            {
                "security": d.security_code,
                "name": d.security_short_name,
                "currency": d.currency_code or "HKD",
                "board_lot": d.lot_size,
                "spread_table": SPREAD_TABLE_NAMES.get(d.spread_table_code, d.spread_table_code),
                "prev_close_e3": d.previous_closing_price_e3,
                "enabled": True,
                "ts_ns": out.send_time_ns,
            },
        )
        return self.topic_instruments, str(d.security_code).encode(), value

    def poll(self) -> None:
        """Serve delivery callbacks; commit the open transaction once it is old enough."""
        self.producer.poll(0)
        if self._in_txn and time.monotonic() - self._txn_started >= self.commit_interval_s:
            self.commit()

    def recover(self, now_ns: int | None = None) -> Recovered:
        """Read back today's committed HKEX trades (see the module's guarantees)."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        topic = self.settings.topic("md.trades")
        consumer = Consumer(
            profiles.end_reader(
                self.settings,
                f"{self.transactional_id}.recover-{uuid.uuid4().hex[:8]}",
                **{"auto.offset.reset": "latest"},
            )
        )
        trades = 0
        last: tuple[int, int] | None = None  # (timestamp ms, seq) of the newest trade read
        try:
            meta = consumer.list_topics(topic, timeout=RECOVER_TIMEOUT_S).topics[topic]
            # From an hour before the Hong Kong midnight: a trade just before midnight may
            # have been committed just after it.
            since_ms = hk_day_start_ms(now_ns) - 3_600_000
            wanted = [TopicPartition(topic, p, since_ms) for p in meta.partitions]
            starts = consumer.offsets_for_times(wanted, timeout=RECOVER_TIMEOUT_S)
            parts = [tp for tp in starts if tp.offset >= 0]
            consumer.assign(parts)
            done: set[int] = set()
            deadline = time.monotonic() + RECOVER_TIMEOUT_S
            while len(done) < len(parts):
                if time.monotonic() > deadline:
                    raise SinkFailed(f"{topic} not read back within {RECOVER_TIMEOUT_S:.0f} s")
                for msg in consumer.consume(1000, 0.2):
                    error = msg.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            done.add(msg.partition())
                        continue
                    done.discard(msg.partition())
                    seq = self._recover_one(msg)
                    if seq is not None:
                        trades += 1
                        stamp = (msg.timestamp()[1], seq)
                        last = stamp if last is None or stamp > last else last
        except KafkaException as exc:
            raise SinkFailed(f"reading back {topic}: {exc}") from exc
        finally:
            consumer.close()
        return Recovered(trades, None if last is None else last[1])

    def _recover_one(self, msg: Message) -> int | None:
        """Note one committed record's trade; return its OMD-C sequence number if ours."""
        key, value = msg.key(), msg.value()
        if key is None or value is None or not key.startswith(b"HKEX:"):
            return None
        try:
            record = self.registry.decode("TradeTick", value)
            trade_id = int(record["trade_id"].rsplit("-", 1)[1])
        except (SchemaError, ValueError, IndexError) as exc:
            log.warning(
                "read back: skipped %s[%d]@%d: %s", msg.topic(), msg.partition(), msg.offset(), exc
            )
            return None
        day_key = (hk_day(record["ts_ns"]), record["security"])
        self._trade_high[day_key] = max(self._trade_high.get(day_key, 0), trade_id)
        headers = dict(msg.headers() or [])
        if headers.get(HEADER_CHANNEL) != str(self.channel_id).encode():
            return None
        try:
            return int(headers[HEADER_SEQ])
        except (KeyError, ValueError):
            return None

    def close(self, timeout_s: float = FLUSH_TIMEOUT_S) -> int:
        """Commit what is open and wait for deliveries; return how many are undelivered."""
        try:
            self.commit()
        except SinkFailed as exc:
            log.error("kafka: the last transaction did not commit: %s", exc)
            return len(self._txn_records) or 1
        remaining: int = self.producer.flush(timeout_s)
        if remaining:
            log.error("kafka: %d records undelivered after %.0f s", remaining, timeout_s)
        return remaining
