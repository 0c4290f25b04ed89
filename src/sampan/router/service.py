"""The router process: Kafka and the OCG-C session around the pure core, exactly once.

One asyncio loop. Each batch: the records polled from orders.requests and orders.events (a
transactional consumer group) and the HKEX messages the session queued since the last batch go
through the core in one Kafka transaction, together with the core's outputs (orders.internal,
orders.events, fills), the changed open orders and the session's next inbound MsgSeqNum on
`router.state`, and the input offsets. FIX messages the batch produced are written to the
outbox on `router.state` in that transaction and handed to the session only after the commit
(the next transaction deletes them from the outbox); at start, whatever the outbox still holds
is sent again. So a decision reaches HKEX only once it is durable: a request is never decided
a second time (perhaps differently, on tables that changed) after its order went to HKEX. A
message sent twice (the process died between the commit and the outbox's tombstone) carries
the same deterministic ClOrdID, and the gateway refuses the copy as a duplicate.

Tables risk reads (reference.accounts, reference.instruments, ledger.balances, md.trades) come
from a separate reader that is not part of the transaction (`table_reader`).

Guarantees: outputs, state and offsets commit atomically; a restart (or SIGKILL) rebuilds open
orders, holds and parent/child links from `router.state` and resumes the session from the
committed inbound number; an undecodable or unprocessable Kafka record, and an HKEX message
the core cannot apply, are dead-lettered in the same transaction and leave nothing else behind
(the session's inbound number moves past such a message, so it cannot stop the router again
after a restart); SIGTERM/SIGINT finish the batch, log out and close; every poll, commit
and start-up read has a timeout.

Limits: an order reaches HKEX one Kafka commit later than it would if sent before the commit
(the price of deciding once). Outbox messages sent just before a stop or crash are deleted only
by the next instance's first commit and sent again by it; the gateway refuses those copies
(duplicate ClOrdID), which the core takes as "already sent". An aborted transaction stops the
process (exit status 1): its state and the session's
inbound number are only rebuilt at start, and its supervisor restarts it. One router instance
per OCG-C CompID (the session cannot be shared).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from sampan import topics
from sampan.config import Settings
from sampan.fix.codec import FixMessage, encode
from sampan.market.calendar import trading_day
from sampan.router import state_topic
from sampan.router.core import CoreConfig, RouterCore
from sampan.router.fixlink import FixLink, LinkConfig
from sampan.router.records import Out, dead_letter
from sampan.router.table_reader import TableReader
from sampan.router.tables import Tables
from sampan.schemas import registry
from sampan.streams.letters import produce_waiting
from sampan.streams.runtime import AgentConfig, consumer_config, producer_config

log = logging.getLogger(__name__)

GROUP = "sampan-router"
INPUTS = {"orders.requests": "OrderCommand", "orders.events": "ExecutionReport"}
IDLE_WAIT_S = 0.005
TAG_CL_ORD_ID = 11


@dataclass(frozen=True, slots=True)
class RouterConfig:
    link: LinkConfig
    core: CoreConfig = field(default_factory=CoreConfig)
    instance_id: str = "0"
    batch_size_max: int = 500
    commit_timeout_s: float = 30.0
    init_timeout_s: float = 60.0
    poll_timeout_s: float = 0.02


class Router:
    def __init__(self, settings: Settings, config: RouterConfig) -> None:
        self.settings = settings
        self.config = config
        self.day = trading_day(time.time_ns())
        self.tables = Tables()
        self.core = RouterCore(config.core, self.tables)
        agent = AgentConfig(instance_id=config.instance_id)
        self.group = settings.topic(GROUP)
        self.consumer = Consumer(consumer_config(settings, self.group, agent))
        self.producer = Producer(producer_config(settings, self.group, agent))
        self.tables_in = TableReader(settings)
        self._unprefix = {settings.topic(name): name for name in INPUTS}
        self.link: FixLink | None = None
        self.batches = 0
        self._resend: list[FixMessage] = []  # the outbox found at start
        self._sent: list[bytes] = []  # outbox keys handed to the session, to delete next commit

    # ---- start-up --------------------------------------------------------------------------

    def _start(self) -> int:
        """Fence the previous instance, load tables and state; the next inbound MsgSeqNum."""
        self.producer.init_transactions(self.config.init_timeout_s)
        state_topic.require_topic(self.settings)
        self.tables_in.catch_up(self.tables)
        loaded = state_topic.load(self.settings, self.config.link.comp_id, self.day.isoformat())
        self.core.load(loaded.orders, self._committed_requests())
        self._resend = loaded.outbox
        log.info(
            "router: %d open orders restored, %d outbox messages to send again; HKEX session "
            "resumes at inbound %d",
            len(loaded.orders),
            len(loaded.outbox),
            loaded.next_inbound_seq,
        )
        self.consumer.subscribe(list(self._unprefix))
        return loaded.next_inbound_seq

    def _committed_requests(self) -> dict[int, int]:
        name = self.settings.topic("orders.requests")
        metadata = self.consumer.list_topics(name, timeout=30)
        tps = [TopicPartition(name, p) for p in metadata.topics[name].partitions]
        committed = self.consumer.committed(tps, timeout=30)
        return {tp.partition: max(tp.offset, 0) for tp in committed}

    # ---- the loop ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> int:
        next_inbound = await asyncio.to_thread(self._start)
        link = self.link = FixLink(
            self.config.link, date.fromisoformat(str(self.day)), next_inbound
        )
        link_task = asyncio.create_task(link.run(stop))
        self._send(self._resend)
        self._resend = []
        try:
            while not stop.is_set():
                if link_task.done():
                    link_task.result()  # re-raise what ended the session loop
                    break
                self.tables_in.poll(self.tables)
                messages = await asyncio.to_thread(
                    self.consumer.consume, self.config.batch_size_max, 0
                )
                inbound = link.drain()
                idle = not self.tables_in.dead and not self._sent
                if not messages and not inbound and idle:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(link.wake.wait(), self.config.poll_timeout_s)
                    continue
                await self._batch(messages, inbound)
        finally:
            stop.set()
            await asyncio.wait({link_task}, timeout=10.0)
            link.close()
            self.consumer.close()
            self.producer.flush(self.config.commit_timeout_s)
        return 0

    async def _batch(self, messages: list[Any], inbound: list[tuple[int, Any]]) -> None:
        assert self.link is not None
        self.producer.begin_transaction()
        dead: list[Out] = []
        for message in messages:
            if message.error() is not None:
                if message.error().fatal():
                    raise KafkaException(message.error())
                log.warning("router: consumer error %s", message.error())
                continue
            self._input(message, dead)
        for seq, msg in inbound:
            self.core.fix_message(seq, msg)
        dead.extend(self.tables_in.take_dead())
        dead.extend(
            self._fix_dead_letter(seq, msg, e) for seq, msg, e in self.core.take_failed_fix()
        )
        outputs, fix_out, dirty = self.core.take()
        for sent in self._sent:
            self._produce(state_topic.STATE_TOPIC, sent, None)
        self._sent = []
        for msg in fix_out:
            self._produce(
                state_topic.STATE_TOPIC, state_topic.outbox_key(msg), state_topic.encode_outbox(msg)
            )
        for out in outputs:
            self._produce(out.topic, out.key.encode(), registry().encode(out.schema, out.value))
        for out in dead:
            self._produce(out.topic, out.key.encode(), registry().encode(out.schema, out.value))
        for key, order in dirty:
            value = state_topic.encode_order(order) if order is not None else None
            self._produce(state_topic.STATE_TOPIC, state_topic.order_key(key), value)
        next_inbound = self.link.store.next_target_seq_num
        orphan = self.core.min_orphan_seq()
        if orphan is not None:
            next_inbound = min(next_inbound, orphan)
        comp_id, day = self.config.link.comp_id, self.day.isoformat()
        self._produce(
            state_topic.STATE_TOPIC,
            state_topic.fix_key(comp_id, day),
            state_topic.encode_fix(comp_id, day, next_inbound),
        )
        await asyncio.to_thread(self._commit)
        self._send(fix_out)
        self.batches += 1

    def _send(self, messages: list[FixMessage]) -> None:
        """Hand committed outbox messages to the session; delete them in the next commit."""
        assert self.link is not None
        for msg in messages:
            self.link.send(msg)
            self._sent.append(state_topic.outbox_key(msg))

    def _input(self, message: Any, dead: list[Out]) -> None:
        topic = self._unprefix[message.topic()]
        try:
            value = registry().decode(INPUTS[topic], message.value() or b"")
            if topic == "orders.requests":
                _, stamped_ms = message.timestamp()
                received_ns = stamped_ms * 1_000_000 if stamped_ms > 0 else None
                self.core.request(message.partition(), message.offset(), value, received_ns)
            else:
                self.core.internal_report(value)
        except Exception as error:  # a bug or a bad record must not stop the router for good
            # The core has already dropped whatever the record produced before it failed.
            log.exception(
                "router: %s[%d]@%d dead-lettered", topic, message.partition(), message.offset()
            )
            dead.append(_dead_letter(message, topic, f"{type(error).__name__}: {error}"))

    def _fix_dead_letter(self, seq: int, msg: FixMessage, error: str) -> Out:
        """An HKEX message the core could not apply. The catalog has no HKEX dead-letter
        topic; its reports become orders.events records, so it goes to orders.events.dlq,
        its source named `fix:<our CompID>` with the MsgSeqNum as offset. The session's
        inbound number moves past it in this same transaction."""
        source = (f"fix:{self.config.link.comp_id}", 0, seq)
        key = (msg.get(TAG_CL_ORD_ID) or "").encode()
        return dead_letter(
            topics.dead_letter_of("orders.events"),
            source,
            key,
            encode(msg),
            error,
            GROUP,
            time.time_ns(),
        )

    def _produce(self, topic: str, key: bytes, value: bytes | None) -> None:
        produce_waiting(self.producer, self.settings.topic(topic), value, key)

    def _commit(self) -> None:
        positions = [
            tp for tp in self.consumer.position(self.consumer.assignment()) if tp.offset >= 0
        ]
        self.producer.send_offsets_to_transaction(
            positions, self.consumer.consumer_group_metadata(), self.config.commit_timeout_s
        )
        self.producer.commit_transaction(self.config.commit_timeout_s)


def _dead_letter(message: Any, topic: str, reason: str) -> Out:
    source = (message.topic(), message.partition(), message.offset())
    return dead_letter(
        topics.dead_letter_of(topic),
        source,
        message.key(),
        message.value(),
        reason,
        GROUP,
        time.time_ns(),
    )


async def serve(settings: Settings, config: RouterConfig) -> int:
    """Run the router until SIGTERM/SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    router = Router(settings, config)
    return await router.run(stop)
