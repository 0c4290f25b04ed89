"""A bounded outbox per WebSocket client: coalesce what may be coalesced, close what cannot keep up.

Guarantees: `offer` never blocks and never grows memory past its bounds, so a slow client can
never stall the Kafka consumers or another client. Depth is state, not history: a depth message
replaces any unsent one for the same venue and security (latest wins, counted in `coalesced`),
so at most one per book waits. Every other message (execution reports, account headers,
inventory, errors) is history and is kept in order, up to `messages_max`; when that is full the
client is marked `overflowed` with a reason and the server closes it (code 1013, "try again
later"), which the page answers by reconnecting and reloading its state over REST.

Limits: `books_max` bounds how many distinct books wait (a client subscribes to at most that
many). Messages are pre-serialised text, shared between all clients that get them.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

MESSAGES_MAX = 1_000  # history messages waiting for one client
BOOKS_MAX = 200  # books one client may subscribe to (depth waits at most one per book)
DRAIN_MAX = 500  # messages handed to the sender at once

DepthKey = tuple[str, int]  # (venue, security)


@dataclass
class Outbox:
    messages_max: int = MESSAGES_MAX
    books_max: int = BOOKS_MAX
    coalesced: int = 0
    overflowed: str | None = None
    _depth: OrderedDict[DepthKey, str] = field(default_factory=OrderedDict)
    _messages: deque[str] = field(default_factory=deque)

    def __len__(self) -> int:
        return len(self._depth) + len(self._messages)

    def failed(self) -> str | None:
        """Why the client must be closed, or None."""
        return self.overflowed

    def offer_depth(self, key: DepthKey, text: str) -> None:
        if self.overflowed is not None:
            return
        if key in self._depth:
            self._depth[key] = text
            self.coalesced += 1
            return
        if len(self._depth) >= self.books_max:
            self.overflowed = f"more than {self.books_max} books waiting"
            return
        self._depth[key] = text

    def offer(self, text: str) -> None:
        if self.overflowed is not None:
            return
        if len(self._messages) >= self.messages_max:
            self.overflowed = (
                f"client too slow: {self.messages_max} messages waiting; reconnect to resync"
            )
            self._messages.clear()
            self._depth.clear()
            return
        self._messages.append(text)

    def drain(self, limit: int = DRAIN_MAX) -> list[str]:
        """Up to `limit` texts to send now: history first (it is older than any waiting depth),
        then the latest depth per book."""
        out: list[str] = []
        while self._messages and len(out) < limit:
            out.append(self._messages.popleft())
        while self._depth and len(out) < limit:
            out.append(self._depth.popitem(last=False)[1])
        return out
