"""The router's durable state: the compacted topic `router.state`, written in the same Kafka
transaction as the outputs and input offsets it reflects.

Entries (the key says which; the value is a `RouterState` record holding UTF-8 JSON):
- `order:<partition>.<offset>`: an open order (`orders.Order`), rewritten on every change and
  deleted by a tombstone when it ends, so the topic holds what is open, not history;
- `fix:<CompID>:<trading day>`: the OCG-C session's next inbound MsgSeqNum whose report is not
  yet reflected in committed records (the session logs on with it as 789);
- `outbox:<HKEX ClOrdID>`: a FIX message a committed batch decided to send (the raw message,
  latin-1), deleted by a tombstone in the transaction after it was handed to the session.

Guarantees: `load` reads the topic with read_committed to the end the broker reports (an
end-of-partition event, not a pause), so it sees exactly the state of the last committed
transaction; it gives up with `TimeoutError` after `LOAD_TIMEOUT_S` (the router then exits
non-zero rather than start on a partial state). JSON holds integers and strings only (money stays integral).

Limits: one router instance per CompID owns it. The topic is in the catalog (`topics.py`),
which alone creates it; a router started before `sampan topics apply` stops with that advice.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, fields
from typing import Any

from confluent_kafka.admin import AdminClient

from sampan.config import Settings
from sampan.errors import SampanError
from sampan.fix.codec import FixMessage, decode_one, encode
from sampan.market.side import Side
from sampan.router.orders import Order, Phase, Route, Status
from sampan.schemas import registry
from sampan.streams import profiles
from sampan.streams.reader import read_to_end

STATE_TOPIC = "router.state"
LOAD_TIMEOUT_S = 120.0
_SCHEMA = "RouterState"
TAG_CL_ORD_ID = 11
_ENUMS = {"status": Status, "side": Side, "route": Route, "phase": Phase}


def order_key(key: str) -> bytes:
    return f"order:{key}".encode()


def fix_key(comp_id: str, day: str) -> bytes:
    return f"fix:{comp_id}:{day}".encode()


@dataclass(frozen=True, slots=True)
class Loaded:
    orders: list[Order]
    next_inbound_seq: int
    outbox: list[FixMessage]  # committed, perhaps not yet sent, in the order they were decided


def outbox_key(msg: FixMessage) -> bytes:
    cl_ord_id = msg.get(TAG_CL_ORD_ID)
    assert cl_ord_id, "every message the router sends has a ClOrdID"
    return f"outbox:{cl_ord_id}".encode()


def encode_outbox(msg: FixMessage) -> bytes:
    return _encode(outbox_key(msg).decode(), {"fix": encode(msg).decode("latin-1")})


def encode_order(order: Order) -> bytes:
    data = asdict(order)
    for name in ("hkex_cl_ord_ids", "exec_ids"):
        data[name] = list(data[name])
    return _encode(f"order:{order.key}", data)


def encode_fix(comp_id: str, day: str, next_inbound_seq: int) -> bytes:
    return _encode(f"fix:{comp_id}:{day}", {"next_inbound_seq": next_inbound_seq})


def _encode(key: str, data: dict[str, Any]) -> bytes:
    state = json.dumps(data, separators=(",", ":"), default=str).encode()
    return registry().encode(_SCHEMA, {"key": key, "state": state, "ts_ns": time.time_ns()})


def decode(value: bytes) -> tuple[str, dict[str, Any]]:
    record = registry().decode(_SCHEMA, value)
    return record["key"], json.loads(record["state"])


def order_from(data: dict[str, Any]) -> Order:
    known = {f.name for f in fields(Order)}
    values = {k: v for k, v in data.items() if k in known}
    for name, kind in _ENUMS.items():
        if values.get(name) is not None:
            values[name] = kind(values[name])
    values["hkex_cl_ord_ids"] = tuple(values["hkex_cl_ord_ids"])
    values["exec_ids"] = tuple(values["exec_ids"])
    return Order(**values)


def require_topic(settings: Settings, timeout_s: float = 30.0) -> None:
    """Fail with a clear error unless `router.state` exists. The topic catalog is the only
    creator of topics (`sampan topics apply`), so the topic has the catalog's durability."""
    name = settings.topic(STATE_TOPIC)
    admin = AdminClient(profiles.admin(settings))
    if name not in admin.list_topics(timeout=timeout_s).topics:
        raise SampanError(f"topic {name} does not exist: run `sampan topics apply` first")


def load(settings: Settings, comp_id: str, day: str) -> Loaded:
    """Open orders, the session's next inbound MsgSeqNum (1 on a new trading day) and the
    outbox.

    Reads to the end the broker reports (`read_to_end`), never to a silence: a broker that
    pauses makes this raise `TimeoutError` rather than return a partial state."""
    entries: dict[str, dict[str, Any] | None] = {}
    for message in read_to_end(settings, STATE_TOPIC, LOAD_TIMEOUT_S):
        key = (message.key() or b"").decode()
        value = message.value()
        entries[key] = None if value is None else decode(value)[1]
    orders = [
        order_from(data)
        for key, data in entries.items()
        if key.startswith("order:") and data is not None
    ]
    outbox = [
        decode_one(data["fix"].encode("latin-1"))
        for key, data in entries.items()
        if key.startswith("outbox:") and data is not None
    ]
    fix = entries.get(f"fix:{comp_id}:{day}")
    return Loaded(orders, int(fix["next_inbound_seq"]) if fix else 1, outbox)
