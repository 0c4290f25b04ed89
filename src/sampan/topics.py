"""The topic catalog: every topic of sampan, who writes it, who reads it, and its policy.

This table is the system map (design.md, "Topics"). `sampan topics apply` creates what is
missing from it and reports drift in what exists; nothing else creates topics, and the brokers
run with `auto.create.topics.enable=false`. Every topic a process consumes has a dead-letter
topic, `<name>.dlq`, for records it cannot decode or process.
"""

from __future__ import annotations

from dataclasses import dataclass

DAY_MS = 24 * 60 * 60 * 1000
NEVER = -1
# A matcher snapshot holds whole books; it may exceed the broker's 1 MiB default record size.
SNAPSHOT_BYTES_MAX = 64 * 1024 * 1024
LARGE_RECORD_TOPICS = frozenset({"matcher.snapshots"})
# The records a Hong Kong broker keeps for years (orders, the router's decisions, their outcomes,
# every execution, the ledger's postings, the drop copy, the screen's access trail, and what could
# not be processed): never expire unless a deployment sets SAMPAN_AUDIT_RETENTION_DAYS
# (`topics apply` reads it).
AUDIT_TOPICS = frozenset(
    {
        "orders.requests",
        "orders.internal",
        "orders.events",
        "router.decisions",
        "fills",
        "ledger.postings",
        "hkex.dropcopy",
        "ui.access",
        "orders.requests.dlq",
        "orders.internal.dlq",
        "orders.events.dlq",
        "fills.dlq",
        "hkex.dropcopy.dlq",
        "reference.instruments.dlq",
        "reference.accounts.dlq",
    }
)


@dataclass(frozen=True, slots=True)
class Topic:
    name: str
    key: str
    value: str  # the Avro record name in sampan/schemas/avsc, or "DeadLetter"
    partitions: int
    cleanup: str  # "delete" or "compact"
    retention_ms: int  # NEVER keeps records forever; ignored by compaction
    min_isr: int  # applied as min(min_isr, replication factor)
    writers: tuple[str, ...]
    readers: tuple[str, ...]

    def configs(self, replication_factor: int, audit_retention_ms: int = NEVER) -> dict[str, str]:
        """The topic-level configs `topics apply` sets and checks for drift. An audit topic
        keeps its records for `audit_retention_ms` (a deployment's choice; never by default)."""
        configs = {
            "cleanup.policy": self.cleanup,
            "min.insync.replicas": str(min(self.min_isr, replication_factor)),
        }
        if self.cleanup == "delete":
            retention_ms = audit_retention_ms if self.name in AUDIT_TOPICS else self.retention_ms
            configs["retention.ms"] = str(retention_ms)
        if self.name in LARGE_RECORD_TOPICS:
            configs["max.message.bytes"] = str(SNAPSHOT_BYTES_MAX)
        return configs


def _topic(
    name: str,
    key: str,
    value: str,
    partitions: int,
    cleanup: str,
    retention_days: int,
    writers: tuple[str, ...],
    readers: tuple[str, ...],
) -> Topic:
    retention_ms = NEVER if retention_days == NEVER else retention_days * DAY_MS
    return Topic(name, key, value, partitions, cleanup, retention_ms, 2, writers, readers)


