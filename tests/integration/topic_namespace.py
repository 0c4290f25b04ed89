"""A topic namespace for one integration test: every catalog topic under a fresh prefix,
deleted again afterwards, so a test run leaves the broker's topic list as it found it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sampan import acls, topics_cli
from sampan.config import Settings

DELETE_TIMEOUT_S = 30.0


def new_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}."


def topics_under(current: Settings, prefix: str) -> list[str]:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(current.kafka())
    names = admin.list_topics(timeout=DELETE_TIMEOUT_S).topics
    return sorted(name for name in names if name.startswith(prefix))


def delete_topics_under(
    current: Settings, prefix: str, timeout_s: float = DELETE_TIMEOUT_S
) -> None:
    """Delete every topic whose name starts with ``prefix`` and wait until the broker no
    longer lists them; AssertionError naming what is left after ``timeout_s``."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    assert prefix, "an empty prefix would name every topic on the broker"
    admin = AdminClient(current.kafka())
    deadline = time.monotonic() + timeout_s
    left = topics_under(current, prefix)
    if left:
        futures = admin.delete_topics(left, operation_timeout=timeout_s, request_timeout=timeout_s)
        for name, future in futures.items():
            try:
                future.result(timeout=max(deadline - time.monotonic(), 0.1))
            except KafkaException as error:  # a topic already gone is what we want
                if "UNKNOWN_TOPIC" not in str(error):
                    raise AssertionError(f"deleting {name}: {error}") from error
    while left:
        left = topics_under(current, prefix)
        if not left:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"topics still listed {timeout_s:.0f} s after deleting: {left}")
        time.sleep(0.2)


@contextmanager
def topic_namespace(current: Settings) -> Iterator[str]:
    """Create the catalog under ``current.topic_prefix`` (which must be fresh); yield it;
    delete every topic under it, and on a secured stack the ACLs `apply` made for it, on the
    way out."""
    prefix = current.topic_prefix
    result = topics_cli.apply(current)
    assert not result.drift, result.drift
    try:
        yield prefix
    finally:
        delete_topics_under(current, prefix)
        acls.remove(current)
