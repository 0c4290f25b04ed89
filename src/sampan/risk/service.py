"""The live-risk process: the Kafka loop around the risk book (`book`).

Start: the book is rebuilt from the topics, read to their ends (`streams.reader`): its own
`risk.marks` (the day's starting equity, levels and alert numbers), `risk.controls`,
`reference.accounts`, `ledger.balances`; then `fills` from where the oldest ledger snapshot
stops (a fill no snapshot includes yet counts on top of it) and the last `TRADES_TAIL` trades of
each `md.trades` partition (the last price per security). Then one consumer follows all of them
from there and the loop marks what moved.

The loop: consume what is waiting (at most `POLL_MAX` records), apply it to the book, and once
an account is due (`book.next_due_ns`) flush: its marks (`risk.marks`), alerts (`risk.alerts`),
blocks (`risk.controls`) and cut-loss cancels (a MASS_CANCEL on `orders.requests`) go out in
one Kafka transaction, so a reader never sees an alert without the mark that raised it and a
restart never raises it again (alert ids are deterministic and the counts restart from the
committed marks).

Guarantees: transactional outputs (`streams.txn`: every call bounded, retriable errors
retried); after a transaction that had to be aborted, the book (which has already moved on) is
rebuilt from the topics as at a start, so the aborted outputs are decided again;
an undecodable input record is logged and skipped (its writers are sampan processes, which
dead-letter their own bad input); SIGTERM/SIGINT finish the current step and exit 0; a loop
that commits nothing for `stall_s` with input waiting exits (`streams.liveness`).

Limits: one instance (every account in one book); not a consumer group: inputs are re-read at
every start. Marks are as fresh as the ledger's snapshots for cash and positions, plus the
fills read since.
"""

from __future__ import annotations

import logging
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from sampan.config import Settings
from sampan.market.calendar import trading_day_iso
from sampan.risk.book import Flushed, RiskBook, RiskConfig
from sampan.risk.records import (
    alert_record,
    cancel_command,
    control_record,
    mark_from,
    mark_record,
)
from sampan.schemas import SchemaError, registry
from sampan.streams import profiles
from sampan.streams.liveness import Liveness, liveness_path
from sampan.streams.reader import read_to_end
from sampan.streams.txn import Transactions

log = logging.getLogger(__name__)

NAME = "sampan-risk"
AGENT_USER = NAME
TABLES = (
    ("risk.marks", "AccountMark"),
    ("risk.controls", "RiskControl"),
    ("reference.accounts", "Account"),
    ("ledger.balances", "AccountSnapshot"),
)
FOLLOWED = {
    "risk.controls": "RiskControl",
    "reference.accounts": "Account",
    "ledger.balances": "AccountSnapshot",
    "fills": "Fill",
    "md.trades": "TradeTick",
}
TRADES_TAIL = 1_000
POLL_MAX = 2_000
POLL_TIMEOUT_S = 0.05


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    risk: RiskConfig = field(default_factory=RiskConfig)
    instance_id: str = "0"
    catch_up_timeout_s: float = 120.0
    commit_timeout_s: float = 30.0
    init_timeout_s: float = 60.0
    stall_s: float = 300.0


