"""The feed handler's Kafka output: md.depth, md.trades, md.stats and reference.instruments.

Guarantees:
- One plain idempotent producer (acks=all, idempotence on, murmur2_random like the Java
  client, every option that matters set here): a record the broker acknowledged is there
  once, and retries inside the producer never duplicate it.
- Records are Avro single-object encoded through the schema registry: DepthSnapshot (top five
  a side, venue HKEX) keyed ``HKEX:<security>``, TradeTick keyed ``HKEX:<security>`` with
  trade_id ``<security>-<OMD TradeID>``, SecurityStats and Instrument keyed ``<security>``
  (the catalog's keys).
- The producer's local queue is bounded (``QUEUE_MESSAGES_MAX``); when full, ``publish``
  polls for deliveries for at most ``BLOCK_S_MAX`` and then drops the record, counting and
  logging it, rather than growing without limit.
- Each delivery acknowledgement records the time from the packet's SendTime to the ack in a
  bounded sample (``LATENCY_SAMPLES_MAX``), for the benchmark and the status line.

Limits: not transactional. A crash after the broker acked but before a refresh can be
restarted from does not duplicate; a restarted ingest does publish again the depth, stats
and instruments of its first snapshot (compacted topics absorb that), and trades only from
after its snapshot, so trades published shortly before a crash are not republished.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from sampan.config import Settings
from sampan.omd_ingest.book import Level
from sampan.omd_ingest.feed import DepthOut, InstrumentOut, Output, StatsOut, TradeOut
from sampan.schemas import registry

log = logging.getLogger(__name__)

QUEUE_MESSAGES_MAX = 200_000
BLOCK_S_MAX = 5.0
LATENCY_SAMPLES_MAX = 1_000_000
FLUSH_TIMEOUT_S = 30.0
SPREAD_TABLE_NAMES = {"01": "01"}  # OMD-C SpreadTableCode -> Instrument.spread_table


def producer_config(settings: Settings, linger_ms: int) -> dict[str, Any]:
    return settings.kafka(
        **{
            "enable.idempotence": True,
            "acks": "all",
            "max.in.flight.requests.per.connection": 5,
            "partitioner": "murmur2_random",  # the Java client's partitioner: keys land alike
            "linger.ms": linger_ms,
            "batch.num.messages": 10_000,
            "compression.type": "lz4",
            "message.timeout.ms": 60_000,
            "queue.buffering.max.messages": QUEUE_MESSAGES_MAX,
            "queue.buffering.max.kbytes": 262_144,
        }
    )


def _levels(levels: Sequence[Level]) -> list[dict[str, int]]:
    return [
        {"price_e3": lv.price_e3, "qty": lv.aggregate_quantity, "orders": lv.number_of_orders}
        for lv in levels
    ]


class KafkaSink:
    def __init__(self, settings: Settings, linger_ms: int = 2) -> None:
        self.producer = Producer(producer_config(settings, linger_ms))
        self.registry = registry()
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
            topic, key, value = self._record(out)
            self._produce(topic, key, value, out.send_time_ns)

    def _produce(self, topic: str, key: bytes, value: bytes, send_ns: int) -> None:
        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            self._on_delivery(send_ns, err, msg)

        deadline = time.monotonic() + BLOCK_S_MAX
        while True:
            try:
                self.producer.produce(topic, value, key, on_delivery=on_delivery)
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
                    "trade_id": f"{out.security}-{out.trade_id}",
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
            return self.topic_stats, str(out.security).encode(), value
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
        self.producer.poll(0)

    def close(self, timeout_s: float = FLUSH_TIMEOUT_S) -> int:
        """Wait for outstanding deliveries; return how many are still undelivered."""
        remaining: int = self.producer.flush(timeout_s)
        if remaining:
            log.error("kafka: %d records undelivered after %.0f s", remaining, timeout_s)
        return remaining