# Partition counts are scale-out units: securities for the matcher, accounts for router and
# ledger. Three is enough for a two-core node and lets a rebalance move work between instances.
CATALOG: tuple[Topic, ...] = (
    _topic(
        "orders.requests",
        "account",
        "OrderCommand",
        3,
        "delete",
        NEVER,
        ("ui_bridge", "api", "risk"),
        ("router",),
    ),
    _topic(
        "orders.internal",
        "security",
        "OrderCommand",
        3,
        "delete",
        NEVER,
        ("router", "venue_clock"),
        ("matcher",),
    ),
    _topic(
        "orders.events",
        "account",
        "ExecutionReport",
        3,
        "delete",
        NEVER,
        ("matcher", "router"),
        # The matcher reads back what it wrote only in `sampan matcher verify`.
        ("ui_bridge", "router", "audit", "analytics", "matcher"),
    ),
    # Why the router did what it did: every request's checks, route and children, written in the
    # transaction of the router's other outputs.
    _topic(
        "router.decisions",
        "account",
        "RouterDecision",
        3,
        "delete",
        NEVER,
        ("router",),
        ("audit",),
    ),
    _topic(
        "fills",
        "aggressor's account (HKEX: the member's)",
        "Fill",
        3,
        "delete",
        NEVER,
        ("matcher", "router"),
        ("ledger_sink", "recon", "analytics", "router", "matcher", "risk"),
    ),
    _topic(
        "md.depth",
        "venue+security",
        "DepthSnapshot",
        3,
        "compact",
        NEVER,
        ("matcher", "omd_ingest"),
        ("ui_bridge", "analytics"),
    ),
    _topic(
        "md.trades",
        "venue+security",
        "TradeTick",
        3,
        "delete",
        30,
        ("matcher", "omd_ingest"),
        # omd_ingest reads back at start the HKEX trades it committed today.
        ("ui_bridge", "analytics", "router", "omd_ingest", "risk"),
    ),
    _topic(
        "md.stats",
        "venue+security",
        "SecurityStats",
        3,
        "compact",
        NEVER,
        ("omd_ingest", "analytics"),
        ("ui_bridge",),
    ),
    _topic(
        "md.movers",
        "venue",
        "Movers",
        1,
        "compact",
        NEVER,
        ("analytics",),
        ("ui_bridge",),
    ),
    # The analytics app's session statistics, its state: written before the input offsets that
    # produced it are committed, read to the end at start.
    _topic(
        "analytics.state",
        "venue+security",
        "AnalyticsState",
        3,
        "compact",
        NEVER,
        ("analytics",),
        ("analytics",),
    ),
    # Unusual activity the analytics app's rules find: keyed by a deterministic alert id, so an
    # alert raised again after a redelivery or a restart replaces itself.
    _topic(
        "surveillance.alerts",
        "alert id",
        "SurveillanceAlert",
        1,
        "compact",
        NEVER,
        ("analytics",),
        ("ui_bridge",),
    ),
    _topic(
        "reference.instruments",
        "security",
        "Instrument",
        1,
        "compact",
        NEVER,
        ("deploy seed", "omd_ingest"),
        ("all",),
    ),
    _topic(
        "reference.accounts",
        "account",
        "Account",
        1,
        "compact",
        NEVER,
        ("admin api", "ui_bridge"),
        ("router", "ledger_sink", "ui_bridge", "risk"),
    ),
    _topic(
        "hkex.dropcopy",
        "exec id",
        "DropCopyExecution",
        3,
        "delete",
        NEVER,
        ("dropcopy",),
        ("recon", "dropcopy"),
    ),
    _topic(
        "recon.breaks",
        "exec id",
        "ReconBreak",
        1,
        "compact",
        NEVER,
        ("recon",),
        ("ui_bridge (ops)", "alerts", "recon"),
    ),
    _topic(
        "ledger.balances",
        "account",
        "AccountSnapshot",
        3,
        "compact",
        NEVER,
        ("ledger_sink",),
        ("ui_bridge", "router", "risk"),
    ),
    # Live risk: every account marked to market on every price move (rate-bounded per
    # account); also the risk process's own state, read back at start.
    _topic(
        "risk.marks",
        "account",
        "AccountMark",
        3,
        "compact",
        NEVER,
        ("risk",),
        ("ui_bridge", "risk"),
    ),
    _topic(
        "risk.alerts",
        "account",
        "RiskAlert",
        1,
        "delete",
        NEVER,
        ("risk",),
        ("ui_bridge", "operators"),
    ),
    # A cut-loss breach blocks an account's orders that add risk until a risk officer
    # re-enables it (`sampan risk enable`, the screen's risk view).
    _topic(
        "risk.controls",
        "account",
        "RiskControl",
        1,
        "compact",
        NEVER,
        ("risk", "ui_bridge"),
        ("router", "risk", "ui_bridge"),
    ),
    # Every journal entry of the ledger (a posted fill or a cash movement, all its transfers),
    # relayed exactly once from the ledger's transactional outbox: the ledger rebuilds from it.
    _topic(
        "ledger.postings",
        "entry ref",
        "LedgerEntry",
        3,
        "delete",
        NEVER,
        ("ledger_sink",),
        ("audit", "ledger_sink"),
    ),
    # The screen's access audit trail (logins, logouts, refusals with their reason), relayed from
    # its database by row id after each row is committed; the screen reads the tail back to
    # know where to resume (ui_bridge.access_relay).
    _topic(
        "ui.access",
        "audit id",
        "AccessAudit",
        1,
        "delete",
        NEVER,
        ("ui_bridge",),
        ("audit", "ui_bridge"),
    ),
    _topic(
        "router.state",
        "order:<partition>.<offset> | fix:<CompID>:<day>",
        "RouterState",
        1,
        "compact",
        NEVER,
        ("router",),
        ("router",),
    ),
    _topic(
        "matcher.snapshots",
        "partition",
        "MatcherSnapshot",
        1,
        "compact",
        NEVER,
        ("matcher",),
        ("matcher",),
    ),
)

# Topics whose readers dead-letter what they cannot process.
_CONSUMED = (
    "orders.requests",
    "orders.internal",
    "orders.events",
    "fills",
    "hkex.dropcopy",
    "reference.instruments",
    "reference.accounts",
)
DEAD_LETTERS: tuple[Topic, ...] = tuple(
    _topic(
        f"{name}.dlq",
        "original key",
        "DeadLetter",
        1,
        "delete",
        NEVER,
        ("any agent",),
        ("operators",),
    )
    for name in _CONSUMED
)

ALL: tuple[Topic, ...] = CATALOG + DEAD_LETTERS
BY_NAME: dict[str, Topic] = {topic.name: topic for topic in ALL}


def topic(name: str) -> Topic:
    """The catalog entry of `name`; an unknown name is a programmer error."""
    assert name in BY_NAME, f"topic {name!r} is not in the catalog"
    return BY_NAME[name]


def dead_letter_of(name: str) -> str:
    """The dead-letter topic for records read from `name`."""
    dlq = f"{name}.dlq"
    assert dlq in BY_NAME, f"topic {name!r} has no dead-letter topic in the catalog"
    return dlq
