"""The router's decision records on router.decisions: why it did what it did. Pure.

The core keeps one `Draft` per request while it decides (`RouterCore.request`): every check
it makes (its own, such as the ClOrdID and open-order checks, and each of `risk.check`'s, with
the figure and the limit compared), the outcome, the route chosen and every child it sends to
a venue. `record` turns the finished draft into a `RouterDecision` record, which the core puts
among the request's other outputs, so it commits in the same Kafka transaction as them and a
rolled-back request leaves no decision behind. `remainder_sent` is the record of a SMART
parent's HKEX remainder, decided later, when its internal child ends.

Guarantees: one decision per request read from orders.requests (a request the service
dead-letters has none: its dead letter is its record); its id is a function of the request's
position, `D<partition>.<offset>` (a SMART parent's later child `D<partition>.<offset>.H`), so a
reader can tell a record re-written after an aborted transaction from a new one (read_committed
readers see only the committed copy).

Limits: a MASS_CANCEL's children are listed up to `hkex.MASS_CANCEL_MAX`, as many as it sends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sampan.router.ids import Origin, origin_of, parent_order_id
from sampan.router.mapping import NewOrder, Request
from sampan.router.orders import Order
from sampan.router.records import Out
from sampan.router.risk import Check

TOPIC = "router.decisions"
SCHEMA = "RouterDecision"


@dataclass(frozen=True, slots=True)
class Child:
    """An order or a cancel sent to a venue because of a decision."""

    venue: str  # INTERNAL or HKEX
    action: str  # NEW, CANCEL or AMEND
    cl_ord_id: str
    orig_cl_ord_id: str | None = None
    qty: int = 0
    price_e3: int = 0
    time_in_force: str = ""


@dataclass(slots=True)
class Draft:
    """A decision being made about one request (mutable while the core decides)."""

    origin: Origin
    request: Request
    checks: list[Check] = field(default_factory=list)
    rejected: tuple[str, str] | None = None  # (reason code, text)
    route: str | None = None
    order_id: str | None = None
    hold_cents: int = 0
    plan: str | None = None  # what the router planned, in words (a SMART split)
    children: list[Child] = field(default_factory=list)

    def check(self, name: str, passed: bool = True, detail: str = "", **figures: Any) -> None:
        """Record one of the core's own checks (`figures`: value, limit, unit)."""
        self.checks.append(
            Check(
                str(name),
                passed,
                figures.get("value"),
                figures.get("limit"),
                figures.get("unit", ""),
                detail,
            )
        )

    def reject(self, reason: str, text: str, checks: tuple[Check, ...] = ()) -> None:
        """The request is refused: `checks` are risk's (the last failed); without them the
        refusal is recorded as the core's own failed check."""
        assert self.rejected is None, "a request is rejected once"
        if checks:
            self.checks.extend(checks)
        else:
            self.check(reason, False, text)
        self.rejected = (reason, text)

    def smart_split(self, order_id: str, child_cl_ord_id: str) -> None:
        """A SMART parent: its IOC child on the internal book first, the rest to HKEX later."""
        req = self.request
        self.order_id = order_id
        child = Child("INTERNAL", "NEW", child_cl_ord_id, None, req.qty, req.price_e3, "IOC")
        self.children.append(child)
        self.plan = (
            f"SMART split: {req.qty} shares IOC on the internal book (child {child_cl_ord_id}), "
            f"then what it leaves to HKEX as an enhanced limit at {req.price_e3} e3"
        )

    def accept(
        self, route: str | None, checks: tuple[Check, ...] = (), hold_cents: int = 0
    ) -> None:
        self.checks.extend(checks)
        self.route = route
        self.hold_cents = hold_cents


def _check(check: Check) -> dict[str, Any]:
    return {
        "name": check.name,
        "passed": check.passed,
        "value": check.value,
        "limit": check.limit,
        "unit": check.unit,
        "detail": check.detail[:200],
    }


def _child(child: Child) -> dict[str, Any]:
    return {
        "venue": child.venue,
        "action": child.action,
        "cl_ord_id": child.cl_ord_id,
        "orig_cl_ord_id": child.orig_cl_ord_id,
        "qty": child.qty,
        "price_e3": child.price_e3,
        "time_in_force": child.time_in_force,
    }


def _value(
    decision_id: str, event: str, origin: Origin, req: Request, ts_ns: int
) -> dict[str, Any]:
    return {
        "decision_id": decision_id,
        "event": event,
        "request_partition": origin.partition,
        "request_offset": origin.offset,
        "command_id": req.command_id,
        "kind": str(req.kind),
        "account": req.account,
        "member": req.member,
        "cl_ord_id": req.cl_ord_id,
        "orig_cl_ord_id": req.orig_cl_ord_id,
        "order_id": None,
        "security": req.security,
        "side": str(req.side),
        "qty": req.qty,
        "price_e3": req.price_e3,
        "route_requested": str(req.route),
        "outcome": "ACCEPTED",
        "reject_reason": None,
        "text": None,
        "checks": [],
        "route": None,
        "hold_cents": 0,
        "children": [],
        "ts_ns": ts_ns,
    }


def record(draft: Draft) -> Out:
    """The decision record of a finished draft. A draft neither rejected nor given a route is
    a request the core acted on without a venue (a cancel of a SMART parent whose child ends
    by itself): accepted, no child."""
    origin, req = draft.origin, draft.request
    value = _value(f"D{origin.partition}.{origin.offset}", "REQUEST", origin, req, req.ts_ns)
    value["checks"] = [_check(c) for c in draft.checks]
    value["children"] = [_child(c) for c in draft.children]
    value["order_id"] = draft.order_id
    if draft.rejected is not None:
        value["outcome"] = "REJECTED"
        value["reject_reason"], text = draft.rejected
        value["text"] = text[:200]
    else:
        value["route"] = draft.route
        value["hold_cents"] = draft.hold_cents
        value["text"] = draft.plan
    return Out(TOPIC, req.account, SCHEMA, value)


def remainder_sent(
    parent: Order, cl_ord_id: str, remaining: int, child_status: str, ts_ns: int
) -> Out:
    """The decision to send a SMART parent's remainder to HKEX, when its internal child ended
    (`ts_ns`: the report that ended it)."""
    origin = origin_of(parent.key)
    terms = NewOrder(
        command_id="",
        account=parent.account,
        member=parent.member,
        security=parent.security,
        cl_ord_id=parent.cl_ord_id,
        side=parent.side,
        ord_type=parent.ord_type,
        time_in_force=parent.time_in_force,
        price_e3=parent.price_e3,
        qty=parent.qty,
        route=parent.route,
        ts_ns=parent.ts_ns,
    )
    tif = parent.time_in_force
    child = Child("HKEX", "NEW", cl_ord_id, None, remaining, parent.price_e3, tif)
    plan = (
        f"SMART remainder: the internal child ended {child_status} with {parent.cum_qty} of "
        f"{parent.qty} shares; {remaining} to HKEX as an enhanced limit at {parent.price_e3} e3"
    )
    value = _value(f"D{origin.partition}.{origin.offset}.H", "CHILD_SENT", origin, terms, ts_ns)
    value.update(order_id=parent_order_id(origin), route="SMART", text=plan)
    value["children"] = [_child(child)]
    return Out(TOPIC, parent.account, SCHEMA, value)
