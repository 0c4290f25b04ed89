"""The router's pure core: requests in; commands, FIX messages and reports out. No I/O.

Inputs, each applied exactly once by the service (in a Kafka transaction):
- `request(partition, offset, record, received_ns)`: an OrderCommand from orders.requests,
  made a typed request (or refused with a reason) by `mapping` before anything else looks at
  it;
- `internal_report(record)`: a matcher ExecutionReport from orders.events (exec id `X...`),
  read as a typed `mapping.BookReport`;
- `fix_message(seq, msg)`: an inbound business message of the OCG-C session, or a
  session-level Reject, in order.
Outputs accumulate in `out` (records), `fix_out` (business messages to send) and `dirty`
(order keys whose state must be persisted); the service takes them after each step. The
helpers in `hkex` return what they decided; only this module appends to the outputs.
Each input is all or nothing: one that raises leaves no output and no order change behind
(`_atomic`). `request` and `internal_report` then re-raise (the service dead-letters the
record); `fix_message` keeps the message and its error in `failed_fix` for the service to
dead-letter, and goes on, so one odd HKEX message cannot stop the router for good.

Every request also gets one decision record on router.decisions (`decisions`: the checks
made with their figures, the outcome, the route and the children sent), among the request's
own outputs; a SMART parent's HKEX remainder gets one when it is sent.

Guarantees: every request gets an answer on orders.events or a venue (a reject is a REJECTED
or CANCEL_REJECTED report with a `RejectReason`, never silence; a MASS_CANCEL that matches no
order it has not already asked to cancel is answered NOTHING_TO_CANCEL, and never sends a
second cancel for an order whose cancel is pending); a CANCEL is answered under its own
ClOrdID, by the order's CANCELED report or by a CANCEL_REJECTED (no such open order, a cancel
already pending, or too late: the order filled, expired or was rejected first, which the router
says itself for HKEX and SMART orders); the ids sent are deterministic (`ids`); a
duplicate-ClOrdID reject from HKEX is "already sent" and changes nothing; an HKEX execution
already applied to an order (same ExecID) is ignored; an execution whose order the core does
not know yet (its request not re-processed after a restart) is parked, bounded by
`ORPHANS_MAX`, and applied when the order appears; `min_orphan_seq` tells the service not to
commit the session's inbound number past it (more than `ORPHANS_MAX` raises `OrphansFull`,
which stops the router: a restart re-processes the requests the orphans wait for).

ClOrdIDs are unique per account per Hong Kong trading day (`market.calendar` of the
request's `ts_ns`): a NEW, AMEND or CANCEL whose ClOrdID a live order of the account holds, or any order
of the account used today (its NEW, its amends, its cancels), is rejected as
DUPLICATE_CL_ORD_ID. Per account rather than per member because an account is the key of
orders.requests: all of an account's requests are in one partition, in one order, so the
check is the same on every replay and still holds if the router is ever split by partition;
a member's accounts may span partitions. (HKEX's own per-firm rule is kept by the numeric
ClOrdIDs the router derives for it.) Finished orders are kept, without their ExecIDs, until a
request of a later day arrives, and persisted like open ones, so a restart remembers them; at
most `CoreConfig.done_max` of them (past that NEWs are refused, never a ClOrdID forgotten).

A SMART parent ends whatever its children do: its HKEX remainder is an enhanced limit (see
`hkex`), and a child that HKEX rejects, expires or cancels, by an ExecutionReport, a
BusinessMessageReject or a session-level Reject, ends the parent (`orders.child_done`) and
releases its hold. HKEX losing an order (a cancel answered "unknown order") ends it as
CANCELED by the venue, with reason VENUE_UNKNOWN_ORDER and an ERROR log for operators; HKEX
losing its whole session (the link's `EXCHANGE_RESET`) ends every order held there the same
way.

Limits: AMEND is supported on the internal route only (HKEX and SMART amends are rejected as
UNSUPPORTED); the hold of an amended order follows the matcher's REPLACED report. A rolled
back input keeps the fills it already told `Tables.seen_fill` about (they overstate holds until
their `fills` records are read, never understate them). A dead-lettered HKEX execution is missing
from orders.events and fills until an operator replays it; reconciliation with the drop copy
flags it. A request stamped in the first minute of a new day (a sender's clock may run a
minute ahead) ends the previous day's ClOrdID memory for every account a minute early.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from sampan.fix.codec import TAG_SENDING_TIME, FixMessage, parse_utc_timestamp
from sampan.fix.messages import (
    TAG_CL_ORD_ID,
    TAG_REF_MSG_TYPE,
    BusinessMessageReject,
    CxlRejResponseTo,
    ExecType,
    ExecutionReport,
    OrderCancelReject,
    OrdStatus,
)
from sampan.fix.session_types import MSG_REJECT, TAG_SESSION_REJECT_REASON
from sampan.market.calendar import trading_day
from sampan.market.parties import RISK_AGENT_USER
from sampan.market.side import Side
from sampan.router import decisions, risk
from sampan.router import hkex as hx
from sampan.router.ids import (
    Kind,
    Origin,
    hkex_cl_ord_id,
    internal_child_cl_ord_id,
    origin_of,
    parent_order_id,
    parse_hkex_cl_ord_id,
    router_exec_id,
)
from sampan.router.mapping import (
    AmendRequest,
    BookReport,
    CancelRequest,
    MassCancelRequest,
    NewOrder,
    Refused,
    Request,
    book_report_from,
    request_from,
)
from sampan.router.orders import (
    Order,
    Phase,
    Route,
    Status,
    child_done,
    member_ids,
    traded,
)
from sampan.router.records import Out, command_reject, ended_exec_type, internal_command
from sampan.router.tables import SeenFill, Tables
from sampan.schemas import records

log = logging.getLogger(__name__)


DUPLICATE = risk.RejectReason.DUPLICATE_CL_ORD_ID


def hk_day(ts_ns: int) -> int:
    """The Hong Kong trading day of `ts_ns` as an ordinal (an order's `day`)."""
    return trading_day(ts_ns).toordinal()


ORPHANS_MAX = 10_000
_BLOCKED_TEXT = (
    "cut-loss breached (marked to market): orders that add risk are refused until re-enabled"
)
_BLOCKED = (risk.Check(str(risk.RejectReason.CUT_LOSS_BREACHED), False, detail=_BLOCKED_TEXT),)
ORD_REJ_DUPLICATE_ORDER = 6  # OCG-C OrdRejReason / CxlRejReason for a reused ClOrdID
CXL_REJ_UNKNOWN_ORDER = 1  # CxlRejReason: the exchange does not know the order
MSG_NEW_ORDER_SINGLE = "D"
MSG_ORDER_CANCEL_REQUEST = "F"


@dataclass(frozen=True, slots=True)
class CoreConfig:
    cl_ord_id_base: int = 0
    open_orders_max: int = 100_000
    done_max: int = 1_000_000  # finished orders remembered for the day (their ClOrdIDs)
    risk: risk.RiskConfig = field(default_factory=risk.RiskConfig)


class OrphansFull(RuntimeError):
    """More HKEX messages wait for their orders than `ORPHANS_MAX`."""


class RouterCore:
    def __init__(self, config: CoreConfig, tables: Tables) -> None:
        self.config = config
        self.tables = tables
        self.orders: dict[str, Order] = {}  # open orders by key
        self.done: dict[str, Order] = {}  # finished orders of the day (ClOrdID memory)
        self.day = 0  # the latest Hong Kong day a request was stamped with
        self.by_member: dict[tuple[str, str], str] = {}  # (account, live ClOrdID) → key
        self.used: dict[tuple[str, str], str] = {}  # (account, any ClOrdID of an order) → key
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
        self._draft: decisions.Draft | None = None  # the decision on the request being handled

    # ---------------------------------------------------------------- state

    def load(self, orders: Iterable[Order], processed: dict[int, int]) -> None:
        """Restore open and finished orders (from the state topic) and the committed request
        offsets."""
        for order in orders:
            self._put(replace(order, member_cl_ord_ids=tuple(order.member_cl_ord_ids)))
            self.day = max(self.day, order.day)
        self.processed = dict(processed)
        self.dirty.clear()

    def take(self) -> tuple[list[Out], list[FixMessage], list[tuple[str, Order | None]]]:
        out, fix, dirty = self.out, self.fix_out, sorted(self.dirty)
        self.out, self.fix_out, self.dirty = [], [], set()
        return out, fix, [(key, self._get(key)) for key in dirty]

    def take_failed_fix(self) -> list[tuple[int, FixMessage, str]]:
        failed, self.failed_fix = self.failed_fix, []
        return failed

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        """All or nothing: if the block raises, drop its outputs and restore the orders (and
        parked messages) it changed, then re-raise. Nests (an adopted message inside a request)."""
        marks = len(self.out), len(self.fix_out), len(self.failed_fix)
        parked = {cl: list(msgs) for cl, msgs in self.orphans.items()} if self.orphans else {}
        parked_count, day = self.orphan_count, self.day
        journal: dict[str, Order | None] = {}
        self._journals.append(journal)
        try:
            yield
        except BaseException:
            popped = self._journals.pop()
            assert popped is journal
            del self.out[marks[0] :], self.fix_out[marks[1] :], self.failed_fix[marks[2] :]
            self.orphans, self.orphan_count, self.day = parked, parked_count, day
            for key, before in journal.items():
                self._restore(key, before)
            raise
        popped = self._journals.pop()
        assert popped is journal
        if self._journals:
            for key, before in journal.items():
                self._journals[-1].setdefault(key, before)

    def _get(self, key: str) -> Order | None:
        order = self.orders.get(key)
        return order if order is not None else self.done.get(key)

    def _restore(self, key: str, before: Order | None) -> None:
        self._remove(key)
        if before is not None:
            self._insert(before)
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
        """Store the order's new state: open, or finished (kept for its ClOrdIDs, without
        the ExecIDs only an open order needs). An order that ends here with a member's cancel
        still unanswered answers it (`_cancel_left`)."""
        before = self._get(order.key)
        if self._journals:
            self._journals[-1].setdefault(order.key, before)
        self._remove(order.key)
        self._insert(order if order.open else replace(order, exec_ids=()))
        self.dirty.add(order.key)
        if before is not None and before.open and not order.open:
            self._cancel_left(order)

    def _cancel_left(self, order: Order) -> None:
        """The order just ended with a member's cancel pending. A CANCELED end answered it
        (that report carries the cancel's ClOrdID); any other end (filled, expired, rejected)
        makes it too late, and the router says so: an internal-route order's cancel is
        answered by the matcher, but HKEX's answer to a cancel of an order that has ended
        finds no order here any more, and a SMART parent's cancel may never leave the router
        (its internal child ends by itself)."""
        if (
            order.cancel_cl_ord_id is None
            or order.route is Route.INTERNAL
            or order.status is Status.CANCELED
        ):
            return
        self.out.append(hx.cancel_too_late(order, router_exec_id(origin_of(order.key), 1)))

    def _forget(self, key: str) -> None:
        """Drop a finished order of an earlier day (its ClOrdIDs may be used again)."""
        if self._journals:
            self._journals[-1].setdefault(key, self._get(key))
        self._remove(key)
        self.dirty.add(key)

    def _remove(self, key: str) -> None:
        current = self.orders.pop(key, None)
        if current is not None:
            self._account(current, -1)
        else:
            current = self.done.pop(key, None)
        if current is not None:
            self._unindex(current)

    def _insert(self, order: Order) -> None:
        if order.open:
            self.orders[order.key] = order
            self._account(order, +1)
        else:
            self.done[order.key] = order
        self._index(order)

    def _account(self, order: Order, sign: int) -> None:
        cfg = self.config.risk
        account = order.account
        self.holds_cents[account] = self.holds_cents.get(account, 0) + sign * order.hold_cents(cfg)
        if order.side is not Side.BUY:
            key = (account, order.security)
            self.sells[key] = self.sells.get(key, 0) + sign * order.sell_committed()

    def _index(self, order: Order) -> None:
        account, key = order.account, order.key
        for cl in member_ids(order):
            self.used[(account, cl)] = key
        if not order.open:
            return
        self.by_member[(account, order.cl_ord_id)] = key
        if order.route is Route.INTERNAL:
            self.by_internal[(account, order.cl_ord_id)] = key
        elif order.route is Route.SMART:
            self.by_internal[(account, internal_child_cl_ord_id(origin_of(key)))] = key
        for cl in order.hkex_cl_ord_ids:
            self.by_hkex[cl] = key

    def _unindex(self, order: Order) -> None:
        """Remove the order's entries (not those a later order with the same ids now owns)."""
        account, key = order.account, order.key
        entries: list[tuple[dict[Any, str], Any]] = [
            (self.used, (account, cl)) for cl in member_ids(order)
        ]
        entries += [(self.by_member, (account, order.cl_ord_id))]
        entries += [(self.by_internal, (account, order.cl_ord_id))]
        if order.route is Route.SMART:
            child = internal_child_cl_ord_id(origin_of(key))
            entries.append((self.by_internal, (account, child)))
        entries += [(self.by_hkex, cl) for cl in order.hkex_cl_ord_ids]
        for index, entry in entries:
            if index.get(entry) == key:
                del index[entry]

    # ---------------------------------------------------------------- requests

    def request(
        self, partition: int, offset: int, record: dict[str, Any], received_ns: int | None = None
    ) -> None:
        """One OrderCommand record (`received_ns`: the time Kafka stamped it, when known). If
        it raises, it changed nothing and is still taken as handled (the service
        dead-letters it)."""
        origin = Origin(partition, offset)
        try:
            with self._atomic():
                req = request_from(record, received_ns)
                draft = decisions.Draft(origin, req.request if isinstance(req, Refused) else req)
                self._draft = draft
                if isinstance(req, Refused):
                    self._reject(origin, req.request, req.reason, req.text)
                else:
                    self._new_day(hk_day(req.ts_ns))
                    self._request(origin, req)
                self.out.append(decisions.record(draft))
        finally:
            self._draft = None
            self.processed[partition] = offset + 1

    @property
    def draft(self) -> decisions.Draft:
        """The decision being made; only a request has one (a programmer error otherwise)."""
        assert self._draft is not None, "no request is being decided"
        return self._draft

    def _request(self, origin: Origin, req: Request) -> None:
        if isinstance(req, NewOrder):
            self._new(origin, req)
        elif isinstance(req, CancelRequest):
            self._cancel_request(origin, req)
        elif isinstance(req, AmendRequest):
            self._amend(origin, req)
        else:
            assert isinstance(req, MassCancelRequest), req
            self._mass_cancel(origin, req)

    def _new_day(self, day: int) -> None:
        """A request of a later day: yesterday's ClOrdIDs may be used again."""
        if day <= self.day:
            return
        self.day = day
        for key in [key for key, order in self.done.items() if order.day < day]:
            self._forget(key)

    def _reject(
        self,
        origin: Origin,
        req: Request,
        reason: risk.RejectReason,
        text: str,
        checks: tuple[risk.Check, ...] = (),
    ) -> None:
        self.draft.reject(str(reason), text, checks)
        venue: records.Venue = "HKEX" if req.route is Route.HKEX else "INTERNAL"
        exec_type: records.ExecType = "REJECTED" if isinstance(req, NewOrder) else "CANCEL_REJECTED"
        self.out.append(
            command_reject(req, router_exec_id(origin), venue, exec_type, str(reason), text)
        )

    def _duplicate(self, origin: Origin, req: Request) -> bool:
        """True (and the request answered) when the account used its ClOrdID today."""
        key = self.used.get((req.account, req.cl_ord_id))
        order = self._get(key) if key is not None else None
        if order is None or (not order.open and order.day != hk_day(req.ts_ns)):
            self.draft.check(DUPLICATE, detail="ClOrdID not used by the account today")
            return False
        text = "ClOrdID is live" if order.open else "ClOrdID already used today"
        self._reject(origin, req, risk.RejectReason.DUPLICATE_CL_ORD_ID, text)
        return True

    def _room(self, origin: Origin, req: Request) -> bool:
        """Room for one more order (open, and remembered for the day); else rejected."""
        reason = risk.RejectReason.OPEN_ORDERS_LIMIT
        for count, bound, what, full in (
            (len(self.orders), self.config.open_orders_max, "open orders", "router full"),
            (
                len(self.done),
                self.config.done_max,
                "orders of the day",
                "orders for the day exhausted",
            ),
        ):
            if count >= bound:
                check = risk.Check(str(reason), False, count, bound, "orders", full)
                self._reject(origin, req, reason, full, (check,))
                return False
            self.draft.check(reason, detail=what, value=count, limit=bound, unit="orders")
        return True

    def _cut_loss_blocked(self, account: str, side: Side, security: int, qty: int) -> bool:
        """Live risk blocked the account (risk.controls) and the order would add risk."""
        if account not in self.tables.blocked:
            return False
        balance = self.tables.balances.get(account)
        if risk.adds_risk(side, security, qty, balance, self.exposure(account)):
            return True
        self.draft.check(
            risk.RejectReason.CUT_LOSS_BREACHED, detail="blocked; the sell reduces risk"
        )
        return False

    def _new(self, origin: Origin, req: NewOrder) -> None:
        if self._duplicate(origin, req):
            return
        if not self._room(origin, req):
            return
        account = req.account
        if self._cut_loss_blocked(account, req.side, req.security, req.qty):
            self._reject(origin, req, risk.RejectReason.CUT_LOSS_BREACHED, _BLOCKED_TEXT, _BLOCKED)
            return
        limits = self.tables.accounts.get(account)
        decision = risk.check(
            req,
            limits,
            self.tables.instruments.get(req.security),
            self.tables.balances.get(account),
            self.exposure(account),
            self.tables.last_e3.get(req.security),
            self.config.risk,
        )
        if isinstance(decision, risk.Rejected):
            self._reject(origin, req, decision.reason, decision.text, decision.checks)
            return
        assert limits is not None
        self.draft.accept(str(req.route), decision.checks, decision.hold_cents)
        order = Order(
            key=origin.key,
            account=account,
            member=req.member,
            security=req.security,
            side=req.side,
            ord_type=req.ord_type,
            time_in_force=req.time_in_force,
            route=req.route,
            cl_ord_id=req.cl_ord_id,
            price_e3=req.price_e3,
            qty=req.qty,
            hold_price_e3=decision.hold_price_e3,
            ts_ns=req.ts_ns,
            day=hk_day(req.ts_ns),
        )
        sent = (req.qty, req.price_e3, req.time_in_force)
        if order.route is Route.INTERNAL:
            self.out.append(internal_command(req.command(), limits.stp, parent_id=None))
            self.draft.children.append(
                decisions.Child("INTERNAL", "NEW", req.cl_ord_id, None, *sent)
            )
            self._put(order)
        elif order.route is Route.HKEX:
            cl = hkex_cl_ord_id(self.config.cl_ord_id_base, origin, Kind.NEW)
            self.fix_out.append(hx.new_order(order, cl, order.qty))
            self.draft.children.append(decisions.Child("HKEX", "NEW", cl, None, *sent))
            self._put(replace(order, hkex_cl_ord_ids=(cl,)))
            self._adopt(cl)
        else:
            child = internal_child_cl_ord_id(origin)
            self.out.append(
                internal_command(
                    req.command(),
                    limits.stp,
                    cl_ord_id=child,
                    time_in_force="IOC",
                    route="INTERNAL",
                    parent_id=req.cl_ord_id,
                )
            )
            self.draft.smart_split(parent_order_id(origin), child)
            parent = replace(order, phase=Phase.INTERNAL, status=Status.NEW)
            parent, report = hx.parent_report(parent, "NEW", "INTERNAL", req.ts_ns)
            self.out.append(report)
            self._put(parent)

    def _cancel_request(self, origin: Origin, req: CancelRequest) -> None:
        key = self.by_member.get((req.account, req.orig_cl_ord_id or ""))
        if key is None:
            self._reject(origin, req, risk.RejectReason.UNKNOWN_ORDER, "no open order")
            return
        self.draft.check(risk.RejectReason.UNKNOWN_ORDER, detail=f"open order {key}")
        if self._duplicate(origin, req):
            return
        order = self.orders[key]
        if order.cancel_requested:
            # One cancel at a time: the pending one will end the order, or be refused.
            self._reject(origin, req, risk.RejectReason.CANCEL_PENDING, "a cancel is pending")
            return
        self.draft.check(risk.RejectReason.CANCEL_PENDING, detail="no cancel pending")
        self.draft.accept(str(order.route))
        order = replace(order, member_cl_ord_ids=(*order.member_cl_ord_ids, req.cl_ord_id))
        self._cancel(order, req, req.cl_ord_id, Kind.CANCEL, origin, 0)

    def _cancel(
        self, order: Order, req: Request, cancel_cl: str, kind: Kind, origin: Origin, i: int
    ) -> None:
        order = replace(order, cancel_requested=True, cancel_cl_ord_id=cancel_cl)
        limits = self.tables.accounts.get(order.account)
        stp = limits.stp if limits is not None else "CANCEL_RESTING"
        children = self.draft.children
        if order.route is Route.INTERNAL:
            command = hx.cancel_command(order, req, cancel_cl)
            self.out.append(internal_command(command, stp, orig_cl_ord_id=order.cl_ord_id))
            children.append(decisions.Child("INTERNAL", "CANCEL", cancel_cl, order.cl_ord_id))
            self._put(order)
        elif order.route is Route.HKEX or order.phase is Phase.HKEX:
            cl = hkex_cl_ord_id(self.config.cl_ord_id_base, origin, kind, i)
            self.fix_out.append(hx.cancel_order(order, cl, req.ts_ns))
            children.append(decisions.Child("HKEX", "CANCEL", cl, order.hkex_cl_ord_ids[0]))
            self._put(replace(order, hkex_cl_ord_ids=(*order.hkex_cl_ord_ids, cl)))
            self._adopt(cl)
        else:
            # The IOC child on our book ends by itself; the parent then ends CANCELED.
            self.draft.plan = f"SMART parent {order.key}: its IOC child ends by itself"
            self._put(order)

    def _mass_cancel(self, origin: Origin, req: MassCancelRequest) -> None:
        mine = [
            o
            for o in self.orders.values()
            if o.account == req.account and (not req.security or o.security == req.security)
        ]
        # An order whose cancel is pending is already on its way out: asking again would
        # only multiply commands while a venue is slow (one order once got 30).
        targets = sorted(
            (o for o in mine if not o.cancel_requested), key=lambda o: origin_of(o.key).offset
        )
        if req.user == RISK_AGENT_USER:
            # Live risk's cut-loss cancel: only the orders that add risk (a sell of held shares
            # reduces it and stays).
            targets = [o for o in targets if o.side is not Side.SELL]
        if not targets:
            text = (
                f"{len(mine)} open orders, all with a cancel pending" if mine else "no open order"
            )
            self._reject(origin, req, risk.RejectReason.NOTHING_TO_CANCEL, text)
            return
        sent = min(len(targets), hx.MASS_CANCEL_MAX)
        self.draft.check(
            risk.RejectReason.NOTHING_TO_CANCEL,
            detail=f"{len(targets)} open orders to cancel, {sent} cancelled now",
            value=len(targets),
            limit=hx.MASS_CANCEL_MAX,
            unit="orders",
        )
        self.draft.accept(None)
        for i, order in enumerate(targets[: hx.MASS_CANCEL_MAX]):
            self._cancel(order, req, f"{req.cl_ord_id}.{i}", Kind.MASS_CANCEL, origin, i)

    def _amend(self, origin: Origin, req: AmendRequest) -> None:
        key = self.by_member.get((req.account, req.orig_cl_ord_id or ""))
        if key is None:
            self._reject(origin, req, risk.RejectReason.UNKNOWN_ORDER, "no open order")
            return
        self.draft.check(risk.RejectReason.UNKNOWN_ORDER, detail=f"open order {key}")
        if self._duplicate(origin, req):
            return
        order = self.orders[key]
        if order.route is not Route.INTERNAL:
            self._reject(origin, req, risk.RejectReason.UNSUPPORTED, "amend on internal only")
            return
        self.draft.check(risk.RejectReason.UNSUPPORTED, detail="amend of an internal order")
        if order.side is not Side.SELL and order.account in self.tables.blocked:
            self._reject(origin, req, risk.RejectReason.CUT_LOSS_BREACHED, _BLOCKED_TEXT, _BLOCKED)
            return
        exposure = self.exposure(order.account)
        exposure = replace(
            exposure, holds_cents=exposure.holds_cents - order.hold_cents(self.config.risk)
        )
        market = order.ord_type == "MARKET"
        terms = risk.OrderTerms(
            order.member, order.side, order.security, market, req.price_e3, req.qty
        )
        decision = risk.check(
            terms,
            self.tables.accounts.get(order.account),
            self.tables.instruments.get(order.security),
            self.tables.balances.get(order.account),
            exposure,
            self.tables.last_e3.get(order.security),
            self.config.risk,
        )
        if isinstance(decision, risk.Rejected):
            self._reject(origin, req, decision.reason, decision.text, decision.checks)
            return
        limits = self.tables.accounts[order.account]
        self.draft.accept(str(order.route), decision.checks, decision.hold_cents)
        self.draft.children.append(
            decisions.Child(
                "INTERNAL",
                "AMEND",
                req.cl_ord_id,
                order.cl_ord_id,
                req.qty,
                req.price_e3,
                order.time_in_force,
            )
        )
        self.out.append(internal_command(req.command(), limits.stp, route="INTERNAL"))
        self._put(replace(order, member_cl_ord_ids=(*order.member_cl_ord_ids, req.cl_ord_id)))

    # ---------------------------------------------------------------- internal book reports

    def internal_report(self, record: dict[str, Any]) -> None:
        """A matcher report from orders.events; anything else there is ignored. If it raises,
        it changed nothing."""
        with self._atomic():
            self._internal_report(book_report_from(records.as_execution_report(record)))

    def _internal_report(self, r: BookReport) -> None:
        if not r.ours:
            return
        account = r.account
        key = self.by_internal.get((account, r.cl_ord_id))
        if key is None and r.orig_cl_ord_id:
            key = self.by_internal.get((account, r.orig_cl_ord_id))
        if key is None:
            return
        order = self.orders[key]
        if order.route is Route.INTERNAL:
            self._put(self._apply(hx.internal_update(order, r)))
        else:
            self._child_update(order, r)

    def _apply(self, update: hx.Update) -> Order:
        """Take a helper's decision: its records, and its trades into risk's unsettled view."""
        self.out.extend(update.out)
        for trade in update.trades:
            self._seen(update.order, trade.last_px_e3, trade.last_qty, trade.ts_ns)
        return update.order

    def _seen(self, order: Order, last_px_e3: int, last_qty: int, ts_ns: int) -> None:
        buys = order.side is Side.BUY
        cost = risk.hold_cents(last_px_e3, last_qty, self.config.risk) if buys else 0
        sold = 0 if buys else last_qty
        fill = SeenFill(ts_ns, cost, order.security, sold, last_px_e3, last_qty)
        self.tables.seen_fill(order.account, fill)

    def _child_update(self, parent: Order, r: BookReport) -> None:
        """A report about a SMART parent's IOC child on the internal book."""
        ts_ns = r.ts_ns
        if r.exec_type == "TRADE":
            parent = traded(parent, r.last_px_e3, r.last_qty)
            self._seen(parent, r.last_px_e3, r.last_qty, ts_ns)
            parent, report = hx.parent_report(
                parent, "TRADE", "INTERNAL", ts_ns, r.last_px_e3, r.last_qty
            )
            self.out.append(report)
        if r.ord_status in ("FILLED", "CANCELED", "EXPIRED", "REJECTED"):
            parent = self._next_child(parent, Status(r.ord_status), ts_ns)
        self._put(parent)
        self.adopt_all()

    def _next_child(self, parent: Order, child_status: Status, ts_ns: int) -> Order:
        """The internal child ended: send what is left to HKEX, or end the parent."""
        was_open = parent.open
        parent, remaining = child_done(parent, child_status)
        if remaining:
            origin = origin_of(parent.key)
            cl = hkex_cl_ord_id(self.config.cl_ord_id_base, origin, Kind.SMART_CHILD)
            self.fix_out.append(hx.new_order(parent, cl, remaining))
            self.out.append(decisions.remainder_sent(parent, cl, remaining, child_status, ts_ns))
            parent = replace(parent, hkex_cl_ord_ids=(*parent.hkex_cl_ord_ids, cl))
            self.by_hkex[cl] = parent.key
        elif was_open and not parent.open and parent.status is not Status.FILLED:
            parent, report = hx.parent_report(
                parent, ended_exec_type(parent.status), "INTERNAL", ts_ns
            )
            self.out.append(report)
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
                elif msg.msg_type == MSG_REJECT:
                    self._session_reject(seq, msg)
                elif msg.msg_type == hx.EXCHANGE_RESET:
                    self._exchange_reset()
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
        self._put(self._apply(hx.hkex_update(order, _complete(er, msg, order))))

    def _cancel_reject(self, seq: int, msg: FixMessage, rej: OrderCancelReject) -> None:
        if rej.cxl_rej_reason == ORD_REJ_DUPLICATE_ORDER:
            return
        key = self._lookup(rej.cl_ord_id, rej.orig_cl_ord_id)
        if key is None:
            self._orphan_or_drop(seq, msg, rej.cl_ord_id)
            return
        order = self.orders[key]
        if rej.cxl_rej_reason == CXL_REJ_UNKNOWN_ORDER:
            self._venue_forgot(order, rej)
            return
        if order.cancel_cl_ord_id is None:
            log.info(
                "router: HKEX refused cancel %s, already answered (seq %d)", rej.cl_ord_id, seq
            )
            return
        self.out.append(hx.cancel_rejected(order, rej))
        self._put(replace(order, cancel_requested=False, cancel_cl_ord_id=None))

    def _venue_forgot(self, order: Order, rej: OrderCancelReject) -> None:
        """HKEX answered our cancel with "unknown order": it has lost the order (an exchange
        restart that lost its books). The order cannot trade there any more; end it as the
        exchange sees it, and tell operators."""
        log.error(
            "router: ALERT: HKEX does not know order %s (account %s, HKEX ClOrdID %s): %s; "
            "ending it CANCELED as the exchange sees it",
            order.key,
            order.account,
            rej.orig_cl_ord_id,
            rej.text,
        )
        text = f"HKEX does not know the order: {rej.text or 'unknown order'}"[:200]
        if order.route is Route.SMART:
            parent = replace(order, reject_reason=hx.VENUE_UNKNOWN_ORDER, reject_text=text)
            parent, reports = hx.end_child(parent, Status.CANCELED, "HKEX", order.ts_ns)
            self.out.extend(reports)
            self._put(parent)
            return
        order, report = hx.venue_forgot(order, f"HKEX-LOST-{rej.cl_ord_id}", text)
        self.out.append(report)
        self._put(order)

    def _exchange_reset(self) -> None:
        """HKEX restarted without its state (the link saw its sequence numbers go back): no
        order we held there exists any more. End each as the exchange sees it."""
        held = [
            o
            for o in self.orders.values()
            if o.route is Route.HKEX or (o.route is Route.SMART and o.phase is Phase.HKEX)
        ]
        log.error("router: ALERT: HKEX reset its session; ending %d orders held there", len(held))
        text = "HKEX restarted and no longer knows the order (its session was reset)"
        for order in sorted(held, key=lambda o: o.key):
            if order.route is Route.SMART:
                parent = replace(order, reject_reason=hx.VENUE_UNKNOWN_ORDER, reject_text=text)
                parent, reports = hx.end_child(parent, Status.CANCELED, "HKEX", order.ts_ns)
                self.out.extend(reports)
                self._put(parent)
            else:
                ended, report = hx.venue_forgot(order, f"HKEX-RESET-{order.key}", text)
                self.out.append(report)
                self._put(ended)

    def _business_reject(self, rej: BusinessMessageReject) -> None:
        key = self._lookup(rej.business_reject_ref_id)
        if key is None or rej.ref_msg_type != MSG_NEW_ORDER_SINGLE:
            log.warning("router: HKEX business reject %s", rej)
            return
        exec_id = f"HKEX-BMR-{rej.business_reject_ref_id}"
        self._order_refused(self.orders[key], exec_id, rej.text)

    def _order_refused(self, order: Order, exec_id: str, text: str | None) -> None:
        """HKEX refused our NewOrderSingle outright (no ExecutionReport will follow)."""
        if order.route is Route.HKEX and order.status is Status.PENDING_NEW:
            order, report = hx.venue_rejected(order, exec_id, text)
            self.out.append(report)
            self._put(order)
        elif order.route is Route.SMART and order.phase is Phase.HKEX and not order.child_cum_qty:
            parent = replace(order, reject_reason=hx.VENUE_REJECTED, reject_text=text)
            parent, reports = hx.end_child(parent, Status.REJECTED, "HKEX", order.ts_ns)
            self.out.extend(reports)
            self._put(parent)

    def _session_reject(self, seq: int, msg: FixMessage) -> None:
        """HKEX refused one of our messages at the session level (35=3). The link added the
        refused message's ClOrdID and MsgType; the order it stood for is answered."""
        cl = msg.get(TAG_CL_ORD_ID)
        ref_type = msg.get(TAG_REF_MSG_TYPE)
        reason = msg.get(TAG_SESSION_REJECT_REASON)
        text = f"HKEX session Reject (reason {reason}): {msg.get(58) or ''}"[:200]
        key = self._lookup(cl)
        log.error(
            "router: HKEX Reject seq %d of %s %s (order %s): %s", seq, ref_type, cl, key, text
        )
        if key is None:
            return
        order = self.orders[key]
        if ref_type == MSG_NEW_ORDER_SINGLE:
            self._order_refused(order, f"HKEX-REJ-{cl}", text)
        elif ref_type == MSG_ORDER_CANCEL_REQUEST and cl is not None:
            rej = OrderCancelReject(
                order.venue_order_id or "NONE",
                cl,
                order.hkex_cl_ord_ids[0],
                OrdStatus.NEW,
                CxlRejResponseTo.CANCEL,
                text=text,
            )
            self.out.append(hx.cancel_rejected(order, rej))
            self._put(replace(order, cancel_requested=False, cancel_cl_ord_id=None))

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


def _complete(er: ExecutionReport, msg: FixMessage, order: Order) -> ExecutionReport:
    """OrderQty (38) and TransactTime (60) are optional in FIX 5.0 SP2: without them, the
    order's quantity is what is filled plus what is open, and the time is the message's
    SendingTime (else the order's own)."""
    if er.order_qty is not None and er.transact_time_ns is not None:
        return er
    ts_ns = er.transact_time_ns
    if ts_ns is None:
        sending = msg.get(TAG_SENDING_TIME)
        ts_ns = parse_utc_timestamp(TAG_SENDING_TIME, sending) if sending else order.ts_ns
    order_qty = er.order_qty if er.order_qty is not None else er.cum_qty + er.leaves_qty
    return replace(er, order_qty=order_qty, transact_time_ns=ts_ns)
