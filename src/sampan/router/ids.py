"""Deterministic identifiers: every id the router hands out is a function of the input record
that caused it (its partition and offset on `orders.requests`), never of a counter in memory.

This is what makes Kafka→FIX exactly once: a request re-processed after a crash sends the same
ClOrdID again, the gateway refuses it as a duplicate, and the router knows the first copy went
out. It is also how an execution report that arrives before its request has been re-processed
(an orphan) is recognised: its ClOrdID names the request offset it belongs to.

HKEX ClOrdIDs are numeric (OCG-C): `((((base * PARTITIONS_MAX + partition) * OFFSETS_SPAN +
offset) * KINDS + kind) * INDEX_SPAN + index)` in decimal. `base` separates router instances
or topic generations that share a CompID on one trading day.

Limits: a partition number below `PARTITIONS_MAX`, an offset below `OFFSETS_SPAN`, at most
`INDEX_SPAN` cancels from one mass cancel.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

PARTITIONS_MAX = 1_000
OFFSETS_SPAN = 10**13
KINDS = 10
INDEX_SPAN = 10_000


class Kind(enum.IntEnum):
    NEW = 1  # an order routed to HKEX
    SMART_CHILD = 2  # the HKEX child of a SMART parent
    CANCEL = 3  # an OrderCancelRequest answering a CANCEL command
    AMEND = 4  # an OrderCancelReplaceRequest answering an AMEND command
    MASS_CANCEL = 5  # the index-th cancel of a MASS_CANCEL command


@dataclass(frozen=True, slots=True)
class Origin:
    """The input record an id derives from."""

    partition: int
    offset: int

    def __post_init__(self) -> None:
        assert 0 <= self.partition < PARTITIONS_MAX, self.partition
        assert 0 <= self.offset < OFFSETS_SPAN, self.offset

    @property
    def key(self) -> str:
        """The router's key of the order a NEW request created."""
        return f"{self.partition}.{self.offset}"


@dataclass(frozen=True, slots=True)
class HkexId:
    base: int
    origin: Origin
    kind: Kind
    index: int = 0

    def __post_init__(self) -> None:
        assert self.base >= 0 and 0 <= self.index < INDEX_SPAN

    def __str__(self) -> str:
        value = self.base * PARTITIONS_MAX + self.origin.partition
        value = value * OFFSETS_SPAN + self.origin.offset
        value = (value * KINDS + self.kind) * INDEX_SPAN + self.index
        return str(value)


def hkex_cl_ord_id(base: int, origin: Origin, kind: Kind, index: int = 0) -> str:
    return str(HkexId(base, origin, kind, index))


def parse_hkex_cl_ord_id(text: str) -> HkexId | None:
    """The id's parts, or None for a ClOrdID the router did not make."""
    if not text.isdigit():
        return None
    value = int(text)
    value, index = divmod(value, INDEX_SPAN)
    value, kind = divmod(value, KINDS)
    value, offset = divmod(value, OFFSETS_SPAN)
    base, partition = divmod(value, PARTITIONS_MAX)
    if kind not in Kind._value2member_map_:
        return None
    return HkexId(base, Origin(partition, offset), Kind(kind), index)


def internal_child_cl_ord_id(origin: Origin) -> str:
    """The ClOrdID of a SMART parent's IOC child on the internal book."""
    return f"S{origin.partition}.{origin.offset}"


def parent_order_id(origin: Origin) -> str:
    return f"P{origin.partition}.{origin.offset}"


def parent_exec_id(origin: Origin, n: int) -> str:
    """The n-th report of a parent order (n counts from 1)."""
    return f"P{origin.partition}.{origin.offset}.{n}"


def router_exec_id(origin: Origin, n: int = 0) -> str:
    """A report the router makes about a request (a reject, a cancel it answers itself)."""
    return f"R{origin.partition}.{origin.offset}.{n}"


def origin_of(key: str) -> Origin:
    """The origin of an order key ("partition.offset")."""
    partition, _, offset = key.partition(".")
    return Origin(int(partition), int(offset))
