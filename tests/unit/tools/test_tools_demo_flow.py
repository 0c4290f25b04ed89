"""The live demo's simulated members: every order is valid for the venue and the book stays
bounded."""

from __future__ import annotations

from collections import Counter

from sampan.market.listings import DEFAULT_LISTINGS, SPREAD_TABLE_CODES
from sampan.market.rules import SPREAD_TABLES
from sampan.tools.demo_live import SIM_SEEDS, FlowConfig, MemberFlow


def test_orders_are_whole_lots_on_tick_inside_the_collar_and_resting_orders_bounded() -> None:
    config = FlowConfig(seed=3, open_max=4)
    flow = MemberFlow(SIM_SEEDS, DEFAULT_LISTINGS, config, "t")
    by_security = {listing.security: listing for listing in DEFAULT_LISTINGS}
    resting: dict[str, set[str]] = {m.account: set() for m in SIM_SEEDS}
    routes: Counter[str] = Counter()
    ids: set[str] = set()
    for n in range(5_000):
        for c in flow.step(n):
            assert c["cl_ord_id"] not in ids
            ids.add(c["cl_ord_id"])
            if c["kind"] == "CANCEL":
                resting[c["account"]].remove(c["orig_cl_ord_id"])
                continue
            listing = by_security[c["security"]]
            table = SPREAD_TABLES[SPREAD_TABLE_CODES[listing.spread_table]]
            assert c["qty"] > 0 and c["qty"] % listing.board_lot == 0
            assert table.is_on_tick(c["price_e3"])
            # Makers sit up to 4 ticks from a mid within 5%: far inside the 10% collar.
            ref = listing.prev_close_e3
            assert abs(c["price_e3"] - ref) * 10_000 <= ref * 800, c
            routes[c["route"]] += 1
            if c["time_in_force"] == "DAY":
                resting[c["account"]].add(c["cl_ord_id"])
            assert len(resting[c["account"]]) <= config.open_max + 1
        for open_ids in resting.values():
            assert len(open_ids) <= config.open_max
    assert set(routes) == {"INTERNAL", "SMART", "HKEX"}
    assert len({c for c in flow.mids.values()}) > 1


def test_the_flow_is_seeded() -> None:
    a = MemberFlow(SIM_SEEDS, DEFAULT_LISTINGS, FlowConfig(seed=1), "x")
    b = MemberFlow(SIM_SEEDS, DEFAULT_LISTINGS, FlowConfig(seed=1), "x")
    assert [a.step(0) for _ in range(200)] == [b.step(0) for _ in range(200)]
