"""`sampan topics list | apply | render`: print the catalog, create what is missing and report
drift, or print the catalog as Strimzi `KafkaTopic` resources (`topics_render`).

`apply` never changes an existing topic: a partition count or config that differs from the
catalog is reported as drift (exit status 1) for an operator to decide on. On a cluster with an
authorizer it also creates the ACLs the catalog implies (`sampan.acls`) and reports any other
grant on the same resources as drift; it removes none.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from typing import Any

from sampan import acls, topics, topics_render
from sampan.config import Settings, settings
from sampan.errors import ConfigError, StackError
from sampan.streams import profiles

ADMIN_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class ApplyResult:
    created: list[str]
    unchanged: list[str]
    drift: list[str]
    acls: acls.AclResult | None = None


def audit_retention_ms() -> int:
    """The audit topics' retention: SAMPAN_AUDIT_RETENTION_DAYS, else never expire."""
    raw = os.environ.get("SAMPAN_AUDIT_RETENTION_DAYS", "").strip()
    if not raw:
        return topics.NEVER
    if not raw.isdigit() or int(raw) == 0:
        raise ConfigError(
            f"SAMPAN_AUDIT_RETENTION_DAYS={raw!r}: a whole number of days above 0, or unset "
            "to keep the audit topics forever"
        )
    return int(raw) * topics.DAY_MS


def _policy(topic: topics.Topic) -> str:
    if topic.cleanup == "compact":
        return "compact"
    if topic.retention_ms == topics.NEVER:
        return "delete, never expire"
    return f"delete, {topic.retention_ms // topics.DAY_MS} d"


