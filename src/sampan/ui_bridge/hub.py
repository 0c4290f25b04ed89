"""The fan-out hub: applies followed records to the view and offers each update to the clients
subscribed to it, on the event loop, without ever waiting for a client.

Guarantees: every update is serialised once and the same text is offered to every subscriber's
`Outbox` (non-blocking, bounded, depth coalesced); each client has its own sender task, so a
client whose socket is slow holds up only itself; a client whose outbox overflowed is closed
with code 1013 and the reason. Subscriptions are authorised by the caller before `subscribe`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sampan.ui_bridge.auth import Session
from sampan.ui_bridge.fanout import Outbox
from sampan.ui_bridge.state import Update, View, depth_message

log = logging.getLogger(__name__)

CLOSE_TRY_AGAIN = 1013


def dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


@dataclass(eq=False)
class Client:
    session: Session
    send_text: Callable[[str], Any]  # an async callable
    close: Callable[[int, str], Any]  # an async callable
    outbox: Outbox = field(default_factory=Outbox)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    depth: set[tuple[str, int]] = field(default_factory=set)
    accounts: set[str] = field(default_factory=set)
    market: bool = False
    recon: bool = False
    closed: bool = False

    def push(self, text: str) -> None:
        self.outbox.offer(text)
        self.wake.set()


@dataclass
class Stats:
    clients: int = 0
    coalesced: int = 0
    disconnected: int = 0
    sent: int = 0


class Hub:
    def __init__(self, view: View) -> None:
        self.view = view
        self.ready = False
        self.clients: set[Client] = set()
        self._depth: dict[tuple[str, int], set[Client]] = {}
        self._accounts: dict[str, set[Client]] = {}
        self._market: set[Client] = set()
        self._recon: set[Client] = set()
        self.stats = Stats()
        self.batches = 0
        self.last_batch_ns = 0

    # ---- records in --------------------------------------------------------------------------
    def on_batch(self, batch: list[tuple[str, dict[str, Any]]], caught_up: bool) -> None:
        self.batches += 1
        self.last_batch_ns = time.time_ns()
        woken: set[Client] = set()
        live = self.ready and bool(self.clients)
        # Depth is state: of several snapshots of one book in a batch only the last is sent,
        # so a follower that fell behind catches up without fanning out what is already stale.
        last_depth: dict[tuple[str, int], int] = {}
        if live:
            for i, (topic, record) in enumerate(batch):
                if topic == "md.depth":
                    last_depth[(record["venue"], record["security"])] = i
        for i, (topic, record) in enumerate(batch):
            updates = self.view.apply(topic, record)
            if not live:
                continue
            if topic == "md.depth" and last_depth[(record["venue"], record["security"])] != i:
                self.stats.coalesced += 1
                continue
            for update in updates:
                self._fan_out(update, woken)
        for client in woken:
            client.wake.set()
        if caught_up and not self.ready:
            self.ready = True
            log.info("ui: state rebuilt from the topics; accepting clients")

    def _fan_out(self, update: Update, woken: set[Client]) -> None:
        if update.channel == "depth":
            targets = self._depth.get(update.key, ())
            if targets:
                text = dumps(update.message)
                for client in targets:
                    client.outbox.offer_depth(update.key, text)
                    woken.add(client)
            return
        if update.channel == "account":
            targets = self._accounts.get(update.key, set())
        elif update.channel == "market":
            targets = self._market
        elif update.channel == "recon":
            targets = self._recon
        else:
            raise AssertionError(f"unknown channel {update.channel}")
        if targets:
            text = dumps(update.message)
            for client in targets:
                client.outbox.offer(text)
                woken.add(client)

    # ---- clients -----------------------------------------------------------------------------
    def add(self, client: Client) -> None:
        self.clients.add(client)
        self.stats.clients = max(self.stats.clients, len(self.clients))

    def remove(self, client: Client) -> None:
        client.closed = True
        self.clients.discard(client)
        for key in client.depth:
            self._depth.get(key, set()).discard(client)
        for account in client.accounts:
            self._accounts.get(account, set()).discard(client)
        self._market.discard(client)
        self._recon.discard(client)
        self.stats.coalesced += client.outbox.coalesced
        client.wake.set()

    def subscribe_depth(self, client: Client, security: int) -> None:
        for venue in ("INTERNAL", "HKEX"):
            key = (venue, security)
            client.depth.add(key)
            self._depth.setdefault(key, set()).add(client)
            snapshot = self.view.depth.get(key)
            if snapshot is not None:
                client.outbox.offer_depth(key, dumps(depth_message(snapshot)))
        client.wake.set()

    def unsubscribe_depth(self, client: Client, security: int) -> None:
        for venue in ("INTERNAL", "HKEX"):
            key = (venue, security)
            client.depth.discard(key)
            self._depth.get(key, set()).discard(client)

    def subscribe_account(self, client: Client, account: str) -> None:
        client.accounts.add(account)
        self._accounts.setdefault(account, set()).add(client)
        snapshot = self.view.snapshots.get(account)
        if snapshot is not None:
            client.push(dumps({"type": "account", **snapshot}))
        limits = self.view.accounts.get(account)
        if limits is not None:
            client.push(dumps({"type": "limits", **limits}))
        client.push(
            dumps(
                {"type": "inventory", "account": account, "positions": self.view.inventory(account)}
            )
        )

    def unsubscribe_account(self, client: Client, account: str) -> None:
        client.accounts.discard(account)
        self._accounts.get(account, set()).discard(client)

    def subscribe_market(self, client: Client) -> None:
        client.market = True
        self._market.add(client)
        for row in self.view.market_stats():
            client.push(dumps(row))
        client.push(dumps(self.view.movers()))

    def unsubscribe_market(self, client: Client) -> None:
        client.market = False
        self._market.discard(client)

    def subscribe_recon(self, client: Client) -> None:
        client.recon = True
        self._recon.add(client)

    async def run_sender(self, client: Client) -> None:
        """Send what the client's outbox holds as it fills; close the client if it overflowed."""
        while not client.closed:
            await client.wake.wait()
            client.wake.clear()
            if client.outbox.overflowed is not None:
                self.stats.disconnected += 1
                reason = client.outbox.overflowed
                log.warning("ui: closing a slow client of %s: %s", client.session.username, reason)
                await client.close(CLOSE_TRY_AGAIN, reason[:120])
                return
            while len(client.outbox) and not client.closed:
                for text in client.outbox.drain():
                    await client.send_text(text)
                    self.stats.sent += 1
                if client.outbox.failed() is not None:
                    client.wake.set()
                    break

    def totals(self) -> dict[str, int]:
        """Fan-out counters since start: clients now and at most, depth messages coalesced,
        clients closed for being slow, messages sent."""
        return {
            "clients": len(self.clients),
            "clients_max": self.stats.clients,
            "coalesced": self.stats.coalesced + sum(c.outbox.coalesced for c in self.clients),
            "disconnected": self.stats.disconnected,
            "sent": self.stats.sent,
        }
