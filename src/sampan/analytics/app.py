"""The analytics app (faust-streaming): session statistics and movers of both venues.

Place in the flow: `md.trades` (both venues) and `reference.instruments` → analytics →
`md.stats` (the internal venue's statistics; HKEX's come from omd_ingest, the exchange's own
figures) and `md.movers` (top and bottom 10 per venue); surveillance (`surveillance.shell`)
reads `orders.events`, `fills`, `md.depth` and the same trades and writes `surveillance.alerts`. State: one `AnalyticsState` per venue
and security on the compacted topic `analytics.state`, read to its end at start (with the
streams reader, which ends at the broker's reported end, never at a silence). Faust's own
tables are not used: their changelog recovery could stall for minutes after a SIGKILL here,
and their writes are not tied to the input offsets. Faust creates no topic (all are in the
catalog).

Guarantees: at-least-once, stated plainly. Faust's exactly-once mode is not relied on (its
transaction errors are only logged); instead every output is idempotent. Its consumer reads
committed records only (`committed`): a trade in an aborted transaction is never counted.
Trades are taken in bounded batches; a batch's new states are acknowledged by the broker before the batch's input
offsets can be committed, so a committed offset is always covered by a durable state. A trade
redelivered after a crash is recognised by the input offset its state already holds and counted
once (`stats.apply`); md.stats and md.movers are compacted and keyed deterministically, and
each record is a function of the state alone, so a record written twice changes nothing a
reader of the latest value sees. Money stays integer throughout.

Limits: movers rank the securities this instance holds, so the app runs as one instance (a
second one would split the partitions and rank halves); movers are written at most every
`MOVERS_INTERVAL_S` per venue. Instruments are read to the end at start and followed live.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import faust

from sampan.analytics.committed import CommittedApp
from sampan.analytics.movers import movers
from sampan.analytics.stats import SessionStats, Trade, apply
from sampan.analytics.surveillance.shell import ALERTS, Watch
from sampan.config import Settings
from sampan.schemas.codec import SchemaError, registry
from sampan.streams import profiles
from sampan.streams.reader import read_to_end

log = logging.getLogger("sampan.analytics")

APP_ID = "sampan-analytics"
BATCH_MAX = 500
BATCH_WITHIN_S = 0.1
MOVERS_INTERVAL_S = 0.25
CATCH_UP_TIMEOUT_S = 60.0
COMMIT_EVERY = 200  # records between Faust's offset commits (bounds what a crash replays)
COMMIT_INTERVAL_S = 1.0
SESSION_TIMEOUT_S = 10.0


def instance_id() -> str:
    return os.environ.get("SAMPAN_INSTANCE_ID", "0")


def stats_key(venue: str, security: int) -> str:
    return f"{venue}:{security}"


class Reference:
    """Previous close and enabled flag per security, from reference.instruments."""

    def __init__(self) -> None:
        self.prev_close_e3: dict[int, int] = {}
        self.enabled: dict[int, bool] = {}

    def take(self, record: dict[str, Any]) -> None:
        security = int(record["security"])
        self.prev_close_e3[security] = int(record["prev_close_e3"])
        self.enabled[security] = bool(record["enabled"])

    def load(self, settings: Settings) -> None:
        for message in read_to_end(settings, "reference.instruments", CATCH_UP_TIMEOUT_S):
            if message.value() is None:
                continue
            try:
                self.take(registry().decode("Instrument", message.value()))
            except SchemaError as error:
                log.warning("reference.instruments: skipped an undecodable record: %s", error)


def load_states(settings: Settings) -> dict[str, SessionStats]:
    """Every venue and security's latest state from analytics.state (latest per key wins)."""
    states: dict[str, SessionStats] = {}
    for message in read_to_end(settings, "analytics.state", CATCH_UP_TIMEOUT_S):
        key = message.key().decode()
        if message.value() is None:
            states.pop(key, None)
            continue
        record = registry().decode("AnalyticsState", message.value())
        states[key] = SessionStats.from_state(record)
    return states


