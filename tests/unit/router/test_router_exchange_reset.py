"""HKEX restarting without its state: the router's OCG-C link sees its Logon refused because
the exchange's sequence numbers went back, starts a new session from 1, and the core ends
every order held at HKEX (and only those)."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Any

from sampan.fix.codec import FixMessage
from sampan.fix.session_types import SessionEnded, SessionRole
from sampan.fix.store import MemorySessionStore
from sampan.router.fixlink import FixLink, LinkConfig
from sampan.router.hkex import EXCHANGE_RESET

sys.path.insert(0, str(Path(__file__).parents[1] / "fix"))
sys.path.insert(0, str(Path(__file__).parent))
from fix_harness import Pair, make_session
from test_router_outcomes import command, core, hkex_er, reports, smart_to_hkex

from sampan.fix.messages import ExecType
from sampan.router.ids import Kind, Origin, hkex_cl_ord_id


def test_a_logon_refused_for_a_lost_session_starts_a_new_one(tmp_path: Path, caplog: Any) -> None:
    # The router expects inbound 57 and has sent 40; the restarted gateway has sent nothing.
    ours = MemorySessionStore()
    ours.set_next_target_seq_num(57)
    ours.set_next_sender_seq_num(40)
    pair = Pair(make_session(SessionRole.INITIATOR, ours), make_session(SessionRole.ACCEPTOR))
    pair.connect()
    pair.pump()
    (ended,) = [e for e in pair.a.events if isinstance(e, SessionEnded)]
    assert not ended.was_logged_on
    link = FixLink(
        LinkConfig("127.0.0.1", 1, state_dir=tmp_path, fsync=False), date(2026, 1, 2), 57
    )
    link.store.set_next_sender_seq_num(40)
    link.on_session_ended(None, ended.reason, ended.was_logged_on)  # type: ignore[arg-type]
    assert (link.store.next_target_seq_num, link.store.next_sender_seq_num) == (1, 1)
    ((seq, notice),) = link.drain()
    assert seq == 0 and notice.msg_type == EXCHANGE_RESET
    assert any("ALERT" in r.message and r.levelname == "ERROR" for r in caplog.records)
    # Any other refusal changes nothing.
    link.on_session_ended(None, "logon refused: wrong password", False)  # type: ignore[arg-type]
    assert not link.drain() and link.store.next_sender_seq_num == 1
    link.close()


def test_an_exchange_reset_ends_every_order_held_at_hkex_and_no_other() -> None:
    router = core()
    router.request(0, 1, command(route="HKEX", qty=700, cl_ord_id="h1"))
    router.fix_message(1, hkex_er(hkex_cl_ord_id(0, Origin(0, 1), Kind.NEW), ExecType.NEW))
    router.request(0, 2, command(route="INTERNAL", qty=100, cl_ord_id="i2"))
    smart_to_hkex(router, 300)  # offset 7, its remainder at HKEX
    router.take()
    router.fix_message(0, FixMessage.of(EXCHANGE_RESET))
    out, _, _ = router.take()
    assert not router.take_failed_fix()
    ended = {r["cl_ord_id"]: r for r in reports(out)}
    assert set(ended) == {"h1", "p1"} and set(router.orders) == {"0.2"}
    assert all(r["ord_status"] == "CANCELED" for r in ended.values())
    assert all(r["reject_reason"] == "VENUE_UNKNOWN_ORDER" for r in ended.values())
    assert ended["p1"]["cum_qty"] == 300 and ended["p1"]["leaves_qty"] == 0
