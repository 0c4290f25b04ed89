"""Line arbitration, gap detection and refresh sequencing for one OMD-C channel (§4). Pure.

Guarantees:
- ``LineArbiter.on_packet`` takes packets from line A, line B or the retransmission server in
  any order and returns ``(seq_num, message)`` pairs so that, over the arbiter's life, every
  sequence number is delivered at most once and in strictly increasing order, each as the
  first copy that arrived (§4.2: arbitrate per message sequence number, not per packet).
- Messages beyond a hole wait in a pending buffer of at most ``pending_max`` messages. A hole
  that stays open for ``gap_timeout_ns`` is reported once by ``poll`` as ``GapDetected`` with
  its exact inclusive range, for the caller to fill from the retransmission server (feed the
  retransmitted packets to ``on_packet`` like any other). Heartbeats reveal holes at the tail.
- If the buffer would overflow, or a hole exceeds what the retransmission server keeps, the
  arbiter switches itself to ``REFRESHING`` and ``poll`` returns ``RefreshRequired``.
- In ``REFRESHING`` it caches the live stream (bounded, oldest arrival evicted first) and
  delivers nothing. ``complete_refresh(last_seq_num)`` drops the cached messages up to
  ``last_seq_num`` and replays the rest through the normal in-order path (§4.4).
- A ``SequenceReset`` (100) is believed only as line arbitration allows (§4.2: lines A and B
  carry the same messages under the same sequence numbers). A reset that is the very message
  expected next before anything was delivered contradicts nothing and is acted on at once.
  Any other reset waits until the other line delivers the same reset (same SeqNum and
  NewSeqNo); meanwhile both lines go on being arbitrated under the current numbering. When
  it is believed, the buffer and holes are dropped, the reset is delivered (so the caller
  clears its state) and numbering restarts. If the other line has not confirmed it within
  ``reset_confirm_ns``: when that line went on with the current numbering (it delivered a
  sequence number at or beyond the highest known when the reset came), the reset is a stray
  or forged datagram and is rejected (``ResetRejected``, nothing else changes), as soon as
  that is seen after the window; when that line says nothing that settles it (silent, or only
  low numbers) for ``RESET_SETTLE_WINDOWS`` windows, the arbiter cannot tell and switches to a
  refresh, whose snapshot says which numbering is live. (The longer wait is for our own
  backlog: the other line's packets may be waiting behind a burst we are still applying.) A reset that comes
  from the retransmission server is history, never acted on (unless it is the day's
  first message, retransmitted because both lines lost it). The second line's copy of a
  believed reset is ignored while fewer than ``reset_duplicate_window`` messages have been
  delivered since it; past that, an identical reset is a new one (HKEX always sends SeqNum 1
  and NewSeqNo 1, so a second reset in a day looks the same).

Limits:
- Messages are arbitrated first copy wins, whichever line; only resets look at the line.
- One line alone can never make a reset believed except through a refresh: an attacker who
  can forge datagrams on both lines at once is outside what arbitration can detect.
- Time is the caller's ``now_ns``; the arbiter never reads a clock.
- A packet of the old numbering that the slower line delivers after the reset looks like a
  message far ahead and opens a spurious hole. Resets happen before the open, so that hole
  times out into a retransmission request or refresh rather than corrupting anything.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from sampan.omd.wire import Message, RefreshComplete, RetransmissionRequest, SequenceReset

GAP_TIMEOUT_NS_DEFAULT = 50_000_000  # wait 50 ms for the other line before asking the RTS
PENDING_MAX_DEFAULT = 100_000
RETRANS_AVAILABLE_MAX = 50_000  # §4.3: the RTS keeps the last 50,000 messages per channel
RETRANS_RANGE_MAX = 10_000  # §4.3: at most 10,000 messages per request
# A line lags the other by at most a few packets; a repeat of the same reset beyond this many
# messages after it is a genuine new reset.
RESET_DUPLICATE_WINDOW_DEFAULT = 1_000
REFRESH_MESSAGES_MAX_DEFAULT = 1_000_000
# How long a reset seen on one line waits for the other line's copy. Lines lag each other by
# milliseconds; a reset is rare, so waiting longer costs nothing while it is pending.
RESET_CONFIRM_NS_DEFAULT = 500_000_000
RESET_SETTLE_WINDOWS = 10


class Line(enum.Enum):
    """Where a packet came from."""

    A = "A"
    B = "B"
    RETRANSMISSION = "RTS"


class ArbiterState(enum.Enum):
    LIVE = "live"
    REFRESHING = "refreshing"


class IllegalTransition(RuntimeError):
    """A method called in a state that does not allow it: a bug in the caller."""


@dataclass(frozen=True, slots=True)
class GapDetected:
    """Messages begin_seq_num..end_seq_num (inclusive) are missing on both lines."""

    begin_seq_num: int
    end_seq_num: int


@dataclass(frozen=True, slots=True)
class RefreshRequired:
    """The arbiter has switched to REFRESHING; run a refresh and call complete_refresh."""

    reason: str


@dataclass(frozen=True, slots=True)
class ResetRejected:
    """A SequenceReset seen on one line only while the other went on with the numbering."""

    seq_num: int
    line: Line
    reason: str


ArbiterEvent = GapDetected | RefreshRequired | ResetRejected
Delivery = tuple[int, Message]


@dataclass(slots=True)
class _Hole:
    begin: int
    end: int
    since_ns: int
    reported: bool


@dataclass(slots=True)
class _PendingReset:
    seq_num: int
    new_seq_no: int
    line: Line
    since_ns: int
    high_at_reset: int  # the highest sequence number known when the reset came
    other_high: int = -1  # the highest number the other line delivered since


@dataclass(slots=True)
class ArbiterCounters:
    delivered: int = 0
    duplicates: int = 0
    evicted: int = 0
    dropped_by_refresh: int = 0
    resets_rejected: int = 0
    resets_unsettled: int = 0
    resets_retransmitted: int = 0


class LineArbiter:
    """Merges lines A and B (and retransmissions) of one channel into one ordered stream."""

    def __init__(
        self,
        *,
        next_seq_num: int | None = 1,
        gap_timeout_ns: int = GAP_TIMEOUT_NS_DEFAULT,
        pending_max: int = PENDING_MAX_DEFAULT,
        retrans_available_max: int = RETRANS_AVAILABLE_MAX,
        reset_duplicate_window: int = RESET_DUPLICATE_WINDOW_DEFAULT,
        reset_confirm_ns: int = RESET_CONFIRM_NS_DEFAULT,
    ) -> None:
        """``next_seq_num=None`` starts a late joiner in REFRESHING."""
        assert pending_max >= 1 and gap_timeout_ns >= 0
        self.gap_timeout_ns = gap_timeout_ns
        self.pending_max = pending_max
        self.retrans_available_max = retrans_available_max
        self.reset_duplicate_window = reset_duplicate_window
        self.reset_confirm_ns = reset_confirm_ns
        self._reset_pending: _PendingReset | None = None
        self._reset_next = 0  # next expected right after the last reset
        self.counters = ArbiterCounters()
        self._pending: dict[int, Message] = {}
        self._holes: list[_Hole] = []
        self._events: list[ArbiterEvent] = []
        self._last_reset: tuple[int, int] | None = None
        if next_seq_num is None:
            self._state = ArbiterState.REFRESHING
            self._next = 0
        else:
            self._state = ArbiterState.LIVE
            self._next = next_seq_num
        self._high = self._next - 1  # highest sequence number known to exist

    @property
    def state(self) -> ArbiterState:
        return self._state

    @property
    def next_seq_num(self) -> int:
        return self._next

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def open_gaps(self) -> list[GapDetected]:
        return [GapDetected(h.begin, h.end) for h in self._holes]

    @property
    def reset_pending(self) -> bool:
        return self._reset_pending is not None

    def on_packet(
        self, seq_num: int, messages: Sequence[Message], now_ns: int, line: Line = Line.A
    ) -> list[Delivery]:
        """Accept one packet; return the messages that are now deliverable, in order."""
        out: list[Delivery] = []
        pending = self._reset_pending
        if pending is not None and line is not pending.line and line is not Line.RETRANSMISSION:
            last = seq_num + len(messages) - 1 if messages else seq_num
            pending.other_high = max(pending.other_high, last)
        if not messages:  # a heartbeat: SeqNum is the last message sent
            if self._state is ArbiterState.LIVE and seq_num > self._high:
                self._extend(seq_num + 1, now_ns)
            self._high = max(self._high, seq_num)
            return out
        seq = seq_num
        for message in messages:
            if type(message) is SequenceReset:
                self._on_reset(seq, message, line, now_ns, out)
            elif self._state is ArbiterState.LIVE:
                self._accept_live(seq, message, now_ns, out)
            else:
                self._cache(seq, message)
            seq += 1
        return out

    def _accept_live(self, seq: int, message: Message, now_ns: int, out: list[Delivery]) -> None:
        nxt = self._next
        if seq < nxt or seq in self._pending:
            self.counters.duplicates += 1
            return
        if seq == nxt and not self._holes:  # the common case: in order, nothing waiting
            out.append((seq, message))
            self._next = nxt + 1
            self._high = max(self._high, seq)
            self.counters.delivered += 1
            return
        if seq > self._high:
            self._extend(seq, now_ns)
            self._high = seq
        else:
            self._fill(seq)
        if seq == nxt:
            out.append((seq, message))
            self._next = nxt + 1
            self.counters.delivered += 1
            self._drain(out)
            return
        if len(self._pending) >= self.pending_max:
            self._switch_to_refresh("pending buffer full")
            self._cache(seq, message)
            return
        self._pending[seq] = message

    def _extend(self, seq: int, now_ns: int) -> None:
        """A message ``seq`` beyond the highest known one: everything between is a hole."""
        if seq > self._high + 1:
            self._holes.append(_Hole(self._high + 1, seq - 1, now_ns, False))

    def _fill(self, seq: int) -> None:
        """``seq`` arrived inside a hole: shrink or split that hole."""
        for i, hole in enumerate(self._holes):
            if hole.begin <= seq <= hole.end:
                if hole.begin == hole.end:
                    del self._holes[i]
                elif seq == hole.begin:
                    hole.begin += 1
                elif seq == hole.end:
                    hole.end -= 1
                else:
                    tail = _Hole(seq + 1, hole.end, hole.since_ns, hole.reported)
                    hole.end = seq - 1
                    self._holes.insert(i + 1, tail)
                return
        raise AssertionError(f"{seq} is below the high mark but in no hole")

    def _drain(self, out: list[Delivery]) -> None:
        pending = self._pending
        nxt = self._next
        while nxt in pending:
            out.append((nxt, pending.pop(nxt)))
            nxt += 1
            self.counters.delivered += 1
        self._next = nxt

    def _cache(self, seq: int, message: Message) -> None:
        pending = self._pending
        if seq in pending:
            self.counters.duplicates += 1
            return
        if len(pending) >= self.pending_max:
            # Evict the oldest arrival: the refresh snapshot most likely covers it already.
            del pending[next(iter(pending))]
            self.counters.evicted += 1
        pending[seq] = message
        self._high = max(self._high, seq)

    def _on_reset(
        self, seq: int, message: SequenceReset, line: Line, now_ns: int, out: list[Delivery]
    ) -> None:
        key = (seq, message.new_seq_no)
        if key == self._last_reset and self._next - self._reset_next < self.reset_duplicate_window:
            self.counters.duplicates += 1
            return
        pending = self._reset_pending
        # Before anything has been delivered there is no numbering a reset could contradict
        # (the day's first message, also when both lines lost it and it was retransmitted).
        in_sequence = (
            self._state is ArbiterState.LIVE and self.counters.delivered == 0 and seq == self._next
        )
        if in_sequence and seq == message.new_seq_no:
            # It is simply the next message of the numbering it starts: what waits behind it
            # (the same numbering) stays and is delivered after it.
            self._reset_pending = None
            self._last_reset = key
            self._reset_next = seq + 1
            self._accept_live(seq, message, now_ns, out)
            return
        if not in_sequence:
            if line is Line.RETRANSMISSION:
                self.counters.resets_retransmitted += 1  # history: acted on when it was live
                return
            if pending is None or (pending.seq_num, pending.new_seq_no) != key:
                self._reset_pending = _PendingReset(
                    seq, message.new_seq_no, line, now_ns, self._high
                )
                return
            if line is pending.line:
                self.counters.duplicates += 1  # the same line's copy confirms nothing
                return
        self._believe_reset(seq, message, out)

    def _believe_reset(self, seq: int, message: SequenceReset, out: list[Delivery]) -> None:
        self._reset_pending = None
        self._last_reset = (seq, message.new_seq_no)
        self._pending.clear()
        self._holes.clear()
        self._state = ArbiterState.LIVE
        out.append((seq, message))
        self.counters.delivered += 1
        # §3.4.2 says to set the next expected number to NewSeqNo, and §2.2.1 that the reset
        # itself carries number 1 (= NewSeqNo) at the start of day. When the reset occupies
        # NewSeqNo, the next message is NewSeqNo + 1 (§4.1: each packet's SeqNum is the
        # previous plus its MsgCount); otherwise numbering restarts at NewSeqNo.
        new = message.new_seq_no
        self._next = new + 1 if seq == new else new
        self._reset_next = self._next
        self._high = self._next - 1

    def _switch_to_refresh(self, reason: str) -> None:
        self._state = ArbiterState.REFRESHING
        self._holes.clear()
        self._events.append(RefreshRequired(reason))

    def _settle_reset(self, now_ns: int) -> None:
        """A reset the other line has not confirmed in time: reject it or refresh."""
        pending = self._reset_pending
        if pending is None or now_ns - pending.since_ns < self.reset_confirm_ns:
            return
        if pending.other_high >= pending.high_at_reset >= 1:
            self._reset_pending = None
            self.counters.resets_rejected += 1
            self._events.append(
                ResetRejected(
                    pending.seq_num,
                    pending.line,
                    f"not on the other line, which went on to {pending.other_high}",
                )
            )
            return
        if now_ns - pending.since_ns < self.reset_confirm_ns * RESET_SETTLE_WINDOWS:
            return
        self._reset_pending = None
        # The other line is silent or sent only numbers the reset's numbering could also
        # have: only the refresh channel can say which numbering is live. What is cached may
        # mix both numberings, so it is dropped; the snapshot covers it.
        self.counters.resets_unsettled += 1
        self._pending.clear()
        if self._state is ArbiterState.LIVE:
            self._switch_to_refresh(
                f"SequenceReset at {pending.seq_num} on line {pending.line.value} not confirmed"
            )
        else:
            self._events.append(RefreshRequired("unconfirmed SequenceReset while refreshing"))

    def poll(self, now_ns: int) -> list[ArbiterEvent]:
        """Events since the last poll, and holes that have now waited ``gap_timeout_ns``."""
        self._settle_reset(now_ns)
        if self._state is ArbiterState.LIVE:
            deadline = now_ns - self.gap_timeout_ns
            for hole in self._holes:
                if not hole.reported and hole.since_ns <= deadline:
                    if hole.end - hole.begin + 1 > self.retrans_available_max:
                        self._switch_to_refresh(f"gap {hole.begin}..{hole.end} beyond RTS reach")
                        break
                    hole.reported = True
                    self._events.append(GapDetected(hole.begin, hole.end))
        events, self._events = self._events, []
        return events

    def begin_refresh(self) -> None:
        """Caller-initiated refresh (late start, failed retransmission, SequenceReset)."""
        if self._state is ArbiterState.REFRESHING:
            raise IllegalTransition("begin_refresh while already refreshing")
        self._state = ArbiterState.REFRESHING
        self._holes.clear()

    def complete_refresh(self, last_seq_num: int, now_ns: int) -> list[Delivery]:
        """The snapshot is synchronised with ``last_seq_num``: replay the cache after it."""
        if self._state is not ArbiterState.REFRESHING:
            raise IllegalTransition("complete_refresh while live")
        cached = sorted(self._pending.items())
        self._pending.clear()
        self._state = ArbiterState.LIVE
        self._next = last_seq_num + 1
        self._high = last_seq_num
        out: list[Delivery] = []
        for seq, message in cached:
            if seq <= last_seq_num:
                self.counters.dropped_by_refresh += 1
            else:
                self._accept_live(seq, message, now_ns, out)
        return out


def retransmission_requests(
    channel_id: int, gap: GapDetected, range_max: int = RETRANS_RANGE_MAX
) -> list[RetransmissionRequest]:
    """The requests (201) that cover ``gap``, each within the server's range limit."""
    out = []
    begin = gap.begin_seq_num
    while begin <= gap.end_seq_num:
        end = min(gap.end_seq_num, begin + range_max - 1)
        out.append(RetransmissionRequest(channel_id, begin, end))
        begin = end + 1
    return out


