"""matching: the pure limit order book and engine that both venues run.

`model` (commands and events), `instrument` (an instrument and a venue's `Rules`), `book` and
`engine` import no Kafka, no sockets and no clock. The internal venue (`sampan.matcher`) runs
the `Engine` with `Rules.internal()`; the HKEX simulator (`sampan.hkex_sim`) with `Rules.hkex()`.
"""

from sampan.matching.book import InvariantError
from sampan.matching.engine import Engine
from sampan.matching.instrument import Instrument, Rules
from sampan.matching.model import (
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

__all__ = [
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
