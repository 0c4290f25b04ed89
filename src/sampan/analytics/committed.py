"""A Faust app whose Kafka consumer reads committed records only (`read_committed`).

Faust's aiokafka driver reads `read_uncommitted` unless the app runs its exactly-once mode, which
this app does not rely on (see `app`). Read uncommitted, a trade or an order report that the
matcher wrote in a transaction it then aborted (a rewind after a broker restart, a fenced
instance) would be counted in the statistics and judged by the surveillance rules although no
reader of the venue ever sees it. The consumer thread below turns on Faust's own switch for
`read_committed` while the consumer is built, and nothing else: offsets are still committed by
Faust's at-least-once path.

Limits: this leans on two names inside Faust's aiokafka driver (`_create_worker_consumer`,
`_new_consumer_thread`); `tests/integration/analytics/test_analytics_committed.py` fails if a
Faust upgrade changes them so that an aborted trade is counted.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.transport.drivers import aiokafka as driver


class _CommittedThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = self.consumer
        was = consumer.in_transaction
        consumer.in_transaction = True  # Faust builds a read_committed consumer when set
        try:
            return super()._create_worker_consumer(transport)
        finally:
            consumer.in_transaction = was


class _CommittedConsumer(driver.Consumer):
    def _new_consumer_thread(self) -> Any:
        return _CommittedThread(self, loop=self.loop, beacon=self.beacon)


class _CommittedTransport(driver.Transport):
    Consumer = _CommittedConsumer


class CommittedApp(faust.App):
    def _new_transport(self) -> Any:
        return _CommittedTransport(self.conf.broker_consumer, self)