def build(settings: Settings) -> faust.App:
    """The app for these settings (topic names carry the deployment's prefix), its state and
    reference read to their ends first (bounded by `CATCH_UP_TIMEOUT_S`)."""
    held = load_states(settings)
    reference = Reference()
    reference.load(settings)
    watch = Watch(settings)
    watch.warm_up()
    log.info("start: %d session states, %d instruments", len(held), len(reference.enabled))
    app = CommittedApp(
        settings.topic(APP_ID),
        store="memory://",
        processing_guarantee="at_least_once",
        topic_allow_declare=False,
        topic_replication_factor=settings.replication_factor,
        broker_commit_every=COMMIT_EVERY,
        broker_commit_interval=COMMIT_INTERVAL_S,
        web_enabled=False,
        # Static membership: a restarted instance takes its partitions back at once instead of
        # waiting for its predecessor's session to expire.
        consumer_group_instance_id=f"{settings.topic(APP_ID)}-{instance_id()}",
        broker_session_timeout=SESSION_TIMEOUT_S,
        **profiles.faust_app(settings),
    )

    def raw_topic(name: str) -> Any:
        return app.topic(
            settings.topic(name), key_type=bytes, value_type=bytes, value_serializer="raw"
        )

    trades_topic = raw_topic("md.trades")
    instruments_topic = raw_topic("reference.instruments")
    state_out = raw_topic("analytics.state")
    stats_out = raw_topic("md.stats")
    movers_out = raw_topic("md.movers")
    alerts_out = raw_topic(ALERTS)
    for name, body in watch.agents(alerts_out).items():
        app.agent(raw_topic(name), name=f"surveillance-{name}")(body)
    movers_sent: dict[str, float] = {}
    movers_dirty: set[str] = set()

    async def follow_instruments(stream: Any) -> None:
        async for value in stream:
            if value is None:
                continue
            try:
                reference.take(registry().decode("Instrument", value))
            except SchemaError as error:
                log.warning("reference.instruments: skipped an undecodable record: %s", error)

    app.agent(instruments_topic)(follow_instruments)

    async def send_movers(venue: str) -> None:
        days = [s.day for s in held.values() if s.venue == venue]
        if not days:
            return
        movers_sent[venue] = time.monotonic()
        movers_dirty.discard(venue)
        ranking = movers(venue, held.values(), reference.enabled, max(days))
        latest = max((s.ts_ns for s in held.values() if s.venue == venue), default=0)
        record = registry().encode("Movers", ranking | {"ts_ns": latest})
        await movers_out.send(key=venue.encode(), value=record)

    async def flush_movers() -> None:
        for venue in sorted(movers_dirty):
            await send_movers(venue)

    app.timer(MOVERS_INTERVAL_S)(flush_movers)

    def take(event: Any) -> SessionStats | None:
        """The new state a trade event gives, or None when it changes nothing."""
        message = event.message
        try:
            record = registry().decode("TradeTick", event.value)
            trade = Trade.from_record(record, message.partition, message.offset)
        except (SchemaError, KeyError, ValueError, TypeError) as error:
            log.warning(
                "md.trades[%d]@%d: skipped an undecodable trade: %s",
                message.partition,
                message.offset,
                error,
            )
            return None
        if trade.qty <= 0 or trade.price_e3 <= 0:
            log.warning("md.trades[%d]@%d: skipped %r", message.partition, message.offset, trade)
            return None
        key = stats_key(trade.venue, trade.security)
        before = held.get(key)
        after = apply(before, trade, reference.prev_close_e3.get(trade.security, 0))
        if after == before:
            return None
        held[key] = after
        return after

    async def on_trades(stream: Any) -> None:
        async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
            changed: dict[str, SessionStats] = {}
            alerts = []
            for event in events:
                message = event.message
                alerts += watch.take("md.trades", message.partition, message.offset, event.value)
                after = take(event)
                if after is not None:
                    changed[stats_key(after.venue, after.security)] = after
            pending = await watch.send(alerts_out, alerts)
            for key, after in changed.items():
                state = registry().encode("AnalyticsState", after.to_state())
                pending.append(await state_out.send(key=key.encode(), value=state))
                if after.venue == "INTERNAL":
                    value = registry().encode("SecurityStats", after.to_record())
                    pending.append(await stats_out.send(key=key.encode(), value=value))
            # The batch's offsets may be committed once this returns: its states must be durable.
            for future in pending:
                await future
            for venue in {after.venue for after in changed.values()}:
                if time.monotonic() - movers_sent.get(venue, 0.0) >= MOVERS_INTERVAL_S:
                    await send_movers(venue)
                else:
                    movers_dirty.add(venue)

    app.agent(trades_topic)(on_trades)
    return app
