"""Order entry for one member firm (one OCG-C CompID): FIX business messages in, reports out.

This is the simulator's business core, without sockets or clocks: the gateway shell hands it
each inbound business message with the time, and it emits ExecutionReports,
OrderCancelRejects and BusinessMessageRejects through the `emit` callback it was given. It
drives the simulated `Market` and listens to it, so a firm's resting order that a market maker
or another firm hits is reported too.

Guarantees:
- Every NewOrderSingle gets exactly one first answer: ExecutionReport New, or Rejected with
  OrdRejReason (103) and a Text naming the rule. Every cancel or cancel/replace gets
  Canceled / Replaced, or an OrderCancelReject with CxlRejReason (102).
- A ClOrdID is accepted once per CompID per trading day; a reuse is rejected (OrdRejReason 6,
  CxlRejReason 6) and changes nothing. OCG-C's ClOrdIDs are numeric: any other is rejected
  (reason 99, "ClOrdID must be numeric") and not consumed.
- A limit order with MaxPriceLevels (1090) 10 is an enhanced limit order (it may take up to 10
  price queues); 1 or absent is a plain limit; any other value is rejected (reason 11). Over the throttle a message gets BusinessMessageReject
  reason 8 and is not acted on (its ClOrdID is not consumed).
- Quantities and prices are integers (shares, HK$0.001). AvgPx is the volume-weighted average
  rounded half up to HK$0.001.
- A price change or quantity increase gives the order a new OrderID (it loses priority); a
  quantity decrease at the same price keeps it. Each report has its own ExecID.

Limits: no pending states (the market answers synchronously, so no PendingCancel or
PendingReplace is ever reported), no Trade Cancel (H); a replace cannot change side,
security, order type or time in force.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sampan.fix.codec import FieldError, FixMessage
from sampan.fix.messages import (
    ENHANCED_LIMIT_PRICE_LEVELS,
    BusinessMessageReject,
    BusinessRejectReason,
    CxlRejResponseTo,
    ExecType,
    ExecutionReport,
    NewOrderSingle,
    OrderCancelReject,
    OrderCancelReplaceRequest,
    OrderCancelRequest,
    OrdStatus,
    OrdType,
    TimeInForce,
    parse_business,
)
from sampan.hkex_sim.market import MarketUpdate
from sampan.hkex_sim.ocg_ids import ClOrdIdMemory, IdAllocator, Throttle
from sampan.market.side import Side
from sampan.matching import model as m

Outbound = ExecutionReport | OrderCancelReject | BusinessMessageReject
Emit = Callable[[Outbound], None]

# OrdRejReason (103) and CxlRejReason (102) values from the FIX 5.0 SP2 code sets.
ORD_REJ_UNKNOWN_SYMBOL = 1
ORD_REJ_EXCHANGE_CLOSED = 2
ORD_REJ_UNKNOWN_ORDER = 5
ORD_REJ_DUPLICATE_ORDER = 6
ORD_REJ_UNSUPPORTED_CHARACTERISTIC = 11
ORD_REJ_INCORRECT_QUANTITY = 13
ORD_REJ_PRICE_BAND = 16
ORD_REJ_INVALID_PRICE_INCREMENT = 18
REJ_OTHER = 99
CXL_REJ_TOO_LATE = 0
CXL_REJ_UNKNOWN_ORDER = 1
CXL_REJ_DUPLICATE_CL_ORD_ID = 6

_R = m.RejectReason
_ORD_REJ: dict[m.RejectReason, int] = {
    _R.UNKNOWN_SECURITY: ORD_REJ_UNKNOWN_SYMBOL,
    _R.SECURITY_HALTED: ORD_REJ_EXCHANGE_CLOSED,
    _R.INVALID_QTY: ORD_REJ_INCORRECT_QUANTITY,
    _R.NOT_BOARD_LOT: ORD_REJ_INCORRECT_QUANTITY,
    _R.TOO_MANY_LOTS: ORD_REJ_INCORRECT_QUANTITY,
    _R.INVALID_PRICE: ORD_REJ_PRICE_BAND,
    _R.NOT_ON_TICK: ORD_REJ_INVALID_PRICE_INCREMENT,
    _R.PRICE_OUT_OF_RANGE: ORD_REJ_PRICE_BAND,
    _R.PRICE_THROUGH_REACH: ORD_REJ_PRICE_BAND,
    _R.DUPLICATE_ORDER_ID: ORD_REJ_DUPLICATE_ORDER,
    _R.UNKNOWN_ORDER: ORD_REJ_UNKNOWN_ORDER,
    _R.ORDER_TYPE_NOT_ALLOWED: ORD_REJ_UNSUPPORTED_CHARACTERISTIC,
    _R.INVALID_TIME_IN_FORCE: ORD_REJ_UNSUPPORTED_CHARACTERISTIC,
}
_TIF = {
    TimeInForce.DAY: m.TimeInForce.DAY,
    TimeInForce.IOC: m.TimeInForce.IOC,
    TimeInForce.FOK: m.TimeInForce.FOK,
}
_SECURITY_CODE_MAX = 99_999


class MarketPort(Protocol):
    """What order entry needs of `hkex_sim.market.Market`."""

    def listed(self, security: int) -> object | None: ...

    def allocate_order_id(self) -> int: ...

    def submit(self, command: m.Command) -> list[m.Event]: ...

    def add_listener(self, listener: Callable[[MarketUpdate], None]) -> None: ...


@dataclass(frozen=True, slots=True)
class _Pending:
    """The request an engine call is answering, so its reports carry the right ClOrdIDs."""

    cl_ord_id: str
    response_to: CxlRejResponseTo
    new_order_id: str | None = None  # a replace that loses priority gets a new OrderID


@dataclass(slots=True)
class _Order:
    engine_id: int
    security: int
    side: Side
    order_id: str
    cl_ord_id: str
    status: OrdStatus = OrdStatus.NEW
    orig_cl_ord_id: str | None = None
    pending: _Pending | None = None
    cum_qty: int = 0
    notional_e3: int = 0  # sum of last_px_e3 * last_qty over the order's trades
    order_qty: int = 0
    price_e3: int = 0

    @property
    def open(self) -> bool:
        return self.status in (OrdStatus.NEW, OrdStatus.PARTIALLY_FILLED)

    def avg_px_e3(self) -> int | None:
        if self.cum_qty == 0:
            return None
        return (2 * self.notional_e3 + self.cum_qty) // (2 * self.cum_qty)  # half up


def security_code(security_id: str) -> int | None:
    """HKEX codes travel without leading zeros ("700"); tolerate them ("00700")."""
    if not security_id.isdigit():
        return None
    code = int(security_id)
    return code if 1 <= code <= _SECURITY_CODE_MAX else None


class FirmOrderEntry:
    """One CompID's orders on the simulated market. Drive it from one thread."""

    def __init__(
        self,
        comp_id: str,
        market: MarketPort,
        ids: IdAllocator,
        emit: Emit,
        *,
        throttle_per_s: int = 0,
        cl_ord_ids: ClOrdIdMemory | None = None,
    ) -> None:
        self.comp_id = comp_id  # also the engine account and member of the firm's orders
        self._market = market
        self._ids = ids
        self._emit = emit
        self.throttle = Throttle(throttle_per_s)
        self._cl_ord_ids = cl_ord_ids if cl_ord_ids is not None else ClOrdIdMemory()
        self._orders: dict[int, _Order] = {}  # engine order id -> order
        self._by_cl_ord_id: dict[str, int] = {}  # every ClOrdID of an order's chain
        market.add_listener(self.on_update)

    # ---- inbound ---------------------------------------------------------------------

    def on_message(self, msg: FixMessage, now_ns: int) -> None:
        """Act on one inbound business message (already in sequence, exactly once)."""
        if not self.throttle.allow(now_ns):
            self._emit(
                BusinessMessageReject.answering(
                    msg, BusinessRejectReason.THROTTLE_EXCEEDED, "throttle exceeded"
                )
            )
            return
        try:
            parsed = parse_business(msg)
        except FieldError as exc:
            reason = (
                BusinessRejectReason.UNSUPPORTED_MESSAGE_TYPE
                if exc.tag == 35
                else BusinessRejectReason.CONDITIONALLY_REQUIRED_FIELD_MISSING
                if "missing" in str(exc)
                else BusinessRejectReason.OTHER
            )
            self._emit(BusinessMessageReject.answering(msg, reason, str(exc)))
            return
        if isinstance(parsed, NewOrderSingle):
            self._new(parsed, now_ns)
        elif isinstance(parsed, OrderCancelRequest):
            self._cancel(parsed, now_ns)
        elif isinstance(parsed, OrderCancelReplaceRequest):
            self._replace(parsed, now_ns)
        else:
            self._emit(
                BusinessMessageReject.answering(
                    msg,
                    BusinessRejectReason.UNSUPPORTED_MESSAGE_TYPE,
                    f"MsgType {msg.msg_type} is not accepted by order entry",
                )
            )

    def cancel_all(self, now_ns: int) -> None:
        """Cancel-on-disconnect: cancel every open order of the firm (reports follow)."""
        if any(o.open for o in self._orders.values()):
            self._market.submit(m.MassCancel(now_ns, self.comp_id, None))

    def open_order_count(self) -> int:
        return sum(1 for o in self._orders.values() if o.open)

    # ---- requests ----------------------------------------------------------------------

    def _new(self, nos: NewOrderSingle, now_ns: int) -> None:
        problem = self._claim(nos.cl_ord_id)
        code = security_code(nos.security_id)
        if problem is None and (code is None or self._market.listed(code) is None):
            problem = (ORD_REJ_UNKNOWN_SYMBOL, f"unknown security {nos.security_id!r}")
        order_type = _order_type(nos)
        if problem is None and order_type is None:
            problem = (
                ORD_REJ_UNSUPPORTED_CHARACTERISTIC,
                f"MaxPriceLevels {nos.max_price_levels} unsupported (1 limit, 10 enhanced limit)",
            )
        if problem is not None:
            self._emit(_new_rejected(nos, self._ids.exec_id(), now_ns, *problem))
            return
        assert code is not None and order_type is not None
        engine_id = self._market.allocate_order_id()
        order = _Order(engine_id, code, nos.side, self._ids.order_id(), nos.cl_ord_id)
        self._orders[engine_id] = order
        self._by_cl_ord_id[nos.cl_ord_id] = engine_id
        market = order_type is m.OrderType.MARKET
        self._market.submit(
            m.PlaceOrder(
                now_ns,
                code,
                engine_id,
                self.comp_id,
                self.comp_id,
                Side.BUY if nos.side is Side.BUY else Side.SELL,
                nos.order_qty,
                0 if market or nos.price_e3 is None else nos.price_e3,
                order_type,
                _TIF[nos.time_in_force],
            )
        )

    def _claim(self, cl_ord_id: str) -> tuple[int, str] | None:
        """Record a ClOrdID for today, or say why it cannot be used: (reason, text)."""
        if not (cl_ord_id.isascii() and cl_ord_id.isdigit()):
            return REJ_OTHER, f"ClOrdID must be numeric: {cl_ord_id[:32]!r}"
        if cl_ord_id in self._cl_ord_ids:
            return ORD_REJ_DUPLICATE_ORDER, f"duplicate ClOrdID {cl_ord_id}"
        if self._cl_ord_ids.full:
            return REJ_OTHER, "ClOrdID capacity for the day exhausted"
        self._cl_ord_ids.add(cl_ord_id)
        return None

    def _target(
        self, cl_ord_id: str, orig_cl_ord_id: str, response_to: CxlRejResponseTo
    ) -> _Order | None:
        """The open order a cancel or replace addresses, or None after rejecting it."""
        problem = self._claim(cl_ord_id)
        order = None
        if problem is not None:
            problem = (CXL_REJ_DUPLICATE_CL_ORD_ID if problem[0] == 6 else REJ_OTHER, problem[1])
        else:
            engine_id = self._by_cl_ord_id.get(orig_cl_ord_id)
            order = None if engine_id is None else self._orders[engine_id]
            if order is None:
                problem = (CXL_REJ_UNKNOWN_ORDER, f"unknown order {orig_cl_ord_id}")
            elif not order.open:
                problem = (CXL_REJ_TOO_LATE, f"order is {order.status.name}")
        if problem is None:
            return order
        self._emit(
            OrderCancelReject(
                order.order_id if order is not None else "NONE",
                cl_ord_id,
                orig_cl_ord_id,
                order.status if order is not None else OrdStatus.REJECTED,
                response_to,
                problem[0],
                problem[1],
            )
        )
        return None

    def _cancel(self, req: OrderCancelRequest, now_ns: int) -> None:
        order = self._target(req.cl_ord_id, req.orig_cl_ord_id, CxlRejResponseTo.CANCEL)
        if order is None:
            return
        self._by_cl_ord_id[req.cl_ord_id] = order.engine_id
        order.pending = _Pending(req.cl_ord_id, CxlRejResponseTo.CANCEL)
        try:
            self._market.submit(
                m.CancelOrder(now_ns, order.security, order.engine_id, self.comp_id)
            )
        finally:
            order.pending = None

    def _replace(self, req: OrderCancelReplaceRequest, now_ns: int) -> None:
        order = self._target(req.cl_ord_id, req.orig_cl_ord_id, CxlRejResponseTo.REPLACE)
        if order is None:
            return
        self._by_cl_ord_id[req.cl_ord_id] = order.engine_id
        if (
            security_code(req.security_id) != order.security
            or req.side is not order.side
            or req.ord_type is not OrdType.LIMIT
            or req.price_e3 is None
        ):
            self._emit(
                OrderCancelReject(
                    order.order_id,
                    req.cl_ord_id,
                    req.orig_cl_ord_id,
                    order.status,
                    CxlRejResponseTo.REPLACE,
                    REJ_OTHER,
                    "a replace may change only price and quantity of a limit order",
                )
            )
            return
        loses_priority = req.price_e3 != order.price_e3 or req.order_qty > order.order_qty
        new_order_id = self._ids.order_id() if loses_priority else None
        order.pending = _Pending(req.cl_ord_id, CxlRejResponseTo.REPLACE, new_order_id)
        try:
            self._market.submit(
                m.AmendOrder(
                    now_ns,
                    order.security,
                    order.engine_id,
                    self.comp_id,
                    req.price_e3,
                    req.order_qty,
                )
            )
        finally:
            order.pending = None

    # ---- market events -----------------------------------------------------------------

    def on_update(self, update: MarketUpdate) -> None:
        """The market's listener: report every change to this firm's orders."""
        for event in update.events:
            if type(event) is m.ExecutionReport and event.account == self.comp_id:
                order = self._orders.get(event.order_id)
                if order is not None:
                    self._report(order, event)
            elif type(event) is m.CancelRejected and event.account == self.comp_id:
                order = self._orders.get(event.order_id)
                if order is not None and order.pending is not None:
                    self._cancel_rejected(order, order.pending, event.reason)

    def _report(self, order: _Order, ev: m.ExecutionReport) -> None:
        kind = ev.exec_type
        last_px_e3 = last_qty = None
        text = None
        if kind is m.ExecType.ACCEPTED:
            exec_type, order.status = ExecType.NEW, OrdStatus.NEW
        elif kind in (m.ExecType.PARTIALLY_FILLED, m.ExecType.FILLED):
            exec_type = ExecType.TRADE
            last_px_e3, last_qty = ev.last_px_e3, ev.last_qty
            order.notional_e3 += ev.last_px_e3 * ev.last_qty
            order.status = OrdStatus.FILLED if ev.leaves_qty == 0 else OrdStatus.PARTIALLY_FILLED
        elif kind is m.ExecType.AMENDED:
            exec_type = ExecType.REPLACED
            self._apply_pending(order)
            order.status = OrdStatus.PARTIALLY_FILLED if ev.cum_qty else OrdStatus.NEW
        elif kind is m.ExecType.CANCELED:
            exec_type, order.status = ExecType.CANCELED, OrdStatus.CANCELED
            if order.pending is not None:
                self._apply_pending(order)
            else:
                order.orig_cl_ord_id = None
                text = _reason_text(ev.reason)
        elif kind is m.ExecType.EXPIRED:
            exec_type, order.status = ExecType.EXPIRED, OrdStatus.EXPIRED
        else:
            assert kind is m.ExecType.REJECTED, kind
            exec_type, order.status = ExecType.REJECTED, OrdStatus.REJECTED
            text = _reason_text(ev.reason)
        order.cum_qty, order.order_qty, order.price_e3 = ev.cum_qty, ev.order_qty, ev.price_e3
        rej = _ORD_REJ.get(ev.reason, REJ_OTHER) if isinstance(ev.reason, m.RejectReason) else None
        self._emit(
            ExecutionReport(
                order_id=order.order_id,
                cl_ord_id=order.cl_ord_id,
                exec_id=self._ids.exec_id(),
                exec_type=exec_type,
                ord_status=order.status,
                security_id=str(order.security),
                side=order.side,
                order_qty=ev.order_qty,
                cum_qty=ev.cum_qty,
                leaves_qty=ev.leaves_qty,
                transact_time_ns=ev.ts_ns,
                price_e3=ev.price_e3 or None,
                last_px_e3=last_px_e3,
                last_qty=last_qty,
                avg_px_e3=order.avg_px_e3(),
                orig_cl_ord_id=order.orig_cl_ord_id,
                ord_rej_reason=rej if exec_type is ExecType.REJECTED else None,
                text=text,
            )
        )

    def _apply_pending(self, order: _Order) -> None:
        pending = order.pending
        assert pending is not None, "a requested change must have a pending request"
        order.orig_cl_ord_id, order.cl_ord_id = order.cl_ord_id, pending.cl_ord_id
        if pending.new_order_id is not None:
            order.order_id = pending.new_order_id
        # Later reports of the same engine call (trades after a replace) keep the new ids.
        order.pending = _Pending(pending.cl_ord_id, pending.response_to)

    def _cancel_rejected(
        self, order: _Order, pending: _Pending, reason: m.RejectReason | None
    ) -> None:
        self._emit(
            OrderCancelReject(
                order.order_id,
                pending.cl_ord_id,
                order.cl_ord_id,
                order.status,
                pending.response_to,
                CXL_REJ_UNKNOWN_ORDER if reason is m.RejectReason.UNKNOWN_ORDER else REJ_OTHER,
                _reason_text(reason),
            )
        )


def _order_type(nos: NewOrderSingle) -> m.OrderType | None:
    """The engine's order type of a NewOrderSingle, or None when it names none we support."""
    if nos.ord_type is OrdType.MARKET:
        return m.OrderType.MARKET
    if nos.max_price_levels in (None, 1):
        return m.OrderType.LIMIT
    if nos.max_price_levels == ENHANCED_LIMIT_PRICE_LEVELS:
        return m.OrderType.ENHANCED_LIMIT
    return None


def _reason_text(reason: m.RejectReason | m.CancelReason | None) -> str | None:
    return None if reason is None else reason.name.lower()


def _new_rejected(
    nos: NewOrderSingle, exec_id: str, now_ns: int, reason: int, text: str
) -> ExecutionReport:
    return ExecutionReport(
        order_id="NONE",
        cl_ord_id=nos.cl_ord_id,
        exec_id=exec_id,
        exec_type=ExecType.REJECTED,
        ord_status=OrdStatus.REJECTED,
        security_id=nos.security_id,
        side=nos.side,
        order_qty=nos.order_qty,
        cum_qty=0,
        leaves_qty=0,
        transact_time_ns=now_ns,
        price_e3=nos.price_e3,
        ord_rej_reason=reason,
        text=text,
    )
