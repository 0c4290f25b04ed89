"""Decode-and-apply throughput of the pure core: the number the product's goal is set in.

``run_decode_apply_bench(seed, messages)`` builds a seeded stream of AggregateOrderBookUpdate
(53) and Trade (50) messages that is valid against the book rules, packs it into real OMD-C
packets, then times decoding every packet and applying every 53 to its book on one core.
Building the stream is not timed. The figure is messages per second of wall time.
"""

from __future__ import annotations

import random
import time

from sampan.omd.packets import decode_packet, pack_messages
from sampan.omd.wire import (
    ACTION_CHANGE,
    ACTION_DELETE,
    ACTION_NEW,
    AggregateOrderBookUpdate,
    BookEntry,
    Message,
    Trade,
)
from sampan.omd_ingest.book import LEVELS_MAX, AggregateBook, BookSet

SECURITIES = 50
TRADE_SHARE = 0.2


def _book_update(rng: random.Random, book: AggregateBook) -> AggregateOrderBookUpdate:
    """A valid one- or two-entry update to ``book``, applied to it as it is generated."""
    entries = []
    for _ in range(rng.choice((1, 1, 2))):
        side = rng.randrange(2)
        levels = book.bids if side == 0 else book.asks
        roll = rng.random()
        if levels and roll < 0.5:
            i = rng.randrange(len(levels))
            price = levels[i][0]
            entry = BookEntry(
                rng.randrange(1, 10**6), price, rng.randrange(1, 50), side, i + 1, ACTION_CHANGE
            )
        elif len(levels) > 3 and roll < 0.75:
            i = rng.randrange(len(levels))
            entry = BookEntry(0, levels[i][0], 0, side, i + 1, ACTION_DELETE)
        else:
            # Insert at a free price between neighbours; bids below 100.000, offers above.
            taken = {p for p, _, _ in levels}
            base = 100_000
            prices = [base - 10 * k if side == 0 else base + 10 * (k + 1) for k in range(40)]
            free = [p for p in prices if p not in taken]
            price = rng.choice(free)
            ordered = sorted([*taken, price], reverse=side == 0)
            level = ordered.index(price) + 1
            if level > LEVELS_MAX:
                continue
            entry = BookEntry(rng.randrange(1, 10**6), price, 1, side, level, ACTION_NEW)
        book.apply_entry(entry)
        entries.append(entry)
    return AggregateOrderBookUpdate(book.security_code, tuple(entries))


def _stream(seed: int, messages: int) -> list[Message]:
    rng = random.Random(seed)
    shadow = {code: AggregateBook(code) for code in range(1, SECURITIES + 1)}
    out: list[Message] = []
    while len(out) < messages:
        code = rng.randrange(1, SECURITIES + 1)
        if rng.random() < TRADE_SHARE:
            out.append(Trade(code, len(out), 100_000, 100 * rng.randrange(1, 20), 0, len(out)))
            continue
        update = _book_update(rng, shadow[code])
        if update.entries:
            out.append(update)
    return out


def run_decode_apply_bench(seed: int, messages: int) -> dict[str, float]:
    """Time decode + apply over ``messages`` seeded messages; returns the rates measured."""
    stream = _stream(seed, messages)
    packets = pack_messages(1, 0, stream)
    books = BookSet()
    decoded = 0
    trades = 0
    start = time.perf_counter()
    for raw in packets:
        packet = decode_packet(raw)
        for message in packet.messages:
            if type(message) is AggregateOrderBookUpdate:
                books.apply(message)
            elif type(message) is Trade:
                trades += 1
            decoded += 1
    elapsed_s = time.perf_counter() - start
    assert decoded == len(stream)
    return {
        "messages": float(decoded),
        "packets": float(len(packets)),
        "trades": float(trades),
        "elapsed_s": elapsed_s,
        "decode_apply_msgs_per_s": decoded / elapsed_s if elapsed_s > 0 else float("inf"),
    }


if __name__ == "__main__":
    print(run_decode_apply_bench(seed=7, messages=200_000))
