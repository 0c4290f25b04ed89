"""Line arbitration: random loss, duplication and reordering on two lines; resets; refresh."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sampan.omd.wire import Message, NominalPrice, RefreshComplete, SequenceReset
from sampan.omd_ingest.arbitration import (
    ArbiterState,
    GapDetected,
    IllegalTransition,
    Line,
    LineArbiter,
    RefreshCollector,
    RefreshRequired,
    ResetRejected,
    retransmission_requests,
)

FOREVER_NS = 10**18


def msg(seq: int) -> NominalPrice:
    return NominalPrice(seq, seq)  # the payload names its sequence number, to check identity


Packet = tuple[int, list[Message]]


def line_packets(rng: random.Random, n: int) -> list[Packet]:
    """Seqs 1..n cut into packets of 1..5 messages; each line cuts differently (§4.2)."""
    out: list[Packet] = []
    seq = 1
    while seq <= n:
        size = min(rng.randint(1, 5), n - seq + 1)
        out.append((seq, [msg(s) for s in range(seq, seq + size)]))
        seq += size
    return out


def mangle(rng: random.Random, packets: list[Packet], drop: float, dup: float) -> list[Packet]:
    out: list[Packet] = []
    for p in packets:
        if rng.random() < drop:
            continue
        out.append(p)
        if rng.random() < dup:
            out.append(p)
    for i in range(len(out) - 1):  # local reordering, as UDP does
        if rng.random() < 0.2:
            out[i], out[i + 1] = out[i + 1], out[i]
    return out


def merge(rng: random.Random, a: list[Packet], b: list[Packet]) -> list[Packet]:
    out: list[Packet] = []
    i = j = 0
    while i < len(a) or j < len(b):
        if j >= len(b) or (i < len(a) and rng.random() < 0.5):
            out.append(a[i])
            i += 1
        else:
            out.append(b[j])
            j += 1
    return out


def ranges(seqs: set[int]) -> list[GapDetected]:
    out: list[GapDetected] = []
    for s in sorted(seqs):
        if out and out[-1].end_seq_num == s - 1:
            out[-1] = GapDetected(out[-1].begin_seq_num, s)
        else:
            out.append(GapDetected(s, s))
    return out


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 2**32),
    st.integers(1, 300),
    st.floats(0, 0.5),
    st.floats(0, 0.5),
    st.floats(0, 0.3),
)
def test_two_lossy_lines_deliver_every_message_once_in_order(
    seed: int, n: int, drop_a: float, drop_b: float, dup: float
) -> None:
    rng = random.Random(seed)
    a = mangle(rng, line_packets(rng, n), drop_a, dup)
    b = mangle(rng, line_packets(rng, n), drop_b, dup)
    arrivals = merge(rng, a, b)
    arrivals.append((n, []))  # a heartbeat on the surviving line reveals a lost tail
    have = {s for seq, ms in arrivals for s in range(seq, seq + len(ms))}
    missing = set(range(1, n + 1)) - have

    arbiter = LineArbiter(gap_timeout_ns=FOREVER_NS, pending_max=n + 1)
    delivered: list[tuple[int, Message]] = []
    for t, (seq, messages) in enumerate(arrivals):
        delivered += arbiter.on_packet(seq, messages, now_ns=t)
        assert arbiter.poll(now_ns=t) == []  # the other line still has time
    first_missing = min(missing, default=n + 1)
    assert delivered == [(s, msg(s)) for s in range(1, first_missing)]
    assert arbiter.poll(now_ns=2 * FOREVER_NS) == ranges(missing)
    assert arbiter.poll(now_ns=3 * FOREVER_NS) == []  # each gap is reported once

    # The retransmission server fills the gaps, in any order and framing.
    refill = [(s, [msg(s)]) for s in missing]
    rng.shuffle(refill)
    for seq, messages in refill:
        delivered += arbiter.on_packet(seq, messages, now_ns=0)
    assert delivered == [(s, msg(s)) for s in range(1, n + 1)]
    assert arbiter.open_gaps() == [] and arbiter.pending_count == 0


def test_gap_timeout_waits_for_the_other_line() -> None:
    arbiter = LineArbiter(gap_timeout_ns=100)
    assert arbiter.on_packet(1, [msg(1)], 0) == [(1, msg(1))]
    assert arbiter.on_packet(4, [msg(4)], 10) == []
    assert arbiter.poll(109) == []
    assert arbiter.on_packet(2, [msg(2)], 50) == [(2, msg(2))]  # line B had it
    assert arbiter.poll(110) == [GapDetected(3, 3)]
    assert arbiter.on_packet(3, [msg(3)], 200) == [(3, msg(3)), (4, msg(4))]


def test_retransmission_requests_respect_the_range_limit() -> None:
    reqs = retransmission_requests(7, GapDetected(1, 25_000))
    assert [(r.begin_seq_num, r.end_seq_num) for r in reqs] == [
        (1, 10_000),
        (10_001, 20_000),
        (20_001, 25_000),
    ]


def test_pending_overflow_switches_to_refresh() -> None:
    arbiter = LineArbiter(pending_max=5)
    arbiter.on_packet(1, [msg(1)], 0)
    for s in range(3, 10):
        assert arbiter.on_packet(s, [msg(s)], 0) == []
    assert arbiter.state is ArbiterState.REFRESHING
    assert arbiter.poll(0) == [RefreshRequired("pending buffer full")]
    assert arbiter.pending_count == 5


def test_gap_beyond_retransmission_reach_requires_refresh() -> None:
    arbiter = LineArbiter(gap_timeout_ns=0, retrans_available_max=100)
    arbiter.on_packet(1, [msg(1)], 0)
    arbiter.on_packet(200, [msg(200)], 0)
    events = arbiter.poll(1)
    assert len(events) == 1 and isinstance(events[0], RefreshRequired)
    assert arbiter.state is ArbiterState.REFRESHING


def test_late_joiner_refresh_drops_cached_up_to_last_seq_and_replays_the_rest() -> None:
    arbiter = LineArbiter(next_seq_num=None)
    for s in range(50, 81):
        assert arbiter.on_packet(s, [msg(s)], 0) == []
        assert arbiter.on_packet(s, [msg(s)], 0) == []  # line B's copy
    out = arbiter.complete_refresh(60, now_ns=0)
    assert out == [(s, msg(s)) for s in range(61, 81)]
    assert arbiter.state is ArbiterState.LIVE and arbiter.next_seq_num == 81
    assert arbiter.counters.dropped_by_refresh == 11
    with pytest.raises(IllegalTransition):
        arbiter.complete_refresh(90, now_ns=0)


def test_refresh_older_than_the_cache_leaves_a_gap_to_retransmit() -> None:
    arbiter = LineArbiter(next_seq_num=None, gap_timeout_ns=0)
    for s in range(65, 70):
        arbiter.on_packet(s, [msg(s)], 0)
    assert arbiter.complete_refresh(60, now_ns=0) == []
    assert arbiter.poll(0) == [GapDetected(61, 64)]


def test_begin_refresh_caches_and_is_not_reentrant() -> None:
    arbiter = LineArbiter()
    arbiter.on_packet(1, [msg(1)], 0)
    arbiter.begin_refresh()
    with pytest.raises(IllegalTransition):
        arbiter.begin_refresh()
    assert arbiter.on_packet(2, [msg(2), msg(3)], 0) == []
    assert arbiter.complete_refresh(2, 0) == [(3, msg(3))]


def test_start_of_day_reset_on_both_lines_is_acted_on_once() -> None:
    arbiter = LineArbiter()
    reset = SequenceReset(1)
    out = arbiter.on_packet(1, [reset], 0)
    out += arbiter.on_packet(2, [msg(2), msg(3)], 0)
    out += arbiter.on_packet(1, [reset], 0)  # line B's copy
    out += arbiter.on_packet(2, [msg(2)], 0)
    out += arbiter.on_packet(3, [msg(3), msg(4)], 0)
    assert out == [(1, reset), (2, msg(2)), (3, msg(3)), (4, msg(4))]


def test_intraday_reset_restarts_numbering_at_new_seq_no() -> None:
    arbiter = LineArbiter(gap_timeout_ns=0)
    arbiter.on_packet(1, [msg(s) for s in range(1, 10)], 0)
    arbiter.on_packet(12, [msg(12)], 0)  # pending behind a hole
    reset = SequenceReset(1)
    assert arbiter.on_packet(500, [reset], 0, Line.A) == []  # line A alone proves nothing
    assert arbiter.reset_pending
    assert arbiter.on_packet(500, [reset], 0, Line.B) == [(500, reset)]
    assert arbiter.open_gaps() == [] and arbiter.pending_count == 0
    assert arbiter.on_packet(1, [msg(1)], 0) == [(1, msg(1))]


def test_a_reset_on_one_line_while_the_other_goes_on_is_rejected() -> None:
    arbiter = LineArbiter(gap_timeout_ns=10**9, reset_confirm_ns=100)
    out = arbiter.on_packet(1, [msg(s) for s in range(1, 6)], 0, Line.A)
    out += arbiter.on_packet(1, [SequenceReset(1)], 1, Line.A)  # forged: SeqNum 1, NewSeqNo 1
    out += arbiter.on_packet(1, [msg(s) for s in range(1, 8)], 2, Line.B)  # B goes on
    out += arbiter.on_packet(6, [msg(6), msg(7)], 3, Line.A)
    assert arbiter.poll(50) == []  # still within the confirmation window
    out += arbiter.on_packet(8, [msg(8)], 60, Line.A)
    (event,) = arbiter.poll(101)
    assert arbiter.poll(10**6) == []  # rejected once, nothing left to settle
    assert type(event) is ResetRejected and event.line is Line.A
    assert not arbiter.reset_pending and arbiter.counters.resets_rejected == 1
    out += arbiter.on_packet(9, [msg(9)], 200, Line.B)
    assert out == [(s, msg(s)) for s in range(1, 10)]  # nothing cleared, lost or repeated
    assert arbiter.open_gaps() == [] and arbiter.poll(10**12) == []


def test_a_reset_confirmed_by_the_other_line_is_acted_on_once() -> None:
    arbiter = LineArbiter(reset_confirm_ns=100)
    arbiter.on_packet(1, [msg(s) for s in range(1, 51)], 0, Line.A)
    arbiter.on_packet(1, [msg(s) for s in range(1, 51)], 0, Line.B)
    reset = SequenceReset(1)
    out = arbiter.on_packet(1, [reset], 10, Line.A)
    out += arbiter.on_packet(2, [msg(2), msg(3)], 11, Line.A)  # A is ahead in the new numbering
    assert out == []  # read as old duplicates until the reset is confirmed
    out += arbiter.on_packet(1, [reset, msg(2)], 12, Line.B)
    out += arbiter.on_packet(3, [msg(3), msg(4)], 13, Line.B)
    out += arbiter.on_packet(1, [reset], 14, Line.A)  # a late repeat: the same reset
    assert out == [(1, reset), (2, msg(2)), (3, msg(3)), (4, msg(4))]
    assert arbiter.poll(10**6) == []


def test_an_unconfirmed_reset_with_the_other_line_silent_refreshes() -> None:
    arbiter = LineArbiter(reset_confirm_ns=100)
    arbiter.on_packet(1, [msg(s) for s in range(1, 21)], 0, Line.A)
    assert arbiter.on_packet(1, [SequenceReset(1)], 10, Line.A) == []
    assert arbiter.on_packet(2, [msg(2)], 11, Line.A) == []
    assert arbiter.poll(111) == []  # line B's packets may still wait behind our backlog
    assert arbiter.reset_pending
    (event,) = arbiter.poll(1_010)
    assert type(event) is RefreshRequired and arbiter.state is ArbiterState.REFRESHING
    assert arbiter.counters.resets_unsettled == 1
    # The snapshot settles the numbering: here the reset was real and the stream is at 3.
    arbiter.on_packet(3, [msg(3), msg(4)], 120, Line.A)
    assert arbiter.complete_refresh(3, 130) == [(4, msg(4))]


def test_a_retransmitted_reset_is_never_acted_on() -> None:
    arbiter = LineArbiter()
    out = arbiter.on_packet(1, [msg(s) for s in range(1, 4)], 0, Line.A)
    out += arbiter.on_packet(1, [SequenceReset(1), msg(2)], 1, Line.RETRANSMISSION)
    out += arbiter.on_packet(4, [msg(4)], 2, Line.B)
    assert out == [(s, msg(s)) for s in range(1, 5)]
    assert not arbiter.reset_pending and arbiter.counters.resets_retransmitted == 1


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32), st.integers(2, 200), st.floats(0, 0.5), st.floats(0, 1))
def test_a_forged_reset_on_line_a_changes_nothing(
    seed: int, n: int, drop_a: float, where: float
) -> None:
    rng = random.Random(seed)
    a = [(Line.A, p) for p in mangle(rng, line_packets(rng, n), drop_a, 0.1)]
    b = [(Line.B, p) for p in mangle(rng, line_packets(rng, n), 0.0, 0.1)]
    arrivals = merge(rng, a, b)  # type: ignore[arg-type]
    forged: tuple[Line, Packet] = (Line.A, (1, [SequenceReset(1)]))
    # Before the first delivery a reset at 1 contradicts nothing (it is the day's first
    # message), so the forgery comes after line B's first packet.
    arrivals.insert(0, (Line.B, (1, [msg(1)])))  # type: ignore[arg-type]
    arrivals.insert(1 + int(where * len(arrivals)), forged)  # type: ignore[arg-type]
    arrivals.append((Line.B, (n, [])))  # line B's heartbeat: it is alive after the forgery

    arbiter = LineArbiter(gap_timeout_ns=FOREVER_NS, reset_confirm_ns=FOREVER_NS)
    delivered: list[tuple[int, Message]] = []
    for t, (line, (seq, messages)) in enumerate(arrivals):  # type: ignore[misc]
        delivered += arbiter.on_packet(seq, messages, t, line)
    events = arbiter.poll(2 * FOREVER_NS)
    assert [type(e) for e in events] == [ResetRejected]
    assert delivered == [(s, msg(s)) for s in range(1, n + 1)]
    assert arbiter.state is ArbiterState.LIVE and arbiter.counters.resets_rejected == 1


def test_refresh_collector_cuts_one_snapshot_between_two_refresh_completes() -> None:
    collector = RefreshCollector()
    assert collector.on_packet(1, [msg(100), RefreshComplete(40)]) is None
    assert collector.on_packet(3, [msg(1), msg(2)]) is None
    assert collector.on_packet(3, [msg(1), msg(2)]) is None  # a doubled packet
    assert collector.on_packet(4, []) is None  # heartbeat, no loss
    snapshot = collector.on_packet(5, [msg(3), RefreshComplete(57), msg(9)])
    assert snapshot is not None
    assert snapshot.last_seq_num == 57 and snapshot.messages == (msg(1), msg(2), msg(3))


def test_refresh_collector_abandons_a_snapshot_with_a_hole() -> None:
    collector = RefreshCollector()
    collector.on_packet(1, [RefreshComplete(40), msg(1)])
    assert collector.on_packet(4, [msg(3), RefreshComplete(57)]) is None  # 3 was lost
    assert collector.abandoned == 1
    snapshot = collector.on_packet(6, [msg(4), RefreshComplete(70)])
    assert snapshot is not None and snapshot.messages == (msg(4),)


def test_the_days_first_reset_lost_on_both_lines_comes_from_the_retransmission_server() -> None:
    arbiter = LineArbiter(gap_timeout_ns=10)
    reset = SequenceReset(1)
    out = arbiter.on_packet(2, [msg(2), msg(3)], 0, Line.A)
    assert arbiter.poll(10) == [GapDetected(1, 1)]
    out += arbiter.on_packet(1, [reset], 11, Line.RETRANSMISSION)
    assert out == [(1, reset), (2, msg(2)), (3, msg(3))]
