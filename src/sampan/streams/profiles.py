"""Kafka client profiles: every option that matters, set once, for each kind of use.

Guarantees: every producer in sampan is built from `producer` or `transactional_producer`, so
every writer of a topic is idempotent, waits for all in-sync replicas and uses the same
partitioner (`PARTITIONER`, the Java client's murmur2): a key lands on the same partition
whichever process or tool writes it, so one account's requests keep their order. A test
checks that no `Producer` is configured any other way. Options a caller passes are added to
the profile; the partitioner cannot be overridden.

Every consumer is built from one of the consumer profiles (`group_consumer`, `follower`,
`end_reader`, `lookup`) and every admin client from `admin`, so an option every client needs
(security, for one) is set here once. The same test fails on a `Consumer`, `Producer` or
`AdminClient` configured any other way, and on a `Settings.kafka` call outside this module.
"""

from __future__ import annotations

from typing import Any

from sampan.config import Settings

PARTITIONER = "murmur2_random"  # the Java client's partitioner, so keys land alike everywhere


def producer(settings: Settings, *, linger_ms: int = 5, **options: Any) -> dict[str, Any]:
    """An idempotent producer that waits for every in-sync replica: for writers outside a
    Kafka transaction (reference data, cash movements, the screen's orders, market data)."""
    assert "partitioner" not in options, "every writer uses PARTITIONER"
    return settings.kafka(
        **{
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": linger_ms,
            "partitioner": PARTITIONER,
            **options,
        }
    )


def transactional_producer(
    settings: Settings,
    transactional_id: str,
    *,
    transaction_timeout_ms: int,
    linger_ms: int = 1,
    **options: Any,
) -> dict[str, Any]:
    """The producer of an exactly-once loop: its outputs and input offsets commit together."""
    return producer(
        settings,
        linger_ms=linger_ms,
        **{
            "transactional.id": transactional_id,
            "max.in.flight.requests.per.connection": 5,
            "transaction.timeout.ms": transaction_timeout_ms,
            "message.timeout.ms": transaction_timeout_ms,
            # Nagle's algorithm holds a small request behind an unacknowledged one (up to the
            # 40 ms delayed ACK); with several requests per transaction that showed up as
            # commit stalls: commit p99 ≈ 20 ms with it, ≈ 4 ms without, at 1,000 commands/s.
            "socket.nagle.disable": True,
            # A transaction's first AddOffsetsToTxn often meets CONCURRENT_TRANSACTIONS while
            # the previous commit's markers are still being written; the default 100 ms backoff
            # then stalls the whole pipeline. Retry soon, backing off exponentially to 100 ms.
            "retry.backoff.ms": 2,
            "retry.backoff.max.ms": 100,
            "queue.buffering.max.messages": 100_000,
            **options,
        },
    )


def group_consumer(
    settings: Settings,
    group: str,
    instance_id: str | None,
    *,
    session_timeout_ms: int,
    **options: Any,
) -> dict[str, Any]:
    """A group member that stores and commits its offsets itself, only once its outputs are
    durable (in the exactly-once loop's transaction, or after the ledger's rows), and reads
    only committed records. With an `instance_id` it is a static member."""
    config: dict[str, Any] = {
        "group.id": group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "isolation.level": "read_committed",
        "auto.offset.reset": "earliest",
        "session.timeout.ms": session_timeout_ms,
        "max.poll.interval.ms": 300_000,
        "partition.assignment.strategy": "range",
        # A fetch is a long poll that the broker answers as soon as a record is readable
        # (for read_committed: as soon as the last stable offset moves), so a long wait
        # adds no latency. A short one makes every idle consumer send a fetch every few
        # milliseconds; measured on the 2-core stack, 10 ms → 100 ms cut the broker's young
        # GCs (25-60 ms pauses each, which stall every transaction) about threefold.
        "fetch.wait.max.ms": 100,
        "socket.nagle.disable": True,
    }
    if instance_id is not None:
        # Static membership: a restarted instance takes its predecessor's partitions at
        # once instead of waiting for the session timeout.
        config["group.instance.id"] = f"{group}-{instance_id}"
    return settings.kafka(**{**config, **options})


def follower(settings: Settings, group: str, **options: Any) -> dict[str, Any]:
    """A reader of committed records that keeps following them: assigned by hand (or
    subscribed under a group of its own), committing nothing; its positions live elsewhere
    or nowhere. `group` only names the client."""
    return settings.kafka(
        **{
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            # A long poll costs no latency (see `group_consumer`) and spares the broker.
            "fetch.wait.max.ms": 100,
            "socket.nagle.disable": True,
            **options,
        }
    )


def end_reader(settings: Settings, group: str, **options: Any) -> dict[str, Any]:
    """A `follower` told when it reaches the end the broker reports (an end-of-partition
    event: transaction markers take offsets too, so "last offset + 1 == end" is no test of
    having read everything), fetching in large batches: tables, snapshots, state, audits."""
    return follower(
        settings,
        group,
        **{
            "enable.partition.eof": True,
            "fetch.max.bytes": 128 * 1024 * 1024,
            "max.partition.fetch.bytes": 128 * 1024 * 1024,
            **options,
        },
    )


def lookup(settings: Settings, group: str) -> dict[str, Any]:
    """A consumer that reads no records: topic metadata, watermarks, offsets for times and a
    group's committed offsets (`group` is the group looked at, or only names the client)."""
    return settings.kafka(**{"group.id": group, "enable.auto.commit": False})


def admin(settings: Settings, **options: Any) -> dict[str, Any]:
    """An admin client: topics, configs, metadata."""
    return settings.kafka(**options)


def faust_app(settings: Settings) -> dict[str, Any]:
    """The Kafka options of a faust-streaming app (aiokafka, not librdkafka): the brokers,
    the same security as every other client, writes acknowledged by every in-sync replica,
    a new group reading from the start."""
    return {
        "broker": [f"kafka://{server}" for server in settings.kafka_bootstrap.split(",")],
        "broker_credentials": faust_credentials(settings),
        "producer_acks": -1,
        "consumer_auto_offset_reset": "earliest",
    }


def faust_credentials(settings: Settings) -> Any:
    """The same security as every librdkafka client, for faust-streaming's aiokafka clients:
    a `faust.SASLCredentials` over TLS with the settings' CA, or None on a PLAINTEXT stack."""
    config = settings.kafka()
    protocol = str(config.get("security.protocol", "PLAINTEXT")).upper()
    if protocol == "PLAINTEXT":
        return None
    assert protocol == "SASL_SSL", f"faust clients support SASL_SSL here, not {protocol}"
    import ssl

    import faust

    context = ssl.create_default_context(cafile=config.get("ssl.ca.location"))
    return faust.SASLCredentials(
        username=config["sasl.username"],
        password=config["sasl.password"],
        ssl_context=context,
        mechanism=str(config.get("sasl.mechanism") or config.get("sasl.mechanisms")),
    )
