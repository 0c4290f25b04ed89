"""The router's pure core: requests in; commands, FIX messages and reports out. No I/O.

Inputs, each applied exactly once by the service (in a Kafka transaction):
- `request(partition, offset, command)`: an OrderCommand from orders.requests;
- `internal_report(report)`: a matcher ExecutionReport from orders.events (exec id `X...`);
- `fix_message(seq, msg)`: an inbound business message of the OCG-C session, in order.
Outputs accumulate in `out` (records), `fix_out` (business messages to send) and `dirty`
(order keys whose state must be persisted); the service takes them after each step.
Each input is all or nothing: one that raises leaves no output and no order change behind
(`_atomic`). `request` and `internal_report` then re-raise (the service dead-letters the
record); `fix_message` keeps the message and its error in `failed_fix` for the service to
dead-letter, and goes on, so one odd HKEX message cannot stop the router for good.

Guarantees: every NEW request gets an answer on orders.events or a venue (a reject is a
REJECTED report with a `RejectReason`, never silence); the ids sent are deterministic
(`ids`); a duplicate-ClOrdID reject from HKEX is "already sent" and changes nothing; an HKEX
execution already applied to an order (same ExecID) is ignored; an execution whose order the
core does not know yet (its request not re-processed after a restart) is parked, bounded by
`ORPHANS_MAX`, and applied when the order appears; `min_orphan_seq` tells the service not to
commit the session's inbound number past it (more than `ORPHANS_MAX` raises `OrphansFull`,
which stops the router: a restart re-processes the requests the orphans wait for).

Limits: AMEND is supported on the internal route only (HKEX and SMART amends are rejected as
UNSUPPORTED); the hold of an amended order follows the matcher's REPLACED report. A rolled
back input keeps the fills it already told `Tables.seen_fill` about (they overstate holds until
the ledger's next snapshot, never understate them). A dead-lettered HKEX execution is missing
from orders.events and fills until an operator replays it; reconciliation with the drop copy
flags it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from sampan.fix.codec import FixMessage
from sampan.fix.messages import (
    BusinessMessageReject,
    ExecType,
    ExecutionReport,
    OrderCancelReject,
)
from sampan.router import hkex as hx
from sampan.router import risk
from sampan.router.ids import (
    Kind,
    Origin,
    hkex_cl_ord_id,
    internal_child_cl_ord_id,
    origin_of,
    parse_hkex_cl_ord_id,
    router_exec_id,
)
from sampan.router.orders import Order, Phase, Route, Status, child_done, traded
from sampan.router.records import Out, command_reject, internal_command
from sampan.router.tables import SeenFill, Tables

log = logging.getLogger(__name__)

ORPHANS_MAX = 10_000
ORD_REJ_DUPLICATE_ORDER = 6  # OCG-C OrdRejReason / CxlRejReason for a reused ClOrdID


@dataclass(frozen=True, slots=True)
class CoreConfig:
    cl_ord_id_base: int = 0
    open_orders_max: int = 100_000
    risk: risk.RiskConfig = field(default_factory=risk.RiskConfig)


class OrphansFull(RuntimeError):
    """More HKEX messages wait for their orders than `ORPHANS_MAX`."""


class RouterCore:
    def __init__(self, config: CoreConfig, tables: Tables) -> None:
        self.config = config
        self.tables = tables
        self.orders: dict[str, Order] = {}
        self.by_member: dict[tuple[str, str], str] = {}  # (account, member ClOrdID) → key
        self.by_internal: dict[tuple[str, str], str] = {}  # (account, ClOrdID on our book) → key
        self.by_hkex: dict[str, str] = {}  # HKEX ClOrdID → key
        self.holds_cents: dict[str, int] = {}
        self.sells: dict[tuple[str, int], int] = {}  # (account, security) → open sell shares
        self.processed: dict[int, int] = {}  # orders.requests partition → next offset handled
        self.orphans: dict[str, list[tuple[int, FixMessage]]] = {}
        self.orphan_count = 0
        self.out: list[Out] = []
        self.fix_out: list[FixMessage] = []
        self.dirty: set[str] = set()
        self.failed_fix: list[tuple[int, FixMessage, str]] = []  # (seq, message, error)
        self._journals: list[dict[str, Order | None]] = []  # per open `_atomic`: key → before

    # ---------------------------------------------------------------- state

    def load(self, orders: Iterable[Order], processed: dict[int, int]) -> None:
        """Restore open orders (from the state topic) and the committed request offsets."""
        for order in orders:
            self._put(order)
        self.processed = dict(processed)
        self.dirty.clear()

    def take(self) -> tuple[list[Out], list[FixMessage], list[tuple[str, Order | None]]]:
        out, fix, dirty = self.out, self.fix_out, sorted(self.dirty)
        self.out, self.fix_out, self.dirty = [], [], set()
        return out, fix, [(key, self.orders.get(key)) for key in dirty]

    def take_failed_fix(self) -> list[tuple[int, FixMessage, str]]:
        failed, self.failed_fix = self.failed_fix, []
        return failed

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        """All or nothing: if the block raises, drop its outputs and restore the orders (and
        parked messages) it changed, then re-raise. Nests (an adopted message inside a request)."""
        marks = len(self.out), len(self.fix_out), len(self.failed_fix)
        parked = {cl: list(msgs) for cl, msgs in self.orphans.items()} if self.orphans else {}
        parked_count = self.orphan_count
        journal: dict[str, Order | None] = {}
        self._journals.append(journal)
        try:
            yield
        except BaseException:
            popped = self._journals.pop()
            assert popped is journal
            del self.out[marks[0] :], self.fix_out[marks[1] :], self.failed_fix[marks[2] :]
            self.orphans, self.orphan_count = parked, parked_count
            for key, before in journal.items():
                self._restore(key, before)
            raise
        popped = self._journals.pop()
        assert popped is journal
        if self._journals:
            for key, before in journal.items():
                self._journals[-1].setdefault(key, before)

    def _restore(self, key: str, before: Order | None) -> None:
        current = self.orders.pop(key, None)
        if current is not None:
            self._account(current, -1)
            self._unindex(current)
        if before is not None:
            self.orders[key] = before
            self._account(before, +1)
            self._index(before)
        self.dirty.add(key)

    def min_orphan_seq(self) -> int | None:
        seqs = [seq for parked in self.orphans.values() for seq, _ in parked]
        return min(seqs) if seqs else None

    def exposure(self, account: str) -> risk.Exposure:
        sells = {s: q for (a, s), q in self.sells.items() if a == account and q}
        for security in {s for (a, s) in self.sells if a == account}:
            sells[security] = sells.get(security, 0) + self.tables.unsettled_sold(account, security)
        holds = self.holds_cents.get(account, 0) + self.tables.unsettled_cost_cents(account)
        return risk.Exposure(holds, sells)

    def _put(self, order: Order) -> None:
        old = self.orders.get(order.key)
        if self._journals:
            self._journals[-1].setdefault(order.key, old)
        if old is not None:
            self._account(old, -1)
            self._unindex(old)
        if order.open:
            self.orders[order.key] = order
            self._account(order, +1)
            self._index(order)
        else:
            self.orders.pop(order.key, None)
        self.dirty.add(order.key)

    def _account(self, order: Order, sign: int) -> None:
        cfg = self.config.risk
        account = order.account
        self.holds_cents[account] = self.holds_cents.get(account, 0) + sign * order.hold_cents(cfg)
        if order.side is not risk.Side.BUY:
            key = (account, order.security)
            self.sells[key] = self.sells.get(key, 0) + sign * order.sell_committed()

    def _index(self, order: Order) -> None:
        self.by_member[(order.account, order.cl_ord_id)] = order.key
        if order.route is Route.INTERNAL:
            self.by_internal[(order.account, order.cl_ord_id)] = order.key
        elif order.route is Route.SMART:
            origin = origin_of(order.key)
            self.by_internal[(order.account, internal_child_cl_ord_id(origin))] = order.key
        for cl in order.hkex_cl_ord_ids:
            self.by_hkex[cl] = order.key

    def _unindex(self, order: Order) -> None:
        self.by_member.pop((order.account, order.cl_ord_id), None)
        self.by_internal.pop((order.account, order.cl_ord_id), None)
        if order.route is Route.SMART:
            child = internal_child_cl_ord_id(origin_of(order.key))
            self.by_internal.pop((order.account, child), None)
        for cl in order.hkex_cl_ord_ids:
            self.by_hkex.pop(cl, None)

    # ---------------------------------------------------------------- requests

    def request(self, partition: int, offset: int, command: dict[str, Any]) -> None:
        """One request; if it raises, it changed nothing and is still taken as handled (the
        service dead-letters it)."""
        origin = Origin(partition, offset)
        try:
            with self._atomic():
                kind = command["kind"]
                if kind == "NEW":
                    self._new(origin, command)
                elif kind == "CANCEL":
                    self._cancel_command(origin, command)
                elif kind == "AMEND":
                    self._amend(origin, command)
                else:
                    self._mass_cancel(origin, command)
        finally:
            self.processed[partition] = offset + 1

    def _reject(
        self, origin: Origin, c: dict[str, Any], reason: risk.RejectReason, text: str
    ) -> None:
        venue = "HKEX" if c["route"] == "HKEX" else "INTERNAL"
        exec_type = "REJECTED" if c["kind"] == "NEW" else "CANCEL_REJECTED"
        self.out.append(
            command_reject(c, router_exec_id(origin), venue, exec_type, str(reason), text)
        )

    def _new(self, origin: Origin, c: dict[str, Any]) -> None:
        account = c["account"]
        if (account, c["cl_ord_id"]) in self.by_member:
            self._reject(origin, c, risk.RejectReason.DUPLICATE_CL_ORD_ID, "ClOrdID is live")
            return
        if len(self.orders) >= self.config.open_orders_max:
            self._reject(origin, c, risk.RejectReason.OPEN_ORDERS_LIMIT, "router full")
            return
        terms = risk.OrderTerms(
            risk.Side(c["side"]), c["security"], c["ord_type"] == "MARKET", c["price_e3"], c["qty"]
        )
        limits = self.tables.accounts.get(account)
        decision = risk.check(
            terms,
            c["member"],
            limits,
            self.tables.instruments.get(c["security"]),
            self.tables.balances.get(account),
            self.exposure(account),
            self.tables.last_e3.get(c["security"]),
            self.config.risk,
        )
        if isinstance(decision, risk.Rejected):
            self._reject(origin, c, decision.reason, decision.text)
            return
        assert limits is not None
        order = Order(
            key=origin.key,
            account=account,
            member=c["member"],
            security=c["security"],
            side=terms.side,
            ord_type=c["ord_type"],
            time_in_force=c["time_in_force"],
            route=Route(c["route"]),
            cl_ord_id=c["cl_ord_id"],
            price_e3=c["price_e3"],
            qty=c["qty"],
            hold_price_e3=decision.hold_price_e3,
            ts_ns=c["ts_ns"],
        )
        if order.route is Route.INTERNAL:
            self.out.append(internal_command(c, limits.stp, parent_id=None))
            self._put(order)
        elif order.route is Route.HKEX:
            cl = hkex_cl_ord_id(self.config.cl_ord_id_base, origin, Kind.NEW)
            self.fix_out.append(hx.new_order(order, cl, order.qty))
            self._put(replace(order, hkex_cl_ord_ids=(cl,)))
            self._adopt(cl)
        else:
            child = internal_child_cl_ord_id(origin)
            self.out.append(
                internal_command(
                    c,
                    limits.stp,
                    cl_ord_id=child,
                    time_in_force="IOC",
                    route="INTERNAL",
                    parent_id=c["cl_ord_id"],
                )
            )
            parent = replace(order, phase=Phase.INTERNAL, status=Status.NEW)
            parent = hx.parent_report(parent, self.out, "NEW", "INTERNAL", c["ts_ns"])
            self._put(parent)

    def _cancel_command(self, origin: Origin, c: dict[str, Any]) -> None:
        key = self.by_member.get((c["account"], c["orig_cl_ord_id"] or ""))
        if key is None:
            self._reject(origin, c, risk.RejectReason.UNKNOWN_ORDER, "no open order")
            return
        self._cancel(self.orders[key], c, c["cl_ord_id"], Kind.CANCEL, origin, 0)

    def _cancel(
        self, order: Order, c: dict[str, Any], cancel_cl: str, kind: Kind, origin: Origin, i: int
    ) -> None:
        order = replace(order, cancel_requested=True, cancel_cl_ord_id=cancel_cl)
        limits = self.tables.accounts.get(order.account)
        stp = limits.stp if limits is not None else "CANCEL_RESTING"
        if order.route is Route.INTERNAL:
            self.out.append(
                internal_command(
                    hx.cancel_command(order, c, cancel_cl), stp, orig_cl_ord_id=order.cl_ord_id
                )
            )
            self._put(order)
        elif order.route is Route.HKEX or order.phase is Phase.HKEX:
            cl = hkex_cl_ord_id(self.config.cl_ord_id_base, origin, kind, i)
            self.fix_out.append(hx.cancel_order(order, cl, c["ts_ns"]))
            self._put(replace(order, hkex_cl_ord_ids=(*order.hkex_cl_ord_ids, cl)))
            self._adopt(cl)
        else:
            # The IOC child on our book ends by itself; the parent then ends CANCELED.
            self._put(order)

    def _mass_cancel(self, origin: Origin, c: dict[str, Any]) -> None:
        security = c["security"]
        targets = sorted(
            (o for o in self.orders.values() if o.account == c["account"]),
            key=lambda o: origin_of(o.key).offset,
        )
        if security:
            targets = [o for o in targets if o.security == security]
        for i, order in enumerate(targets[: hx.MASS_CANCEL_MAX]):
            self._cancel(order, c, f"{c['cl_ord_id']}.{i}", Kind.MASS_CANCEL, origin, i)

    def _amend(self, origin: Origin, c: dict[str, Any]) -> None:
        key = self.by_member.get((c["account"], c["orig_cl_ord_id"] or ""))
        if key is None:
            self._reject(origin, c, risk.RejectReason.UNKNOWN_ORDER, "no open order")
            return
        order = self.orders[key]
        if order.route is not Route.INTERNAL:
            self._reject(origin, c, risk.RejectReason.UNSUPPORTED, "amend on internal only")
            return
        exposure = self.exposure(order.account)
        exposure = replace(
            exposure, holds_cents=exposure.holds_cents - order.hold_cents(self.config.risk)
        )
        terms = risk.OrderTerms(
            order.side, order.security, order.ord_type == "MARKET", c["price_e3"], c["qty"]
        )
        decision = risk.check(
            terms,
            order.member,
            self.tables.accounts.get(order.account),
            self.tables.instruments.get(order.security),
            self.tables.balances.get(order.account),
            exposure,
            self.tables.last_e3.get(order.security),
            self.config.risk,
        )
        if isinstance(decision, risk.Rejected):
            self._reject(origin, c, decision.reason, decision.text)
            return
        limits = self.tables.accounts[order.account]
        self.out.append(internal_command(c, limits.stp, route="INTERNAL"))

    # ---------------------------------------------------------------- internal book reports

    def internal_report(self, r: dict[str, Any]) -> None:
        """A matcher report from orders.events; anything else there is ignored. If it raises,
        it changed nothing."""
        with self._atomic():
            self._internal_report(r)

    def _internal_report(self, r: dict[str, Any]) -> None:
        if r["venue"] != "INTERNAL" or not r["exec_id"].startswith("X"):
            return
        account = r["account"]
        key = self.by_internal.get((account, r["cl_ord_id"]))
        if key is None and r["orig_cl_ord_id"]:
            key = self.by_internal.get((account, r["orig_cl_ord_id"]))
        if key is None:
            return
        order = self.orders[key]
        if order.route is Route.INTERNAL:
            self._put(hx.internal_update(order, r, self._seen))
        else:
            self._child_update(order, r)

    def _seen(self, order: Order, last_px_e3: int, last_qty: int, ts_ns: int) -> None:
        buys = order.side is risk.Side.BUY
        cost = risk.hold_cents(last_px_e3, last_qty, self.config.risk) if buys else 0
        fill = SeenFill(ts_ns, cost, order.security, 0 if buys else last_qty)
        self.tables.seen_fill(order.account, fill)

    def _child_update(self, parent: Order, r: dict[str, Any]) -> None:
        """A report about a SMART parent's IOC child on the internal book."""
        ts_ns = r["ts_ns"]
        if r["exec_type"] == "TRADE":
            parent = traded(parent, r["last_px_e3"], r["last_qty"])
            self._seen(parent, r["last_px_e3"], r["last_qty"], ts_ns)
            parent = hx.parent_report(
                parent, self.out, "TRADE", "INTERNAL", ts_ns, r["last_px_e3"], r["last_qty"]
            )
        if r["ord_status"] in ("FILLED", "CANCELED", "EXPIRED", "REJECTED"):
            parent = self._next_child(parent, Status(r["ord_status"]), ts_ns)
        self._put(parent)
        self.adopt_all()

    def _next_child(self, parent: Order, child_status: Status, ts_ns: int) -> Order:
        was_open = parent.open
        parent, remaining = child_done(parent, child_status)
        if remaining:
            cl = hkex_cl_ord_id(self.config.cl_ord_id_base, origin_of(parent.key), Kind.SMART_CHILD)
            self.fix_out.append(hx.new_order(parent, cl, remaining))
            parent = replace(parent, hkex_cl_ord_ids=(*parent.hkex_cl_ord_ids, cl))
            self.by_hkex[cl] = parent.key
        elif was_open and parent.status in (Status.CANCELED, Status.EXPIRED):
            parent = hx.parent_report(parent, self.out, str(parent.status), "INTERNAL", ts_ns)
        return parent

    # ---------------------------------------------------------------- HKEX

    def fix_message(self, seq: int, msg: FixMessage) -> None:
        """One inbound business message. One the core cannot read or apply (an overfill, a
        status its state machine forbids, a bug) changes nothing and goes to `failed_fix`: the
        session moves past it rather than fail on it again after every restart."""
        try:
            with self._atomic():
                if msg.msg_type == ExecutionReport.MSG_TYPE:
                    self._execution(seq, msg, ExecutionReport.from_fix(msg))
                elif msg.msg_type == OrderCancelReject.MSG_TYPE:
                    self._cancel_reject(seq, msg, OrderCancelReject.from_fix(msg))
                elif msg.msg_type == BusinessMessageReject.MSG_TYPE:
                    self._business_reject(BusinessMessageReject.from_fix(msg))
                else:
                    log.warning("router: ignoring HKEX MsgType %s (seq %d)", msg.msg_type, seq)
        except OrphansFull:
            raise
        except Exception as error:
            log.exception("router: HKEX message seq %d not applied; dead-lettered", seq)
            self.failed_fix.append((seq, msg, f"{type(error).__name__}: {error}"))

    def _lookup(self, *cl_ord_ids: str | None) -> str | None:
        for cl in cl_ord_ids:
            if cl is not None and cl in self.by_hkex:
                return self.by_hkex[cl]
        return None

    def _execution(self, seq: int, msg: FixMessage, er: ExecutionReport) -> None:
        if er.exec_type is ExecType.REJECTED and er.ord_rej_reason == ORD_REJ_DUPLICATE_ORDER:
            # The answer to our own resend after a restart: the first copy reached HKEX.
            log.info("router: ClOrdID %s already sent (seq %d)", er.cl_ord_id, seq)
            return
        key = self._lookup(er.cl_ord_id, er.orig_cl_ord_id)
        if key is None:
            self._orphan_or_drop(seq, msg, er.cl_ord_id)
            return
        order = self.orders[key]
        if er.exec_id in order.exec_ids:
            return  # a replay of an execution already applied
        self._put(hx.hkex_update(order, er, self.out, self._seen))

    def _cancel_reject(self, seq: int, msg: FixMessage, rej: OrderCancelReject) -> None:
        if rej.cxl_rej_reason == ORD_REJ_DUPLICATE_ORDER:
            return
        key = self._lookup(rej.cl_ord_id, rej.orig_cl_ord_id)
        if key is None:
            self._orphan_or_drop(seq, msg, rej.cl_ord_id)
            return
        order = self.orders[key]
        self.out.append(hx.cancel_rejected(order, rej))
        self._put(replace(order, cancel_requested=False, cancel_cl_ord_id=None))

    def _business_reject(self, rej: BusinessMessageReject) -> None:
        key = self._lookup(rej.business_reject_ref_id)
        if key is None or rej.ref_msg_type != "D":
            log.warning("router: HKEX business reject %s", rej)
            return
        order = self.orders[key]
        if order.route is Route.HKEX and order.status is Status.PENDING_NEW:
            self._put(hx.venue_rejected(order, rej, self.out))
        elif order.route is Route.SMART and order.phase is Phase.HKEX and not order.child_cum_qty:
            self._put(self._next_child(order, Status.REJECTED, order.ts_ns))

    def _orphan_or_drop(self, seq: int, msg: FixMessage, cl_ord_id: str) -> None:
        parsed = parse_hkex_cl_ord_id(cl_ord_id)
        if parsed is None or parsed.base != self.config.cl_ord_id_base:
            log.warning("router: HKEX message seq %d for unknown ClOrdID %s", seq, cl_ord_id)
            return
        origin = parsed.origin
        pending = origin.offset >= self.processed.get(origin.partition, 0)
        if not pending and origin.key not in self.orders:
            return  # its order is done: a replay of something already applied
        if self.orphan_count >= ORPHANS_MAX:
            raise OrphansFull(f"more than {ORPHANS_MAX} HKEX messages wait for their orders")
        log.info("router: seq %d for %s waits for its order", seq, cl_ord_id)
        self.orphans.setdefault(cl_ord_id, []).append((seq, msg))
        self.orphan_count += 1

    def _adopt(self, cl_ord_id: str) -> None:
        parked = self.orphans.pop(cl_ord_id, [])
        self.orphan_count -= len(parked)
        for seq, msg in parked:
            self.fix_message(seq, msg)

    def adopt_all(self) -> None:
        """Retry every parked message (after a SMART parent moved on to HKEX)."""
        for cl in [cl for cl in self.orphans if cl in self.by_hkex]:
            self._adopt(cl)
