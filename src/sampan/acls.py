"""The broker's access control lists, generated from the topic catalog.

Every principal (`credentials.PRINCIPALS`) may write the topics the catalog names it a writer
of, read those it names it a reader of, and use only its own consumer groups and transactional
ids (by prefix). Catalog roles that are not processes map onto principals here
(`ROLE_PRINCIPALS`): "all" is every process, a dead-letter topic's "any agent" is every reader
of the topic it serves, and the operator's roles are `admin`, the super user. The audit command
reads every topic it exports. Nothing else grants a right, and the broker allows nothing that
no ACL allows (`allow.everyone.if.no.acl.found=false`).

Guarantees: `apply` creates what is missing and reports, without removing it, any other
grant on the resources the catalog names (drift). Limits: groups and transactional ids named by
prefix, as each process names them (`GROUPS`, `TRANSACTIONAL_IDS`); a process that names a new
one needs a line here, or the broker refuses it (which a test shows at once).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sampan import topics
from sampan.config import Settings
from sampan.credentials import ADMIN, PRINCIPALS
from sampan.errors import StackError
from sampan.streams import profiles

ADMIN_TIMEOUT_S = 30.0
PROCESSES: tuple[str, ...] = tuple(p for p in PRINCIPALS if p != ADMIN)
# Catalog roles that are not a process of their own.
ROLE_PRINCIPALS: dict[str, tuple[str, ...]] = {
    "all": PROCESSES,
    "ui_bridge (ops)": ("ui_bridge",),
    "api": (ADMIN,),
    "admin api": (ADMIN,),
    "deploy seed": (ADMIN,),
    "operators": (ADMIN,),
    # The internal venue's schedule (`sampan venue-clock`) is the operator's: it runs as admin.
    "venue_clock": (ADMIN,),
    "alerts": (ADMIN,),
}
AUDIT_EXCLUDED = frozenset({"matcher.snapshots"})  # books, not records; `audit export` skips it

# Consumer groups and transactional ids by prefix: (prefix, whether it carries the topic prefix).
GROUPS: dict[str, tuple[tuple[str, bool], ...]] = {
    "router": (("sampan-router", True), ("sampan-router-tables-", False)),
    "matcher": (("sampan-matcher", True),),
    "ledger_sink": (("ledger_sink", True), ("ledger-bench-", True)),
    "dropcopy": (("dropcopy-", True),),
    "recon": (("recon", True),),
    "omd_ingest": (("omd-ingest.", True),),
    "ui_bridge": (("sampan-ui-", False),),
    "analytics": (("sampan-analytics", True),),
    "risk": (("sampan-risk-", False),),
    "audit": (("sampan-audit-", False),),
}
TRANSACTIONAL_IDS: dict[str, tuple[tuple[str, bool], ...]] = {
    "router": (("sampan-router-", True),),
    "matcher": (("sampan-matcher-", True),),
    "dropcopy": (("dropcopy-", True),),
    "omd_ingest": (("omd-ingest.", True),),
    "ledger_sink": (("sampan-ledger-relay-", True),),
    "risk": (("sampan-risk-", True),),
}
# Every process reads tables to their end with the streams reader's throwaway groups.
READER_GROUP = "sampan-reader-"


@dataclass(frozen=True, slots=True, order=True)
class Grant:
    principal: str
    resource: str  # "topic", "group" or "transactional_id"
    name: str
    pattern: str  # "literal" or "prefixed"
    operation: str  # "read" or "write"

    def describe(self) -> str:
        return (
            f"User:{self.principal} {self.operation} {self.resource} {self.name} ({self.pattern})"
        )


def principals_of(role: str) -> tuple[str, ...]:
    """The principals a catalog writer or reader name stands for."""
    if role in ROLE_PRINCIPALS:
        return ROLE_PRINCIPALS[role]
    assert role in PRINCIPALS, f"catalog role {role!r} is neither a principal nor mapped"
    return (role,)


def _readers(topic: topics.Topic) -> set[str]:
    readers = {p for role in topic.readers for p in principals_of(role)}
    if topic.name not in AUDIT_EXCLUDED:
        readers.add("audit")
    return readers


def _writers(topic: topics.Topic) -> set[str]:
    if topic.name.endswith(".dlq"):
        source = topics.topic(topic.name.removesuffix(".dlq"))
        # The processes that read a topic dead-letter what they cannot process; the audit
        # command only reports.
        return {p for role in source.readers for p in principals_of(role)} - {"audit"}
    return {p for role in topic.writers for p in principals_of(role)}


def grants(prefix: str) -> list[Grant]:
    """Every grant the catalog implies for topics under `prefix` (admin needs none)."""
    out: set[Grant] = set()
    for topic in topics.ALL:
        name = prefix + topic.name
        for principal in _writers(topic) - {ADMIN}:
            out.add(Grant(principal, "topic", name, "literal", "write"))
        for principal in _readers(topic) - {ADMIN}:
            out.add(Grant(principal, "topic", name, "literal", "read"))
    for principal in PROCESSES:
        out.add(Grant(principal, "group", READER_GROUP, "prefixed", "read"))
        for group, prefixed in GROUPS.get(principal, ()):
            out.add(
                Grant(principal, "group", (prefix if prefixed else "") + group, "prefixed", "read")
            )
        for tid, prefixed in TRANSACTIONAL_IDS.get(principal, ()):
            name = (prefix if prefixed else "") + tid
            out.add(Grant(principal, "transactional_id", name, "prefixed", "write"))
    return sorted(out)


def topics_of(principal: str, operation: str, prefix: str = "") -> list[str]:
    """The topics `principal` may read or write (for tests and `sampan topics list`)."""
    return [
        g.name
        for g in grants(prefix)
        if g.principal == principal and g.resource == "topic" and g.operation == operation
    ]


def kafka_acls_commands(prefix: str) -> list[str]:
    """The grants as Apache Kafka's own `kafka-acls.sh` commands, for the operator of a cluster
    where the venue's admin may not create ACLs itself (`sampan topics acls`)."""
    option = {"topic": "--topic", "group": "--group", "transactional_id": "--transactional-id"}
    lines = []
    for g in grants(prefix):
        pattern = " --resource-pattern-type prefixed" if g.pattern == "prefixed" else ""
        lines.append(
            f"kafka-acls.sh --bootstrap-server $BOOTSTRAP --command-config admin.properties "
            f"--add --allow-principal User:{g.principal} --operation {g.operation.title()} "
            f"{option[g.resource]} {g.name}{pattern}"
        )
    return lines


