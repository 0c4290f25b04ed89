"""FIX messages reach HKEX only from the committed outbox: one a committed batch decided but
the process did not send (it died right after the commit) is sent at the next start, and the
outbox is emptied once it is handed to the session."""

from __future__ import annotations

import pytest
from router_harness import Sim, producer, start_router, state_dir, wait_for

from sampan.config import Settings
from sampan.market.side import Side
from sampan.router import hkex, state_topic
from sampan.router.orders import Order, Route

pytestmark = pytest.mark.integration

PRICE_E3 = 512_000


def test_an_unsent_outbox_message_is_sent_at_start(env_settings: Settings) -> None:
    directory = state_dir()
    sim = Sim(directory / "sim")
    order = Order(
        "0.0", "BUYER1", "M1", 700, Side.BUY, "LIMIT", "DAY", Route.HKEX, "o1", PRICE_E3, 100,
        PRICE_E3, ts_ns=1,
    )  # fmt: skip
    # Not a ClOrdID of this router's scheme: its reports are logged and dropped.
    nos = hkex.new_order(order, "OUTBOX1", 100)
    p = producer(env_settings)
    name = env_settings.topic(state_topic.STATE_TOPIC)
    p.produce(name, state_topic.encode_outbox(nos), state_topic.outbox_key(nos))
    assert p.flush(30) == 0
    router = start_router(sim, directory)
    try:
        wait_for(
            "HKEX to get the outbox's order",
            lambda: any(m.get(11) == "OUTBOX1" for m in sim.drop_copy.reports),
            60,
            router,
        )
        wait_for(
            "the outbox to empty",
            lambda: not state_topic.load(env_settings, "SAMPAN", "2000-01-01").outbox,
            30,
            router,
        )
        assert router.stop() == 0
    finally:
        router.stop()
        sim.close()
