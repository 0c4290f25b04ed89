"""Property: whatever a lossy link drops, and however deliveries interleave, recovery (resend
requests, gap fills, PossDup replays, reconnects with NextExpectedMsgSeqNum) delivers every
business message exactly once and in order, in both directions."""

from __future__ import annotations

from fix_harness import Pair, S, order, report
from hypothesis import given, settings
from hypothesis import strategies as st

from sampan.fix.codec import FixMessage
from sampan.fix.session_types import SessionState

ACTIONS = ["send_a", "send_b", "deliver_a", "deliver_b", "tick", "cut", "reconnect"]
_LIVE = (SessionState.ACTIVE,)


def _recover(pair: Pair, sent: dict[str, list[str]]) -> None:
    """Lossless from here on: let timers, resends and reconnects do their work."""
    for _ in range(200):
        pair.pump()
        states = {pair.a.session.state, pair.b.session.state}
        if SessionState.DISCONNECTED in states:
            pair.cut("recovery reconnect")
            pair.connect()
            continue
        if (
            states == {SessionState.ACTIVE}
            and _ids(pair.b.delivered, 11) == sent["a"]
            and (_ids(pair.a.delivered, 17) == sent["b"])
        ):
            return
        pair.tick(5 * S)
    raise AssertionError("did not recover")


def _ids(msgs: list[FixMessage], tag: int) -> list[str]:
    return [m.get(tag) or "" for m in msgs]


@settings(max_examples=1000, deadline=None)
@given(st.data())
def test_lossy_link_recovery_delivers_exactly_once_in_order(data: st.DataObject) -> None:
    pair = Pair()
    pair.logon()
    lossy = True
    loss_per_4 = data.draw(st.integers(0, 3), label="loss out of 4")

    def drop(_msg: FixMessage) -> bool:
        return lossy and data.draw(st.integers(0, 3), label="roll") < loss_per_4

    pair.drop = drop
    sent: dict[str, list[str]] = {"a": [], "b": []}
    for action in data.draw(st.lists(st.sampled_from(ACTIONS), max_size=60), label="actions"):
        if action == "send_a":
            sent["a"].append(str(len(sent["a"]) + 1))
            pair.send("a", order(len(sent["a"])))
        elif action == "send_b":
            sent["b"].append(f"E{len(sent['b']) + 1}")
            pair.send("b", report(len(sent["b"])))
        elif action in ("deliver_a", "deliver_b"):
            pair.deliver_one(action[-1])
        elif action == "tick":
            pair.tick(data.draw(st.integers(0, 30), label="seconds") * S)
        elif action == "cut":
            pair.cut("network")
        elif {pair.a.session.state, pair.b.session.state} == {SessionState.DISCONNECTED}:
            pair.connect()
        # Invariants at every step: no duplicate and no out-of-order delivery, ever.
        assert _ids(pair.b.delivered, 11) == sent["a"][: len(pair.b.delivered)]
        assert _ids(pair.a.delivered, 17) == sent["b"][: len(pair.a.delivered)]
    lossy = False
    _recover(pair, sent)
    for side in (pair.a, pair.b):
        seqs = [m.msg_seq_num for m in side.delivered]
        assert all(x is not None for x in seqs)
