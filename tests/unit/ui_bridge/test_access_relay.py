"""The access audit relay's logic against a topic and a table held in memory: every row once,
in id order, across lost acknowledgements, restarts and batches."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sampan.schemas import registry
from sampan.ui_bridge import access_relay
from sampan.ui_bridge.access_relay import BATCH_MAX, Relay, record_of


def row(audit_id: int, username: str | None = "alice") -> dict[str, Any]:
    return {
        "id": audit_id,
        "ts_ns": 1_700_000_000_000_000_000 + audit_id,
        "username": username,
        "role": "trader" if username else None,
        "action": "trade",
        "target": "ACC2",
        "reason": "account ACC2 is not of member M1",
        "remote": "127.0.0.1",
    }


class World:
    """A table of rows and a topic; `fail` decides, per send, whether the write lands and
    whether the acknowledgement comes back."""

    def __init__(self, ids: list[int]) -> None:
        self.table = [row(i) for i in ids]
        self.topic: list[tuple[str, dict[str, Any]]] = []
        self.outcomes: list[tuple[bool, bool]] = []  # (lands, acknowledged), consumed first

    async def read_tail(self) -> int:
        return max((r["audit_id"] for _, r in self.topic), default=0)

    async def rows(self, after_id: int, limit: int) -> list[dict[str, Any]]:
        return [r for r in self.table if r["id"] > after_id][:limit]

    async def send(self, key: str, record: dict[str, Any]) -> None:
        lands, acknowledged = self.outcomes.pop(0) if self.outcomes else (True, True)
        if lands:
            self.topic.append((key, record))
        if not acknowledged:
            raise OSError("writing ui.access failed: Local: Message timed out")

    def relay(self) -> Relay:
        return Relay(self.read_tail, self.rows, self.send)

    def ids(self) -> list[int]:
        return [r["audit_id"] for _, r in self.topic]


def test_record_of_a_row_encodes_with_the_schema_and_keeps_every_field() -> None:
    for source in (row(7), row(8, username=None)):
        record = record_of(source)
        assert record["audit_id"] == source["id"]
        decoded = registry().decode("AccessAudit", registry().encode("AccessAudit", record))
        assert decoded == record


def test_each_row_once_in_id_order_keyed_by_id() -> None:
    world = World([1, 2, 3, 5, 8])  # gaps: rolled-back inserts use up ids
    relay = world.relay()
    assert asyncio.run(relay.relay_once()) == 5
    assert world.ids() == [1, 2, 3, 5, 8]
    assert [key for key, _ in world.topic] == ["1", "2", "3", "5", "8"]
    assert asyncio.run(relay.relay_once()) == 0
    world.table.append(row(9))
    assert asyncio.run(relay.relay_once()) == 1
    assert world.ids() == [1, 2, 3, 5, 8, 9]


def test_a_restarted_relay_resumes_after_the_tail() -> None:
    world = World([1, 2, 3])
    asyncio.run(world.relay().relay_once())
    world.table += [row(4), row(5)]  # written while no relay ran
    asyncio.run(world.relay().relay_once())  # a new server: cursor from the topic
    assert world.ids() == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("lands", [True, False])
def test_a_lost_acknowledgement_neither_loses_nor_repeats(lands: bool) -> None:
    world = World([1, 2, 3, 4])
    world.outcomes = [(True, True), (lands, False)]
    relay = world.relay()
    with pytest.raises(OSError):
        asyncio.run(relay.relay_once())
    assert relay.cursor is None  # the tail says, next pass, whether row 2 landed
    assert asyncio.run(relay.relay_once()) == (2 if lands else 3)
    assert world.ids() == [1, 2, 3, 4]


def test_a_pass_is_bounded_and_the_loop_drains_a_backlog() -> None:
    world = World(list(range(1, 2 * BATCH_MAX + 11)))
    relay = world.relay()
    assert asyncio.run(relay.relay_once()) == BATCH_MAX

    async def drain() -> None:
        stopping = asyncio.Event()
        task = asyncio.create_task(access_relay.run(relay, stopping))
        for _ in range(200):
            if len(world.topic) == len(world.table):
                break
            await asyncio.sleep(0.01)
        stopping.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(drain())
    assert world.ids() == list(range(1, 2 * BATCH_MAX + 11))
