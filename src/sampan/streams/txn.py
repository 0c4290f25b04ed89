"""The one place sampan drives a Kafka transactional producer: every call bounded, every
retriable error retried, every abortable error aborted.

- Each call (`init_transactions`, `begin_transaction`, `send_offsets_to_transaction`,
  `commit_transaction`, `abort_transaction`) runs through `Liveness.bounded`: if librdkafka does
  not return within the call's timeout plus a grace, the call is abandoned and
  `liveness.CallHung` raised, for the caller to replace the producer (librdkafka #5456:
  `send_offsets_to_transaction` can hang for good after a broker restart); a hung
  `init_transactions` has nothing to fall back on, so the process logs CRITICAL and exits
  (`liveness.EXIT_STALLED`) for its supervisor to restart it.
- A call that fails with a retriable error is repeated on its own (the library's contract:
  repeat the call that failed, not the ones before it) until `retry_for_s` has passed since
  its first failure (a broker restarting can take a minute or more to answer again; each try
  waits up to the call's timeout, and `RETRY_PAUSE_S` between tries); `init_transactions` is
  repeated until `init_timeout_s` has passed (a restarted instance may meet the coordinator
  still aborting its predecessor's transaction, or a broker coming back).
- `commit` returns False after an error that requires an abort: the transaction has been
  aborted (itself retried when retriable) and the caller rewinds its input and state.
- Anything else (a fatal error such as being fenced by a newer instance) raises
  `KafkaException`: the process must stop, not fight its successor.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from sampan.streams.liveness import Liveness

log = logging.getLogger(__name__)

# Fatal producer errors seen after a broker restart, caused by the broker's own abort of our
# timed-out transaction, not by another instance: fenced, or an abort refused as
# INVALID_TXN_STATE because the broker already aborted. The caller takes its transactional id
# over with a new producer (`renew`), a bounded number of times.
FENCED_ERRORS = frozenset(
    {
        KafkaError._FENCED,
        KafkaError.PRODUCER_FENCED,
        KafkaError.INVALID_PRODUCER_EPOCH,
        KafkaError.INVALID_PRODUCER_ID_MAPPING,
        KafkaError.INVALID_TXN_STATE,
    }
)
RETRY_FOR_S = 300.0
RETRY_PAUSE_S = 0.5
INIT_RETRY_PAUSE_S = 1.0

T = TypeVar("T")


def retriable(error: KafkaException) -> bool:
    first = error.args[0] if error.args else None
    return isinstance(first, KafkaError) and first.retriable() and not first.fatal()


def fenced(error: KafkaException) -> bool:
    """The producer was fenced, by the broker's abort of a timed-out transaction or by
    another instance (see `FENCED_ERRORS`)."""
    first = error.args[0] if error.args else None
    return isinstance(first, KafkaError) and first.code() in FENCED_ERRORS


def requires_abort(error: KafkaException) -> bool:
    first = error.args[0] if error.args else None
    return isinstance(first, KafkaError) and first.txn_requires_abort() and not first.fatal()


class Transactions:
    """Drives `producer`'s transactions for the agent `name`; calls are bounded by `liveness`."""

    def __init__(
        self,
        producer: Any,
        name: str,
        liveness: Liveness,
        timeout_s: float = 30.0,
        retry_for_s: float = RETRY_FOR_S,
    ) -> None:
        self.producer = producer
        self.name = name
        self.liveness = liveness
        self.timeout_s = timeout_s
        self.retry_for_s = retry_for_s
        self.retries = 0  # retriable errors met (for tests and metrics)
        self.aborts = 0

    def init(self, init_timeout_s: float) -> None:
        """Fence any earlier instance with this transactional id and abort its transaction.
        Retries retriable errors until `init_timeout_s`; then (or on any other error) raises."""
        deadline = time.monotonic() + init_timeout_s
        while True:
            remaining_s = max(deadline - time.monotonic(), 1.0)
            try:
                self.liveness.bounded(
                    "init_transactions",
                    functools.partial(self.producer.init_transactions, remaining_s),
                    remaining_s,
                )
                return
            except KafkaException as error:
                if not retriable(error) or time.monotonic() >= deadline:
                    raise
                self.retries += 1
                log.warning("%s: init_transactions: retriable error: %s", self.name, error)
                time.sleep(INIT_RETRY_PAUSE_S)

    def begin(self) -> None:
        self._retrying("begin_transaction", self.producer.begin_transaction)

    def commit(self, offsets: Sequence[TopicPartition] = (), group_metadata: Any = None) -> bool:
        """Send `offsets` (if any) and commit. True if committed; False if the transaction
        needed an abort and was aborted (the caller rewinds). Raises on anything else."""
        timeout_s = self.timeout_s
        try:
            if offsets:
                self._retrying(
                    "send_offsets_to_transaction",
                    lambda: self.producer.send_offsets_to_transaction(
                        list(offsets), group_metadata, timeout_s
                    ),
                )
            self._retrying(
                "commit_transaction", lambda: self.producer.commit_transaction(timeout_s)
            )
        except KafkaException as error:
            if not requires_abort(error):
                raise
            log.warning("%s: aborting the transaction: %s", self.name, error)
            self.abort()
            return False
        return True

    def abort(self) -> None:
        self.aborts += 1
        timeout_s = self.timeout_s
        self._retrying("abort_transaction", lambda: self.producer.abort_transaction(timeout_s))

    def _retrying(self, what: str, call: Callable[[], T]) -> T:
        first_failure: float | None = None
        attempt = 0
        while True:
            attempt += 1
            try:
                return self.liveness.bounded(what, call, self.timeout_s, abandon=True)
            except KafkaException as error:
                now = time.monotonic()
                first_failure = now if first_failure is None else first_failure
                if not retriable(error) or now - first_failure >= self.retry_for_s:
                    raise
                self.retries += 1
                log.warning(
                    "%s: %s: retriable error (attempt %d, retrying for %.0f s more): %s",
                    self.name,
                    what,
                    attempt,
                    self.retry_for_s - (now - first_failure),
                    error,
                )
                time.sleep(RETRY_PAUSE_S)