# ---------------------------------------------------------------------------------------------
# On the broker


def _binding(grant: Grant) -> Any:
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    resource = {
        "topic": ResourceType.TOPIC,
        "group": ResourceType.GROUP,
        "transactional_id": ResourceType.TRANSACTIONAL_ID,
    }[grant.resource]
    pattern = {"literal": ResourcePatternType.LITERAL, "prefixed": ResourcePatternType.PREFIXED}
    operation = {"read": AclOperation.READ, "write": AclOperation.WRITE}[grant.operation]
    return AclBinding(
        resource,
        grant.name,
        pattern[grant.pattern],
        f"User:{grant.principal}",
        "*",
        operation,
        AclPermissionType.ALLOW,
    )


def _key(binding: Any) -> tuple[str, ...]:
    return (
        binding.restype.name,
        binding.name,
        binding.resource_pattern_type.name,
        binding.principal,
        binding.host,
        binding.operation.name,
        binding.permission_type.name,
    )


@dataclass(frozen=True, slots=True)
class AclResult:
    created: int
    present: int
    drift: list[str]
    enabled: bool  # False: the cluster has no authorizer (a PLAINTEXT local stack)


def _no_authorizer(error: Exception) -> bool:
    """A broker without an authorizer (a PLAINTEXT local stack) answers ACL requests so."""
    return "SECURITY_DISABLED" in str(error) or "no authorizer" in str(error).lower()


