"""The fan-out hub: a client that does not read never stalls another one or the records."""

from __future__ import annotations

import asyncio
from typing import Any

from sampan.ui_bridge.auth import Role, Session
from sampan.ui_bridge.fanout import Outbox
from sampan.ui_bridge.hub import CLOSE_TRY_AGAIN, Client, Hub
from sampan.ui_bridge.state import View

SESSION = Session("sid", "u", Role.TRADER, "M1", "csrf", 0)


def depth(seq: int) -> dict[str, Any]:
    level = {"price_e3": 512_000, "qty": 100 * seq, "orders": 1}
    return {"venue": "HKEX", "security": 700, "bids": [level], "asks": [], "seq": seq, "ts_ns": seq}


def report(n: int) -> dict[str, Any]:
    return {
        "exec_id": f"e{n}",
        "venue": "INTERNAL",
        "order_id": f"o{n}",
        "cl_ord_id": f"c{n}",
        "orig_cl_ord_id": None,
        "parent_id": None,
        "account": "A1",
        "member": "M1",
        "security": 700,
        "side": "BUY",
        "exec_type": "NEW",
        "ord_status": "NEW",
        "price_e3": 512_000,
        "order_qty": 100,
        "last_px_e3": 0,
        "last_qty": 0,
        "cum_qty": 0,
        "leaves_qty": 100,
        "cum_notional_e3": 0,
        "reject_reason": None,
        "text": None,
        "ts_ns": 1,
    }


class Peer:
    def __init__(self, stuck: bool) -> None:
        self.stuck = stuck
        self.got: list[str] = []
        self.closed: tuple[int, str] | None = None
        self.release = asyncio.Event()

    async def send_text(self, text: str) -> None:
        if self.stuck:
            await self.release.wait()  # a socket whose peer never reads
        self.got.append(text)

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


def test_a_stuck_client_is_coalesced_and_stalls_no_one() -> None:
    async def scenario() -> None:
        hub = Hub(View())
        hub.on_batch([], caught_up=True)
        peers = {"slow": Peer(stuck=True), "fast": Peer(stuck=False)}
        clients = {}
        senders = []
        for name, peer in peers.items():
            client = Client(SESSION, peer.send_text, peer.close)
            hub.add(client)
            hub.subscribe_depth(client, 700)
            clients[name] = client
            senders.append(asyncio.create_task(hub.run_sender(client)))
        for seq in range(1, 1001):
            hub.on_batch([("md.depth", depth(seq))], caught_up=True)
            await asyncio.sleep(0)
        await asyncio.sleep(0.01)
        fast, slow = peers["fast"], peers["slow"]
        assert '"seq":1000' in fast.got[-1]
        assert len(slow.got) == 0
        assert len(clients["slow"].outbox) == 1  # only the latest book waits
        assert clients["slow"].outbox.coalesced >= 998
        slow.release.set()
        await asyncio.sleep(0.01)
        assert '"seq":1000' in slow.got[-1]
        assert hub.totals()["coalesced"] >= 998
        for sender in senders:
            sender.cancel()

    asyncio.run(scenario())


def test_a_client_too_far_behind_on_history_is_closed_with_a_reason() -> None:
    async def scenario() -> None:
        view = View()
        hub = Hub(view)
        hub.on_batch([], caught_up=True)
        slow = Peer(stuck=True)
        client = Client(SESSION, slow.send_text, slow.close, outbox=Outbox(messages_max=50))
        hub.add(client)
        hub.subscribe_account(client, "A1")
        sender = asyncio.create_task(hub.run_sender(client))
        await asyncio.sleep(0)
        hub.on_batch([("orders.events", report(n)) for n in range(100)], caught_up=True)
        slow.release.set()
        await asyncio.wait_for(sender, 1)
        assert slow.closed is not None and slow.closed[0] == CLOSE_TRY_AGAIN
        assert "too slow" in slow.closed[1]
        assert hub.totals()["disconnected"] == 1

    asyncio.run(scenario())


def test_only_the_last_snapshot_of_a_book_in_a_batch_is_fanned_out() -> None:
    async def scenario() -> None:
        hub = Hub(View())
        hub.on_batch([], caught_up=True)
        peer = Peer(stuck=False)
        client = Client(SESSION, peer.send_text, peer.close)
        hub.add(client)
        hub.subscribe_depth(client, 700)
        hub.on_batch([("md.depth", depth(seq)) for seq in range(1, 11)], caught_up=True)
        [text] = client.outbox.drain()
        assert '"seq":10' in text
        assert client.outbox.coalesced == 0 and hub.totals()["coalesced"] == 9
        assert hub.view.depth[("HKEX", 700)]["seq"] == 10

    asyncio.run(scenario())
