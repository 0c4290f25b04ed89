"""What an auditor asks of the topics: which records tell one order's story, or one account's.

Pure: records come in decoded, with where they were read (topic, partition, offset); the
answers are `Entry` values in time order. No Kafka here (`audit_scan` reads the topics).

An order's story is found by following the ids its records carry, from the id the auditor
gave (a ClOrdID, an order id, a command id or a SMART parent's `P…` id):
- an OrderCommand links its `command_id`, `cl_ord_id`, `orig_cl_ord_id` and `parent_id`;
- a RouterDecision links the same, its `order_id` (a SMART parent's) and its children's
  ClOrdIDs; it is also found by the order a child cancels (a MASS_CANCEL's decision is found
  by each order it cancels but links none of them to each other);
- an ExecutionReport links `order_id`, `cl_ord_id`, `orig_cl_ord_id`, `parent_id`, and makes
  its `exec_id` known so the fill, the drop copy and the reconciliation of a trade are found;
- a Fill, a ledger entry (`ledger.postings`), a DropCopyExecution and a ReconBreak belong to
  the story when their exec id (or, for a fill, this side's order id or parent) is known; a fill never pulls in the other side's
  order (that is the counterparty's story).
Ids grow as records are read, and a record may name an id learnt only from a later topic
(a SMART child command precedes the parent's report that names the child), so `OrderTrail`
is fed the topics again until a pass learns nothing new (`PASSES_MAX` passes at most).

Limits: ids are matched as strings across accounts; a ClOrdID reused by two accounts (they
are unique per account and day only) finds both, unless the auditor names the account.
`ENTRIES_MAX` bounds what one answer holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sampan.market.money import format_cents, format_price_e3

PASSES_MAX = 4
ENTRIES_MAX = 100_000

# The order in which the topics are read, and how records of the same nanosecond are ordered.
ORDER_TOPICS: tuple[str, ...] = (
    "orders.requests",
    "router.decisions",
    "orders.internal",
    "orders.events",
    "fills",
    "ledger.postings",
    "hkex.dropcopy",
    "recon.breaks",
)
ACCOUNT_TOPICS: tuple[str, ...] = (
    "orders.requests",
    "orders.events",
    "fills",
    "ledger.postings",
    "ledger.balances",
)
_TOPIC_RANK = {name: rank for rank, name in enumerate((*ORDER_TOPICS, "ledger.balances"))}


class AuditError(Exception):
    """An auditor's question that cannot be answered as asked (too large, unknown)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One record of a story, with where it was read."""

    topic: str
    partition: int
    offset: int
    ts_ns: int
    record: Mapping[str, Any]

    @property
    def position(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"

    def sort_key(self) -> tuple[int, int, int, int]:
        return (self.ts_ns, _TOPIC_RANK.get(self.topic, 99), self.partition, self.offset)


def _ids(record: Mapping[str, Any], *names: str) -> set[str]:
    return {str(value) for name in names if (value := record.get(name))}


def _record_ts_ns(topic: str, record: Mapping[str, Any]) -> int:
    if topic == "hkex.dropcopy":
        return int(record.get("sending_time_ns", 0))
    return int(record.get("ts_ns", 0))


@dataclass
class OrderTrail:
    """The records of one order's story, found by following ids (see the module header)."""

    start: str
    account: str | None = None
    ids: set[str] = field(default_factory=set)
    exec_ids: set[str] = field(default_factory=set)
    found: dict[tuple[str, int, int], Entry] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ids.add(self.start)

    def _account_ok(self, record: Mapping[str, Any]) -> bool:
        if self.account is None:
            return True
        accounts = _ids(record, "account", "buy_account", "sell_account")
        return not accounts or self.account in accounts

    def offer(self, topic: str, partition: int, offset: int, record: Mapping[str, Any]) -> bool:
        """Take the record if it belongs to the story; return whether it taught a new id."""
        if not self._account_ok(record):
            return False
        learnt: set[str] = set()
        learnt_execs: set[str] = set()
        if topic in ("orders.requests", "orders.internal"):
            links = _ids(record, "command_id", "cl_ord_id", "orig_cl_ord_id", "parent_id")
            if not links & self.ids:
                return False
            learnt = links
        elif topic == "router.decisions":
            children = record.get("children") or []
            links = _ids(record, "command_id", "cl_ord_id", "orig_cl_ord_id", "order_id")
            if record.get("kind") != "MASS_CANCEL":
                links |= {str(c["cl_ord_id"]) for c in children if c.get("cl_ord_id")}
            targets = {str(c["orig_cl_ord_id"]) for c in children if c.get("orig_cl_ord_id")}
            if not (links | targets) & self.ids:
                return False
            learnt = links
        elif topic == "orders.events":
            links = _ids(record, "order_id", "cl_ord_id", "orig_cl_ord_id", "parent_id")
            if not links & self.ids:
                return False
            learnt = links
            learnt_execs = _ids(record, "exec_id")
        elif topic == "fills":
            ours = _ids(record, "buy_order_id", "sell_order_id", "parent_id") & self.ids
            if not ours and not _ids(record, "exec_id") & self.exec_ids:
                return False
            learnt_execs = _ids(record, "exec_id")
        elif topic in ("ledger.postings", "hkex.dropcopy", "recon.breaks"):
            if not _ids(record, "exec_id") & self.exec_ids:
                return False
        else:
            return False
        self._keep(Entry(topic, partition, offset, _record_ts_ns(topic, record), record))
        new = bool(learnt - self.ids or learnt_execs - self.exec_ids)
        self.ids |= learnt
        self.exec_ids |= learnt_execs
        return new

    def _keep(self, entry: Entry) -> None:
        self.found[(entry.topic, entry.partition, entry.offset)] = entry
        if len(self.found) > ENTRIES_MAX:
            raise AuditError(
                f"order {self.start!r} has more than {ENTRIES_MAX} records: is it an id many "
                "orders share? name the account with --account"
            )

    def entries(self) -> list[Entry]:
        return sorted(self.found.values(), key=Entry.sort_key)


@dataclass
class AccountDay:
    """An account's records of one trading day (or of all days when `day_bounds` is None).

    Fills are taken from either side, so a passive seller finds its fills though `fills` is
    keyed by the aggressor's account. Balances keep the last snapshot of the day."""

    account: str
    day_bounds: tuple[int, int] | None = None
    found: list[Entry] = field(default_factory=list)
    closing: Entry | None = None

    def _in_day(self, ts_ns: int) -> bool:
        return self.day_bounds is None or self.day_bounds[0] <= ts_ns < self.day_bounds[1]

    def offer(self, topic: str, partition: int, offset: int, record: Mapping[str, Any]) -> None:
        ts_ns = _record_ts_ns(topic, record)
        if not self._in_day(ts_ns):
            return
        if topic in ("orders.requests", "orders.events"):
            if record.get("account") != self.account:
                return
        elif topic == "fills":
            if self.account not in (record.get("buy_account"), record.get("sell_account")):
                return
        elif topic == "ledger.postings":
            if not any(
                self.account in (p.get("debit_account"), p.get("credit_account"))
                for p in record.get("postings") or []
            ):
                return
        elif topic == "ledger.balances":
            if record.get("account") == self.account and (
                self.closing is None or ts_ns >= self.closing.ts_ns
            ):
                self.closing = Entry(topic, partition, offset, ts_ns, record)
            return
        else:
            return
        self.found.append(Entry(topic, partition, offset, ts_ns, record))
        if len(self.found) > ENTRIES_MAX:
            raise AuditError(
                f"account {self.account!r} has more than {ENTRIES_MAX} records in the range: "
                "narrow it with --day"
            )

    def entries(self) -> list[Entry]:
        return sorted(self.found, key=Entry.sort_key)

    def fills(self) -> list[Entry]:
        return [e for e in self.entries() if e.topic == "fills"]


def _px(price_e3: Any) -> str:
    return format_price_e3(int(price_e3))


def _cents(cents: Any) -> str:
    return format_cents(int(cents))


def summary(entry: Entry) -> str:
    """One line saying what the record is, in an auditor's words (integers formatted exactly)."""
    r = entry.record
    if entry.topic in ("orders.requests", "orders.internal"):
        verb = "request" if entry.topic == "orders.requests" else "to matcher"
        what = f"{verb} {r.get('kind')} {r.get('side')} {r.get('qty')} {r.get('security')}"
        return (
            f"{what} @ {_px(r.get('price_e3', 0))} route {r.get('route')} "
            f"cl_ord_id {r.get('cl_ord_id')} account {r.get('account')}"
        )
    if entry.topic == "router.decisions":
        return _decision(r)
    if entry.topic == "orders.events":
        text = f"{r.get('venue')} {r.get('exec_type')} → {r.get('ord_status')} "
        text += f"order {r.get('order_id') or '-'} cl_ord_id {r.get('cl_ord_id')} "
        if r.get("exec_type") == "TRADE":
            text += f"{r.get('last_qty')} @ {_px(r.get('last_px_e3', 0))} "
        text += f"cum {r.get('cum_qty')} leaves {r.get('leaves_qty')}"
        if r.get("reject_reason"):
            text += f" reason {r.get('reject_reason')}"
        return text
    if entry.topic == "fills":
        return (
            f"fill {r.get('exec_id')} {r.get('venue')} {r.get('qty')} {r.get('security')} @ "
            f"{_px(r.get('price_e3', 0))} buyer {r.get('buy_account')} "
            f"seller {r.get('sell_account')}"
        )
    if entry.topic == "ledger.postings":
        return _ledger(r)
    if entry.topic == "hkex.dropcopy":
        return (
            f"drop copy {r.get('exec_id')} {r.get('exec_type')} {r.get('side')} "
            f"{r.get('last_qty')} @ {_px(r.get('last_px_e3', 0))} seq {r.get('msg_seq_num')}"
        )
    if entry.topic == "recon.breaks":
        return f"recon {r.get('kind')} {r.get('status')} {r.get('exec_id')}: {r.get('detail')}"
    if entry.topic == "ledger.balances":
        return (
            f"balance cash {_cents(r.get('cash_cents', 0))} equity "
            f"{_cents(r.get('equity_cents', 0))} available "
            f"{_cents(r.get('available_cash_cents', 0))}"
        )
    return str(dict(r))


def _decision(r: Mapping[str, Any]) -> str:
    what = "router decision" if r.get("event") == "REQUEST" else "router sends child"
    text = f"{what} {r.get('decision_id')} on {r.get('kind')} cl_ord_id {r.get('cl_ord_id')}: "
    if r.get("outcome") == "REJECTED":
        return text + f"REJECTED {r.get('reject_reason')}: {r.get('text')}"
    text += f"ACCEPTED route {r.get('route') or '-'}"
    if r.get("hold_cents"):
        text += f" hold {_cents(r.get('hold_cents', 0))}"
    return text + (f"; {r.get('text')}" if r.get("text") else "")


def _ledger(r: Mapping[str, Any]) -> str:
    postings = len(r.get("postings") or [])
    m = r.get("movement")
    if m:
        return (
            f"ledger entry {r.get('entry_id')} {r.get('entry_ref')}: cash {m.get('direction')} "
            f"{_cents(m.get('amount_cents', 0))} account {m.get('account')} ({postings} posting)"
        )
    return f"ledger entry {r.get('entry_id')} {r.get('entry_ref')}: fill, {postings} postings"


def _figure(value: Any, unit: str) -> str:
    return f"{value:,} {unit}".rstrip() if isinstance(value, int) else "-"


def details(entry: Entry) -> list[str]:
    """The lines below a record's summary: a decision's checks (each figure against its limit)
    and the children it sent; a ledger entry's postings. Empty for every other record."""
    r = entry.record
    if entry.topic == "ledger.postings":
        return [
            f"posting leg {p.get('leg')}: {p.get('debit_account')} -> {p.get('credit_account')} "
            + (
                f"{_cents(p.get('amount', 0))} HKD"
                if p.get("asset") == "HKD"
                else f"{p.get('amount'):,} shares of {p.get('asset')}"
            )
            for p in r.get("postings") or []
        ]
    if entry.topic != "router.decisions":
        return []
    lines = []
    for c in r.get("checks") or []:
        mark = "pass" if c.get("passed") else "FAIL"
        figures = ""
        if c.get("value") is not None or c.get("limit") is not None:
            unit = c.get("unit") or ""
            figures = (
                f" value {_figure(c.get('value'), unit)} limit {_figure(c.get('limit'), unit)}"
            )
        lines.append(f"check {mark} {c.get('name')}{figures}: {c.get('detail')}")
    for c in r.get("children") or []:
        target = f" of {c.get('orig_cl_ord_id')}" if c.get("orig_cl_ord_id") else ""
        terms = ""
        if c.get("qty"):
            terms = f" {c.get('qty')} @ {_px(c.get('price_e3', 0))} {c.get('time_in_force')}"
        lines.append(f"sent {c.get('venue')} {c.get('action')} {c.get('cl_ord_id')}{target}{terms}")
    return lines


def plain(value: Any) -> Any:
    """A decoded record as JSON can hold it: bytes as hex, at any depth."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def jsonable(entry: Entry) -> dict[str, Any]:
    """The entry as a JSON object: position, time and the whole decoded record (bytes as hex)."""
    record = plain(entry.record)
    return {
        "topic": entry.topic,
        "partition": entry.partition,
        "offset": entry.offset,
        "ts_ns": entry.ts_ns,
        "record": record,
    }


def count_by_topic(entries: Iterable[Entry]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry.topic] = counts.get(entry.topic, 0) + 1
    return counts
