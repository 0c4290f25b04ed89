"""`sampan audit access`: the screen's access audit trail as `ui.access` holds it.

Guarantees: each audit id is shown once, in id order, even if the topic holds it twice (ids
rise along the topic, so a record whose id is not above the highest seen is a repeat: see
`ui_bridge/access_relay.py`); memory holds the records kept for the answer only, at most
`KEEP_MAX` (the newest), and the count of the others.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

TOPIC = "ui.access"
KEEP_MAX = 100_000
LOGIN_ACTIONS = frozenset({"login", "logout"})


@dataclass(frozen=True, slots=True)
class AccessEntry:
    partition: int
    offset: int
    record: dict[str, Any]

    @property
    def position(self) -> str:
        return f"{TOPIC}[{self.partition}]@{self.offset}"


def concerns(record: dict[str, Any], user: str) -> bool:
    """Whether a record is about `user`: the session's user, or the name a login (which has
    no session yet) or a logout was for."""
    return record["username"] == user or (
        record["action"] in LOGIN_ACTIONS and record["target"] == user
    )


@dataclass(slots=True)
class AccessTrail:
    """The records of `ui.access` offered in topic order, repeats dropped, for one user or all."""

    user: str | None = None
    keep_max: int = KEEP_MAX
    highest_id: int = 0
    repeats: int = 0
    dropped: int = 0
    kept: deque[AccessEntry] = field(default_factory=deque)

    def offer(self, partition: int, offset: int, record: dict[str, Any]) -> bool:
        """Take one record; False when it repeats an id already passed or is not the user's."""
        audit_id = int(record["audit_id"])
        if audit_id <= self.highest_id:
            self.repeats += 1
            return False
        self.highest_id = audit_id
        if self.user is not None and not concerns(record, self.user):
            return False
        self.kept.append(AccessEntry(partition, offset, record))
        if len(self.kept) > self.keep_max:
            self.kept.popleft()
            self.dropped += 1
        return True

    def entries(self) -> list[AccessEntry]:
        return list(self.kept)


def line(entry: AccessEntry) -> str:
    """One record for people: id, who (and role), what on what, the outcome, from where."""
    r = entry.record
    who = r["username"] or "-"
    if r["role"]:
        who = f"{who} ({r['role']})"
    return (
        f"#{r['audit_id']:<8} {who:<22} {r['action']:<20} {r['target']:<16} "
        f"{r['reason']:<30} from {r['remote']}"
    )