@dataclass(frozen=True, slots=True)
class RefreshSnapshot:
    """One complete snapshot from the refresh channel, synchronised with last_seq_num."""

    last_seq_num: int
    messages: tuple[Message, ...]


class RefreshCollector:
    """Cuts one gap-free snapshot out of a refresh channel (§4.4).

    Discards everything up to the first RefreshComplete, collects until the next one and
    returns the snapshot between them. A hole in the refresh channel's numbering, or more
    than ``messages_max`` messages, abandons the snapshot and waits for the next (the RTS
    does not serve refresh channels).
    """

    __slots__ = ("_buf", "_collecting", "_expected", "abandoned", "messages_max")

    def __init__(self, messages_max: int = REFRESH_MESSAGES_MAX_DEFAULT) -> None:
        self.messages_max = messages_max
        self.abandoned = 0
        self._collecting = False
        self._expected: int | None = None
        self._buf: list[Message] = []

    def on_packet(self, seq_num: int, messages: Sequence[Message]) -> RefreshSnapshot | None:
        if self._collecting and self._expected is not None:
            at = seq_num + 1 if not messages else seq_num
            if at > self._expected:
                self._abandon()
            elif at < self._expected and messages:
                # A repeat of what we have (refresh lines can be doubled too): keep only
                # the new tail.
                skip = self._expected - seq_num
                messages = messages[skip:]
                seq_num = self._expected
        if not messages:
            return None
        self._expected = seq_num + len(messages)
        for message in messages:
            if type(message) is RefreshComplete:
                if self._collecting:
                    snapshot = RefreshSnapshot(message.last_seq_num, tuple(self._buf))
                    self._buf = []
                    self._collecting = False
                    return snapshot
                self._collecting = True
                self._buf = []
            elif self._collecting:
                if len(self._buf) >= self.messages_max:
                    self._abandon()
                else:
                    self._buf.append(message)
        return None

    def _abandon(self) -> None:
        self.abandoned += 1
        self._collecting = False
        self._buf = []
