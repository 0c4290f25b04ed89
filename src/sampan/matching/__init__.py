"""matching: the pure limit order book and engine that both venues run.

`model` (commands and events), `instrument` (an instrument and a venue's `Rules`), `book`,
`auction` (the IEP and its band), `phases` (what each phase of the day does to a book) and
`engine` import no Kafka, no sockets and no clock. The internal venue (`sampan.matcher`) runs
the `Engine` with `Rules.internal()`; the HKEX simulator (`sampan.hkex_sim`) with `Rules.hkex()`.
"""

from sampan.market.side import Side
from sampan.matching.book import InvariantError
from sampan.matching.engine import Engine
from sampan.matching.instrument import Instrument, Rules
from sampan.matching.model import (
    AmendOrder,
    AuctionUncrossed,
    CancelOrder,
    CancelReason,
    CancelRejected,
    ChangePhase,
    Command,
    Event,
    ExecType,
    ExecutionReport,
    Fill,
    MassCancel,
    MassCancelled,
    OrderStatus,
    OrderType,
    PhaseChanged,
    PlaceOrder,
    RejectReason,
    RequestKind,
    StpMode,
    TimeInForce,
)

__all__ = [
    "AmendOrder",
    "AuctionUncrossed",
    "CancelOrder",
    "CancelReason",
    "CancelRejected",
    "ChangePhase",
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
    "PhaseChanged",
    "PlaceOrder",
    "RejectReason",
    "RequestKind",
    "Rules",
    "Side",
    "StpMode",
    "TimeInForce",
]