def _existing(admin: Any) -> list[Any] | None:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import (
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    everything = AclBindingFilter(
        ResourceType.ANY,
        None,
        ResourcePatternType.ANY,
        None,
        None,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    try:
        found: list[Any] = admin.describe_acls(everything, request_timeout=ADMIN_TIMEOUT_S).result(
            timeout=ADMIN_TIMEOUT_S
        )
    except KafkaException as error:
        if _no_authorizer(error):
            return None
        raise StackError(f"cannot describe ACLs: {error}") from None
    return found


def _wait_applied(admin: Any, keys: set[tuple[str, ...]]) -> list[Any]:
    """Wait until the broker's authorizer holds every binding in `keys` (CreateAcls answers
    once the change is in the metadata log, a moment before the broker applies it), so a
    client started right after `apply` is let in."""
    deadline = time.monotonic() + ADMIN_TIMEOUT_S
    while True:
        existing = _existing(admin) or []
        lacking = keys - {_key(b) for b in existing}
        if not lacking:
            return existing
        if time.monotonic() > deadline:
            raise StackError(
                f"{len(lacking)} ACLs not in force {ADMIN_TIMEOUT_S:.0f} s after creating them"
            )
        time.sleep(0.1)


def apply(current: Settings, admin: Any | None = None) -> AclResult:
    """Create the catalog's grants under `current.topic_prefix` that the broker lacks; report
    any other grant on the same resources as drift (it is left for an operator)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = admin or AdminClient(profiles.admin(current))
    existing = _existing(admin)
    if existing is None:
        return AclResult(0, 0, [], enabled=False)
    wanted = {_key(_binding(g)): g for g in grants(current.topic_prefix)}
    have = {_key(b) for b in existing}
    missing = [_binding(g) for key, g in wanted.items() if key not in have]
    if missing:
        futures = admin.create_acls(missing, request_timeout=ADMIN_TIMEOUT_S)
        for binding, future in futures.items():
            try:
                future.result(timeout=ADMIN_TIMEOUT_S)
            except KafkaException as error:
                if _no_authorizer(error):
                    return AclResult(0, 0, [], enabled=False)
                raise StackError(f"creating ACL {binding} failed: {error}") from None
        existing = _wait_applied(admin, set(wanted))
    managed = {(k[0], k[1], k[2]) for k in wanted}
    drift = sorted(
        f"{b.principal} {b.permission_type.name} {b.operation.name} on {b.restype.name} "
        f"{b.name} ({b.resource_pattern_type.name}): not in the catalog"
        for b in existing
        if (_key(b)[0], _key(b)[1], _key(b)[2]) in managed and _key(b) not in wanted
    )
    return AclResult(len(missing), len(wanted) - len(missing), drift, enabled=True)


def remove(current: Settings, names: Iterable[str] | None = None) -> int:
    """Delete the catalog's grants on topics, groups and transactional ids under
    `current.topic_prefix` (a test's namespace when it is done); returns how many went."""
    from confluent_kafka.admin import AclBindingFilter, AdminClient

    assert current.topic_prefix, "an empty prefix would remove the venue's own ACLs"
    admin = AdminClient(profiles.admin(current))
    chosen = [
        g
        for g in grants(current.topic_prefix)
        if g.name.startswith(current.topic_prefix) and (names is None or g.name in names)
    ]
    filters = []
    for grant in chosen:
        b = _binding(grant)
        filters.append(
            AclBindingFilter(
                b.restype,
                b.name,
                b.resource_pattern_type,
                b.principal,
                b.host,
                b.operation,
                b.permission_type,
            )
        )
    if not filters:
        return 0
    from confluent_kafka import KafkaException

    futures = admin.delete_acls(filters, request_timeout=ADMIN_TIMEOUT_S)
    removed = 0
    for future in futures.values():
        try:
            removed += len(future.result(timeout=ADMIN_TIMEOUT_S))
        except KafkaException as error:
            if _no_authorizer(error):
                return 0
            raise StackError(f"deleting ACLs failed: {error}") from None
    return removed