def render_table() -> str:
    header = ("topic", "key", "value", "parts", "policy", "written by", "read by")
    rows = [
        (
            t.name,
            t.key,
            t.value,
            str(t.partitions),
            _policy(t),
            ", ".join(t.writers),
            ", ".join(t.readers),
        )
        for t in topics.ALL
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _wait_visible(admin: Any, names: list[str]) -> None:
    """Wait until the broker's metadata shows every created topic with a leader on each
    partition: a CreateTopics answer can come before a busy broker's metadata shows the topic,
    and a client started right after `apply` must find it."""
    from confluent_kafka import KafkaException

    deadline = time.monotonic() + ADMIN_TIMEOUT_S
    waiting = set(names)
    while waiting:
        try:
            listed = admin.list_topics(timeout=ADMIN_TIMEOUT_S).topics
        except KafkaException:
            listed = {}
        waiting = {
            name
            for name in waiting
            if name not in listed
            or listed[name].error is not None
            or any(p.leader < 0 for p in listed[name].partitions.values())
        }
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise StackError(
                f"created topics not visible with leaders within {ADMIN_TIMEOUT_S:.0f} s: "
                f"{', '.join(sorted(waiting))}"
            )
        time.sleep(0.2)


def apply(current: Settings) -> ApplyResult:
    """Create missing catalog topics; compare existing ones with the catalog."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

    admin = AdminClient(profiles.admin(current))
    try:
        existing = admin.list_topics(timeout=ADMIN_TIMEOUT_S).topics
    except KafkaException as error:
        raise StackError(f"cannot list topics on {current.kafka_bootstrap}: {error}") from None
    rf = current.replication_factor
    audit_ms = audit_retention_ms()
    missing = [t for t in topics.ALL if current.topic(t.name) not in existing]
    created: list[str] = []
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(current.topic(t.name), t.partitions, rf, config=t.configs(rf, audit_ms))
                for t in missing
            ],
            operation_timeout=ADMIN_TIMEOUT_S,
            request_timeout=ADMIN_TIMEOUT_S,
        )
        for name, future in futures.items():
            try:
                future.result(timeout=ADMIN_TIMEOUT_S)
            except KafkaException as error:
                if "TOPIC_ALREADY_EXISTS" not in str(error):
                    raise StackError(f"creating topic {name} failed: {error}") from None
            created.append(name)
        _wait_visible(admin, created)
    present = [t for t in topics.ALL if current.topic(t.name) in existing]
    drift: list[str] = []
    if present:
        resources = [ConfigResource(ResourceType.TOPIC, current.topic(t.name)) for t in present]
        described = admin.describe_configs(resources, request_timeout=ADMIN_TIMEOUT_S)
        configs_by_name = {
            res.name: fut.result(timeout=ADMIN_TIMEOUT_S) for res, fut in described.items()
        }
        for t in present:
            name = current.topic(t.name)
            partitions = len(existing[name].partitions)
            if partitions != t.partitions:
                drift.append(f"{name}: {partitions} partitions, catalog says {t.partitions}")
            actual = configs_by_name[name]
            for key, wanted in t.configs(rf, audit_ms).items():
                value = actual[key].value if key in actual else None
                if value != wanted:
                    drift.append(f"{name}: {key}={value}, catalog says {wanted}")
    unchanged = [current.topic(t.name) for t in present]
    granted = acls.apply(current, admin)
    drift += [f"acl: {line}" for line in granted.drift]
    return ApplyResult(created=created, unchanged=unchanged, drift=drift, acls=granted)


def create_scratch_topic(current: Settings, name: str) -> None:
    """A benchmark's scratch topic outside the catalog (one partition), created here so that
    topics are still created in one module; waits until the broker lists it."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(profiles.admin(current))
    futures = admin.create_topics(
        [NewTopic(name, 1, current.replication_factor)], operation_timeout=ADMIN_TIMEOUT_S
    )
    futures[name].result(timeout=ADMIN_TIMEOUT_S)
    deadline = time.monotonic() + ADMIN_TIMEOUT_S
    while name not in admin.list_topics(timeout=ADMIN_TIMEOUT_S).topics:
        if time.monotonic() > deadline:
            raise StackError(f"scratch topic {name} not visible within {ADMIN_TIMEOUT_S:.0f} s")
        time.sleep(0.2)


def _run(args: argparse.Namespace) -> int:
    if args.action == "list":
        print(render_table())
        return 0
    if args.action == "acls":
        for line in acls.kafka_acls_commands(settings().topic_prefix):
            print(line)
        return 0
    if args.action == "render":
        if args.replicas < 1:
            raise ConfigError(f"--replicas {args.replicas}: at least 1")
        resources = topics_render.kafka_topics(
            settings().topic_prefix, args.cluster, args.replicas, audit_retention_ms()
        )
        print(topics_render.to_yaml(resources), end="")
        return 0
    result = apply(settings())
    for name in result.created:
        print(f"created  {name}")
    print(
        f"{len(result.created)} created, {len(result.unchanged)} already present, {len(result.drift)} drift"
    )
    if result.acls is not None and result.acls.enabled:
        print(f"acls: {result.acls.created} created, {result.acls.present} already present")
    elif result.acls is not None:
        print("acls: the cluster has no authorizer (a PLAINTEXT stack): none applied")
    for line in result.drift:
        print(f"drift    {line}")
    return 1 if result.drift else 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "topics",
        help="print the topic catalog, or create missing topics and report drift",
        description=(
            "`list` prints the topic catalog (name, key, value schema, partitions, policy, writers, "
            "readers). `apply` creates the topics that are missing on SAMPAN_KAFKA_BOOTSTRAP and "
            "reports, without changing them, topics whose partitions or configs differ from the "
            "catalog (exit status 1 when there is drift). `render` prints the catalog as Strimzi "
            "KafkaTopic resources (YAML, names with SAMPAN_TOPIC_PREFIX, audit retention from "
            "SAMPAN_AUDIT_RETENTION_DAYS) for `kubectl apply -f -`. On a cluster with an "
            "authorizer `apply` also creates the ACLs the catalog implies (one principal per "
            "process) and reports other grants on the same resources as drift; `acls` prints them "
            "as kafka-acls.sh commands for a cluster run by someone else."
        ),
    )
    parser.add_argument("action", choices=("list", "apply", "render", "acls"))
    parser.add_argument(
        "--cluster",
        default="sampan",
        help="render: the Strimzi Kafka cluster's name (label strimzi.io/cluster; default %(default)s)",
    )
    parser.add_argument(
        "--replicas",
        type=int,
        default=3,
        help="render: replication factor (default %(default)s; min ISR is min(2, this))",
    )
    parser.set_defaults(handler=_run)
