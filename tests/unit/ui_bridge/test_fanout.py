"""The per-client outbox: depth coalesces, history is kept in order, overflow closes."""

from __future__ import annotations

from sampan.ui_bridge.fanout import Outbox


def test_depth_coalesces_latest_per_book_wins() -> None:
    box = Outbox()
    for i in range(100):
        box.offer_depth(("INTERNAL", 700), f"d{i}")
    box.offer_depth(("HKEX", 700), "h")
    assert box.coalesced == 99
    assert box.drain() == ["d99", "h"]
    assert len(box) == 0


def test_history_is_kept_in_order_before_depth() -> None:
    box = Outbox()
    box.offer_depth(("INTERNAL", 5), "depth")
    box.offer("exec1")
    box.offer("exec2")
    assert box.drain() == ["exec1", "exec2", "depth"]


def test_overflow_marks_the_client_and_bounds_memory() -> None:
    box = Outbox(messages_max=10)
    for i in range(11):
        box.offer(f"m{i}")
    reason = box.failed()
    assert reason is not None and "too slow" in reason
    box.offer("more")
    box.offer_depth(("INTERNAL", 1), "d")
    assert len(box) == 0


def test_books_are_bounded() -> None:
    box = Outbox(books_max=2)
    box.offer_depth(("INTERNAL", 1), "a")
    box.offer_depth(("INTERNAL", 2), "b")
    assert box.failed() is None
    box.offer_depth(("INTERNAL", 3), "c")
    assert box.failed() is not None


def test_drain_is_bounded() -> None:
    box = Outbox()
    for i in range(20):
        box.offer(str(i))
    assert len(box.drain(limit=5)) == 5
    assert len(box) == 15
