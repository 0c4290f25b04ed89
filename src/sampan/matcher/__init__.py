"""The matcher: sampan's internal limit order books (pure core) and, later, its Kafka shell.

The pure core (`rules`, `model`, `book`, `engine`) imports no Kafka, no sockets and no clock;
the same `Engine` with `Rules.hkex()` serves the HKEX simulator.
"""

from sampan.matcher.book import InvariantError
from sampan.matcher.engine import Engine
from sampan.matcher.model import (
    AmendOrder,
    CancelOrder,
    CancelReason,
    CancelRejected,
    Command,
    Event,
    ExecType,
    ExecutionReport,
    Fill,
    MassCancel,
    MassCancelled,
    OrderStatus,
    OrderType,
    PlaceOrder,
    RejectReason,
    RequestKind,
    Side,
    StpMode,
    TimeInForce,
)
from sampan.matcher.rules import SPREAD_TABLES, Instrument, Rules

__all__ = [
    "SPREAD_TABLES",
    "AmendOrder",
    "CancelOrder",
    "CancelReason",
    "CancelRejected",
    "Command",
    "Engine",
    "Event",
    "ExecType",
    "ExecutionReport",
    "Fill",
    "Instrument",
    "InvariantError",
    "MassCancel",
    "MassCancelled",
    "OrderStatus",
    "OrderType",
    "PlaceOrder",
    "RejectReason",
    "RequestKind",
    "Rules",
    "Side",
    "StpMode",
    "TimeInForce",
]
