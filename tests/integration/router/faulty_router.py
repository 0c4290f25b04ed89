"""`python -m faulty_router <router flags>`: the router whose transactional producer fails
chosen commits with a retriable error before reaching the broker.

SAMPAN_TEST_COMMIT_ERRORS="<n>:<count>": the n-th `commit_transaction` call (1-based) and the
`count - 1` calls after it raise `_TIMED_OUT` (retriable) instead of committing. The first
injected error writes "injected" to stderr."""

from __future__ import annotations

import os
import sys
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from sampan.router import cli
from sampan.streams import runtime


class FaultyProducer(Producer):  # type: ignore[misc]
    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        first, count = os.environ.get("SAMPAN_TEST_COMMIT_ERRORS", "0:0").split(":")
        self.failing = range(int(first), int(first) + int(count))
        self.commits = 0

    def commit_transaction(self, *args: Any) -> None:
        self.commits += 1
        if self.commits in self.failing:
            print(f"injected retriable commit error {self.commits}", file=sys.stderr, flush=True)
            raise KafkaException(
                KafkaError(KafkaError._TIMED_OUT, "injected by the test", retriable=True)
            )
        super().commit_transaction(*args)


if __name__ == "__main__":
    runtime.Producer = FaultyProducer  # type: ignore[misc]
    raise SystemExit(cli.main())
