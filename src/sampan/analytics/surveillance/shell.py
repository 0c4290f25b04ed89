"""Surveillance inside the analytics app: the rules' state rebuilt at start, then fed live.

At start (`Watch.warm_up`), each input topic is read from the first record of the last
`lookback_s` seconds (the broker's time index) to the end it reports, the records of all four
topics are merged by their own time and given to the rules in that order, and the alerts they
raise are written and acknowledged before the app goes live. Every record before that point is
marked taken, so the app's Faust agents, which resume at the group's committed offsets, pass over
what the warm-up saw and go on from there (`detector.Surveillance` skips a record at or below the
offset taken).

Guarantees: at-least-once like the rest of the app, and what a reader sees is exactly-once:
an alert's id is a function of its evidence (see `model`), `surveillance.alerts` is compacted
and keyed by it, and a batch's alerts are acknowledged by the broker before the batch's input
offsets can be committed. A restart in the middle of a pattern sees the whole pattern again (the
warm-up reaches back `lookback_s`), so it raises the alert once more under the same id rather
than missing it or raising a second one. Limits: a record that does not decode is logged with its
place and skipped; the warm-up reads at most `WARM_UP_RECORDS_MAX` records a topic (the rest
arrive live), within `WARM_UP_TIMEOUT_S` a topic.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from sampan.analytics.surveillance.detector import INPUTS, Surveillance, decode
from sampan.analytics.surveillance.model import Alert, Event, Thresholds
from sampan.config import Settings
from sampan.errors import SampanError
from sampan.schemas.codec import registry
from sampan.streams import profiles
from sampan.streams.reader import read_to_end

log = logging.getLogger("sampan.analytics.surveillance")

WARM_UP_RECORDS_MAX = 200_000
WARM_UP_TIMEOUT_S = 60.0
METADATA_TIMEOUT_S = 30.0
BATCH_MAX = 500
BATCH_WITHIN_S = 0.1
ALERTS = "surveillance.alerts"
# The order in which records of the same instant are applied: the book before the orders.
_RANK = {"md.depth": 0, "orders.events": 1, "fills": 2, "md.trades": 3}


def encode(alert: Alert) -> tuple[bytes, bytes]:
    return alert.alert_id.encode(), registry().encode("SurveillanceAlert", alert.to_record())


class Watch:
    def __init__(self, settings: Settings, limits: Thresholds | None = None) -> None:
        self.settings = settings
        self.limits = limits if limits is not None else Thresholds.from_env()
        self.rules = Surveillance(self.limits)

    def take(self, topic: str, partition: int, offset: int, value: bytes | None) -> list[Alert]:
        """The alerts one live record raises (none for one already taken or undecodable)."""
        try:
            return self.rules.take(topic, partition, offset, value)
        except ValueError as error:
            log.warning("%s[%d]@%d: skipped: %s", topic, partition, offset, error)
            return []

    def warm_up(self) -> int:
        """Rebuild the rules from the last `lookback_s` of the inputs and write the alerts they
        raise; the number of records read."""
        since_ms = time.time_ns() // 1_000_000 - self.limits.lookback_s * 1000
        merged: list[tuple[int, int, int, int, Event]] = []
        for topic in INPUTS:
            merged += self._read(topic, since_ms)
        merged.sort(key=lambda item: item[:4])
        alerts: dict[str, Alert] = {}
        for *_, event in merged:
            for alert in self.rules.apply(event):
                alerts[alert.alert_id] = alert
        self._write(alerts.values())
        log.info(
            "surveillance: %d records of the last %d s read, %d alerts raised again",
            len(merged),
            self.limits.lookback_s,
            len(alerts),
        )
        return len(merged)

    def _read(self, topic: str, since_ms: int) -> list[tuple[int, int, int, int, Event]]:
        name = self.settings.topic(topic)
        starts, stops = self._window(name, since_ms)
        out: list[tuple[int, int, int, int, Event]] = []
        for partition, start in starts.items():
            self.rules.mark(topic, partition, start - 1)
        reading = {p: s for p, s in starts.items() if s < stops[p]}
        if not reading:
            return out
        records = read_to_end(
            self.settings, topic, WARM_UP_TIMEOUT_S, starts=reading, stop_before=stops
        )
        for message in records:
            if message.value() is None:
                continue
            place = (topic, message.partition(), message.offset())
            try:
                event = decode(topic, message.value())
            except ValueError as error:
                log.warning("%s[%d]@%d: skipped: %s", *place, error)
                self.rules.mark(*place)
                continue
            self.rules.mark(*place)
            out.append((event.ts_ns, _RANK[topic], message.partition(), message.offset(), event))
            if len(out) >= WARM_UP_RECORDS_MAX:
                log.warning(
                    "%s: warm-up stopped at %d records; the rest arrive live", name, len(out)
                )
                break
        return out

    def _window(self, name: str, since_ms: int) -> tuple[dict[int, int], dict[int, int]]:
        """Per partition, the first offset at or after `since_ms` and the end offset."""
        group = f"sampan-surveillance-{uuid.uuid4().hex[:8]}"
        consumer = Consumer(profiles.end_reader(self.settings, group))
        try:
            metadata = consumer.list_topics(name, timeout=METADATA_TIMEOUT_S)
            if name not in metadata.topics or metadata.topics[name].error is not None:
                raise SampanError(f"topic {name} does not exist or has no leader")
            partitions = sorted(metadata.topics[name].partitions)
            asked = [TopicPartition(name, p, since_ms) for p in partitions]
            found = consumer.offsets_for_times(asked, timeout=METADATA_TIMEOUT_S)
            starts: dict[int, int] = {}
            stops: dict[int, int] = {}
            for tp in found:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(name, tp.partition), timeout=METADATA_TIMEOUT_S
                )
                start = tp.offset if tp.offset >= 0 else high
                starts[tp.partition] = max(start, low)
                stops[tp.partition] = high
            return starts, stops
        finally:
            consumer.close()

    def _write(self, alerts: Iterable[Alert]) -> None:
        producer = Producer(profiles.producer(self.settings))
        topic = self.settings.topic(ALERTS)
        for alert in alerts:
            key, value = encode(alert)
            producer.produce(topic, value, key)
            producer.poll(0)
        if producer.flush(METADATA_TIMEOUT_S):
            raise SampanError(f"{topic}: alerts not acknowledged within {METADATA_TIMEOUT_S:.0f} s")

    async def send(self, out: Any, alerts: list[Alert]) -> list[Awaitable[Any]]:
        """Hand `alerts` to the Faust topic `out`; the caller awaits the futures returned before
        its batch's offsets may be committed."""
        pending = []
        for alert in alerts:
            key, value = encode(alert)
            log.info("alert %s: %s", alert.alert_id, alert.detail)
            pending.append(await out.send(key=key, value=value))
        return pending

    def agents(self, out: Any) -> dict[str, Callable[[Any], Awaitable[None]]]:
        """One Faust agent body per live input besides md.trades (the app's statistics agent
        reads that one and hands its records here)."""

        def agent(topic: str) -> Callable[[Any], Awaitable[None]]:
            async def run(stream: Any) -> None:
                async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
                    alerts: list[Alert] = []
                    for event in events:
                        message = event.message
                        alerts += self.take(topic, message.partition, message.offset, event.value)
                    for future in await self.send(out, alerts):
                        await future

            return run

        return {topic: agent(topic) for topic in INPUTS if topic != "md.trades"}
