"""The router process: Kafka and the OCG-C session around the pure core, exactly once, on the
streams runtime (`sampan.streams.runtime`).

Each batch (one Kafka transaction): the records polled from orders.requests and orders.events
go through the core one by one (`handle`: each input's outputs, changed open orders and
outbox entries are its own outputs, so an input whose output cannot be produced is
dead-lettered alone); then (`end_batch`) the HKEX messages the session queued since the last
batch, the reference records the table reader rejected, the tombstones of outbox messages
already handed to the session, and the session's next inbound MsgSeqNum on `router.state`.
FIX messages a batch decided are written to the outbox on `router.state` in that transaction
and handed to the session only after the commit (`committed`); at start, whatever the outbox
still holds is sent again. So a decision reaches HKEX only once it is durable: a request is
never decided a second time (perhaps differently, on tables that changed) after its order went
to HKEX. A message sent twice (the process died between the commit and the outbox's tombstone)
carries the same deterministic ClOrdID, and the gateway refuses the copy as a duplicate.

Tables risk reads (reference.accounts, reference.instruments, ledger.balances, md.trades) come
from a separate reader that is not part of the transaction (`table_reader`).

Guarantees: outputs, state and offsets commit atomically; a restart (or SIGKILL) rebuilds open
orders, holds and parent/child links from `router.state` and resumes the session from the
committed inbound number; an aborted transaction (a broker restart) rebuilds the core from
`router.state` the same way, the runtime rewinds the Kafka inputs, and the HKEX messages and
dead letters of the aborted batch are handled again in the next one, so the router rides
through it; an undecodable or unprocessable Kafka record, and an HKEX message the core cannot
apply, are dead-lettered in the same transaction and leave nothing else behind (the session's
inbound number moves past such a message, so it cannot stop the router again after a
restart); transaction calls have deadlines and retries (`streams.txn`), and a router that
commits nothing for the stall bound exits (`streams.liveness`); SIGTERM/SIGINT finish the
batch, log out and close.

Limits: an order reaches HKEX one Kafka commit later than it would if sent before the commit
(the price of deciding once). Outbox messages sent just before a stop or crash are deleted only
by the next instance's first commit and sent again by it; the gateway refuses those copies
(duplicate ClOrdID), which the core takes as "already sent". One router instance per OCG-C
CompID (the session cannot be shared). An HKEX message waits for the runtime's next poll
(`POLL_TIMEOUT_S`) before its batch starts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from sampan import topics
from sampan.config import Settings
from sampan.fix.codec import FixMessage, encode
from sampan.market.calendar import trading_day
from sampan.router import state_topic
from sampan.router.core import CoreConfig, RouterCore
from sampan.router.fixlink import LinkConfig, LinkThread
from sampan.router.records import Out, dead_letter
from sampan.router.table_reader import TableReader
from sampan.router.tables import Tables
from sampan.schemas import registry
from sampan.streams.runtime import AgentConfig, AgentRunner, InRecord, Output

log = logging.getLogger(__name__)

GROUP = "sampan-router"
INPUTS = {"orders.requests": "OrderCommand", "orders.events": "ExecutionReport"}
POLL_TIMEOUT_S = 0.005
TAG_CL_ORD_ID = 11
COMMITTED_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class RouterConfig:
    link: LinkConfig
    core: CoreConfig = field(default_factory=CoreConfig)
    instance_id: str = "0"
    batch_size_max: int = 500
    commit_timeout_s: float = 30.0
    init_timeout_s: float = 60.0
    poll_timeout_s: float = POLL_TIMEOUT_S
    stall_timeout_s: float = 300.0

    def agent_config(self) -> AgentConfig:
        return AgentConfig(
            instance_id=self.instance_id,
            batch_size_max=self.batch_size_max,
            poll_timeout_s=self.poll_timeout_s,
            commit_timeout_s=self.commit_timeout_s,
            init_timeout_s=self.init_timeout_s,
            stall_timeout_s=self.stall_timeout_s,
        )


def _out(out: Out) -> Output:
    return Output(out.topic, out.key.encode(), registry().encode(out.schema, out.value))


def _state(key: bytes, value: bytes | None) -> Output:
    return Output(state_topic.STATE_TOPIC, key, value)


class RouterAgent:
    """The router as a streams agent. Its own inputs besides Kafka: the OCG-C session's
    inbound messages and the table reader's rejected reference records."""

    name = GROUP
    inputs: Mapping[str, str] = INPUTS

    def __init__(self, settings: Settings, config: RouterConfig) -> None:
        self.settings = settings
        self.config = config
        self.day = trading_day(time.time_ns())
        self.tables = Tables(config.core.risk)
        self.core = RouterCore(config.core, self.tables)
        self.tables_in = TableReader(settings)
        self.link: LinkThread | None = None
        self._consumer: Consumer | None = None
        # The current transaction's non-Kafka inputs, handled again after an abort.
        self._inbound: list[tuple[int, FixMessage]] = []
        self._dead: list[Out] = []
        self._tombstones: list[bytes] = []
        # Outbox keys handed to the session, to delete in the next transaction.
        self._sent: list[bytes] = []
        # Outbox messages of the current transaction, handed to the session once it commits.
        self._fix_out: list[FixMessage] = []
        # Handed back by an abort: handled first in the next batch.
        self._redo_inbound: list[tuple[int, FixMessage]] = []
        self._redo_dead: list[Out] = []

    # ---- start-up and recovery ---------------------------------------------------------------

    def started(self, consumer: Consumer) -> None:
        """After the runtime fenced the previous instance: tables, state, then the session."""
        self._consumer = consumer
        state_topic.require_topic(self.settings)
        self.tables_in.catch_up(self.tables)
        loaded = self._load()
        self.link = LinkThread(self.config.link, date.fromisoformat(str(self.day)), loaded[0])
        self.link.start()
        log.info(
            "router: %d outbox messages to send again; HKEX session resumes at inbound %d",
            len(loaded[1]),
            loaded[0],
        )
        self._send(loaded[1])

    def _load(self) -> tuple[int, list[FixMessage]]:
        """Rebuild the core from `router.state`: the next inbound MsgSeqNum and the outbox."""
        loaded = state_topic.load(self.settings, self.config.link.comp_id, self.day.isoformat())
        self.core = RouterCore(self.config.core, self.tables)
        self.core.load(loaded.orders, self._committed_requests())
        log.info("router: %d open orders restored", len(loaded.orders))
        return loaded.next_inbound_seq, loaded.outbox

    def _committed_requests(self) -> dict[int, int]:
        assert self._consumer is not None
        name = self.settings.topic("orders.requests")
        metadata = self._consumer.list_topics(name, timeout=COMMITTED_TIMEOUT_S)
        tps = [TopicPartition(name, p) for p in metadata.topics[name].partitions]
        committed = self._consumer.committed(tps, timeout=COMMITTED_TIMEOUT_S)
        return {tp.partition: max(tp.offset, 0) for tp in committed}

    def assigned(self, partitions: Sequence[tuple[str, int]], consumer: Any) -> None:
        return None

    def revoked(self, partitions: Sequence[tuple[str, int]]) -> None:
        return None

    def reset(self) -> None:
        """After an abort: the core back to the committed state (the runtime has rewound the
        Kafka inputs); the aborted batch's HKEX messages and dead letters are handled again,
        its outbox tombstones written again, its outbox (never sent) decided again."""
        self._redo_inbound = self._inbound + self._redo_inbound
        self._redo_dead = self._dead + self._redo_dead
        self._sent = self._tombstones + self._sent
        self._inbound, self._dead, self._tombstones, self._fix_out = [], [], [], []
        self._load()

    # ---- the batch ---------------------------------------------------------------------------

    def pending(self) -> bool:
        assert self.link is not None
        if self.link.failure is not None:
            raise RuntimeError("the OCG-C link stopped") from self.link.failure
        self.tables_in.poll(self.tables)
        return bool(
            self.link.has_inbound
            or self.tables_in.dead
            or self._sent
            or self._redo_inbound
            or self._redo_dead
        )

    def handle(self, record: InRecord) -> Iterable[Output]:
        if record.topic == "orders.requests":
            stamped_ms = record.timestamp_ms
            received_ns = stamped_ms * 1_000_000 if stamped_ms > 0 else None
            self.core.request(record.partition, record.offset, record.value, received_ns)
        else:
            self.core.internal_report(record.value)
        return self._take()

    def _take(self) -> list[Output]:
        outputs, fix_out, dirty = self.core.take()
        result = [_out(out) for out in outputs]
        for msg in fix_out:
            result.append(_state(state_topic.outbox_key(msg), state_topic.encode_outbox(msg)))
        self._fix_out.extend(fix_out)
        for order_key, order in dirty:
            value = state_topic.encode_order(order) if order is not None else None
            result.append(_state(state_topic.order_key(order_key), value))
        return result

    def end_batch(self) -> Iterable[Output]:
        assert self.link is not None
        drained, next_inbound = self.link.drain()
        inbound, self._redo_inbound = self._redo_inbound + drained, []
        self._inbound.extend(inbound)
        for seq, msg in inbound:
            self.core.fix_message(seq, msg)
        dead, self._redo_dead = self._redo_dead + self.tables_in.take_dead(), []
        self._dead.extend(dead)
        dead.extend(
            self._fix_dead_letter(seq, msg, e) for seq, msg, e in self.core.take_failed_fix()
        )
        outputs = self._take()
        outputs.extend(_out(letter) for letter in dead)
        outputs.extend(_state(key, None) for key in self._sent)
        self._tombstones.extend(self._sent)
        self._sent = []
        orphan = self.core.min_orphan_seq()
        if orphan is not None:
            next_inbound = min(next_inbound, orphan)
        comp_id, day = self.config.link.comp_id, self.day.isoformat()
        state = state_topic.encode_fix(comp_id, day, next_inbound)
        outputs.append(_state(state_topic.fix_key(comp_id, day), state))
        return outputs

    def committed(self) -> None:
        """The batch is durable: hand its outbox to the session."""
        fix_out = self._fix_out
        self._inbound, self._dead, self._tombstones, self._fix_out = [], [], [], []
        self._send(fix_out)

    def stopping(self) -> Iterable[Output]:
        return ()

    def close(self) -> None:
        if self.link is not None:
            self.link.close()
        self.tables_in.close()

    def _send(self, messages: list[FixMessage]) -> None:
        """Hand committed outbox messages to the session; delete them in the next commit."""
        assert self.link is not None
        self.link.send(messages)
        self._sent.extend(state_topic.outbox_key(msg) for msg in messages)

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


def runner(settings: Settings, config: RouterConfig) -> AgentRunner:
    return AgentRunner(RouterAgent(settings, config), settings, config.agent_config())


def serve(settings: Settings, config: RouterConfig) -> int:
    """Run the router until SIGTERM/SIGINT; the exit status."""
    return runner(settings, config).run()