class RiskService:
    def __init__(self, settings: Settings, config: ServiceConfig) -> None:
        self.settings = settings
        self.config = config
        self.book = RiskBook(config.risk)
        self._unprefix = {settings.topic(name): name for name in FOLLOWED}
        self._stop = False
        self.marks_out = 0
        self.alerts_out = 0

    # ---- inputs ------------------------------------------------------------------------------

    def apply(self, topic: str, partition: int, offset: int, value: dict[str, Any]) -> None:
        book = self.book
        if topic == "md.trades":
            book.price(value["security"], value["price_e3"], value["ts_ns"])
        elif topic == "fills":
            sides = (
                (value["buy_account"], value["buy_member"], True),
                (value["sell_account"], value["sell_member"], False),
            )
            book.fill(partition, offset, value["security"], value["price_e3"], value["qty"], sides)
        elif topic == "ledger.balances":
            book.snapshot(
                value["account"],
                value["member"],
                value["cash_cents"],
                {p["security"]: p["qty"] for p in value["positions"]},
                {o["partition"]: o["next_offset"] for o in value.get("fills_offsets") or []},
            )
        elif topic == "reference.accounts":
            book.limits(
                value["account"],
                value["member"],
                value["credit_line_cents"],
                value["cut_loss_cents"],
            )
        elif topic == "risk.controls":
            book.control(value["account"], value["blocked"])
        elif topic == "risk.marks":
            book.restore(mark_from(value))

    def _decode(self, topic: str, schema: str, message: Any) -> dict[str, Any] | None:
        value = message.value()
        if value is None:
            return None
        try:
            decoded: dict[str, Any] = registry().decode(schema, value)
        except SchemaError as error:
            log.error(
                "risk: undecodable %s record at [%d]@%d skipped: %s",
                topic,
                message.partition(),
                message.offset(),
                error,
            )
            return None
        return decoded

    def catch_up(self) -> list[TopicPartition]:
        """Read the tables to their ends; where to follow every input from."""
        deadline = time.monotonic() + self.config.catch_up_timeout_s
        follow: list[TopicPartition] = []

        def remaining() -> float:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"reading risk's inputs took over {self.config.catch_up_timeout_s} s"
                )
            return left

        probe = Consumer(profiles.end_reader(self.settings, f"{NAME}-probe-{uuid.uuid4().hex[:8]}"))
        try:
            ends: dict[str, dict[int, tuple[int, int]]] = {}
            for topic in (*[t for t, _ in TABLES], "fills", "md.trades"):
                name = self.settings.topic(topic)
                metadata = probe.list_topics(name, timeout=min(remaining(), 30.0))
                if name not in metadata.topics or metadata.topics[name].error is not None:
                    raise TimeoutError(f"topic {name} does not exist or has no leader")
                ends[topic] = {
                    p: probe.get_watermark_offsets(TopicPartition(name, p), timeout=30)
                    for p in metadata.topics[name].partitions
                }
        finally:
            probe.close()
        for topic, schema in TABLES:
            starts = {p: low for p, (low, _) in ends[topic].items()}
            nexts = dict(starts)
            for message in read_to_end(self.settings, topic, remaining(), starts=starts):
                value = self._decode(topic, schema, message)
                if value is not None:
                    self.apply(topic, message.partition(), message.offset(), value)
                nexts[message.partition()] = message.offset() + 1
            if topic in FOLLOWED:
                name = self.settings.topic(topic)
                follow.extend(TopicPartition(name, p, o) for p, o in nexts.items())
        oldest = self._fills_start(ends["fills"])
        name = self.settings.topic("fills")
        follow.extend(TopicPartition(name, p, o) for p, o in oldest.items())
        name = self.settings.topic("md.trades")
        follow.extend(
            TopicPartition(name, p, max(low, high - TRADES_TAIL))
            for p, (low, high) in ends["md.trades"].items()
        )
        return follow

    def _fills_start(self, ends: dict[int, tuple[int, int]]) -> dict[int, int]:
        """The oldest snapshot's offsets: every fill some account's snapshot lacks is read."""
        known = [a.included for a in self.book.accounts.values() if a.known]
        return {
            p: max(low, min((inc.get(p, 0) for inc in known), default=0))
            for p, (low, _) in ends.items()
        }

    # ---- the loop ----------------------------------------------------------------------------

    def run(self, ready: Callable[[], None] | None = None) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        instance = self.config.instance_id
        liveness = Liveness(NAME, self.config.stall_s, liveness_path(self.settings, NAME, instance))
        producer = Producer(
            profiles.transactional_producer(
                self.settings,
                self.settings.topic(f"{NAME}-{instance}"),
                transaction_timeout_ms=int(self.config.commit_timeout_s * 1000),
            )
        )
        txn = Transactions(producer, NAME, liveness, timeout_s=self.config.commit_timeout_s)
        liveness.start()
        consumer: Consumer | None = None
        try:
            txn.init(self.config.init_timeout_s)
            follow = self.catch_up()
            liveness.beat()
            consumer = Consumer(
                profiles.end_reader(
                    self.settings,
                    f"{NAME}-follow-{uuid.uuid4().hex[:8]}",
                    **{"enable.partition.eof": False, "fetch.wait.max.ms": 10},
                )
            )
            consumer.assign(follow)
            log.info(
                "risk: following; %d accounts, %d securities priced",
                len(self.book.accounts),
                len(self.book.last_e3),
            )
            if ready is not None:
                ready()
            return self._loop(consumer, producer, txn, liveness)
        finally:
            if consumer is not None:
                consumer.close()
            liveness.close()

    def _loop(
        self, consumer: Consumer, producer: Producer, txn: Transactions, liveness: Liveness
    ) -> int:
        while not self._stop:
            now = time.time_ns()
            due = self.book.next_due_ns(now)
            wait_s = (
                POLL_TIMEOUT_S if due is None else max(0.0, min(POLL_TIMEOUT_S, (due - now) / 1e9))
            )
            messages = consumer.consume(POLL_MAX, wait_s)
            for message in messages:
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        log.warning("risk: %s", error)
                    continue
                topic = self._unprefix[message.topic()]
                value = self._decode(topic, FOLLOWED[topic], message)
                if value is not None:
                    self.apply(topic, message.partition(), message.offset(), value)
            now = time.time_ns()
            due = self.book.next_due_ns(now)
            if due is not None and due <= now:
                flushed = self.book.flush(now, trading_day_iso(now))
                if not self._publish(flushed, producer, txn, now):
                    # The book has moved past what was committed: rebuild it from the topics.
                    log.warning("risk: a transaction was aborted; rebuilding from the topics")
                    self.book = RiskBook(self.config.risk)
                    consumer.assign(self.catch_up())
            liveness.beat()
        log.info("risk: stopping; %d marks and %d alerts written", self.marks_out, self.alerts_out)
        return 0

    def _publish(self, flushed: Flushed, producer: Producer, txn: Transactions, now: int) -> bool:
        if not (flushed.marks or flushed.alerts or flushed.blocks):
            return True
        encode, topic = registry().encode, self.settings.topic
        txn.begin()
        for alert in flushed.alerts:
            log.warning(
                "risk: ALERT %s: equity %d cents (warning %d, cut-loss %d)",
                alert.alert_id,
                alert.equity_cents,
                alert.warning_equity_cents,
                alert.cut_loss_equity_cents,
            )
            producer.produce(
                topic("risk.alerts"),
                encode("RiskAlert", alert_record(alert)),
                alert.account.encode(),
            )
        for block in flushed.blocks:
            control = control_record(block.account, True, AGENT_USER, now, block.alert_id)
            producer.produce(
                topic("risk.controls"), encode("RiskControl", control), block.account.encode()
            )
            day = trading_day_iso(now)
            command = cancel_command(block, day, now)
            producer.produce(
                topic("orders.requests"), encode("OrderCommand", command), block.account.encode()
            )
        for mark in flushed.marks:
            producer.produce(
                topic("risk.marks"), encode("AccountMark", mark_record(mark)), mark.account.encode()
            )
        if not txn.commit():
            return False
        self.marks_out += len(flushed.marks)
        self.alerts_out += len(flushed.alerts)
        return True

    def _on_signal(self, signum: int, frame: object) -> None:
        self._stop = True


def enable(settings: Settings, account: str, user: str, timeout_s: float = 30.0) -> None:
    """A risk officer's re-enable of a blocked account: a `risk.controls` record the router
    reads (and the risk process, which then blocks again only on a new breach)."""
    producer = Producer(profiles.producer(settings, linger_ms=0))
    record = control_record(account, False, user, time.time_ns())
    producer.produce(
        settings.topic("risk.controls"), registry().encode("RiskControl", record), account.encode()
    )
    if producer.flush(timeout_s):
        raise TimeoutError(
            f"risk.controls: the re-enable of {account} not delivered in {timeout_s} s"
        )
