"""PHASE commands in the matcher's input log: the records of an auction day, a replay through a
snapshot taken mid-auction, and a PHASE command the matcher cannot read."""

from typing import Any

import pytest
from test_matcher_mapping import command

from sampan.market.calendar import NS_PER_S
from sampan.market.schedule import PhaseChange
from sampan.market.sessions import Phase
from sampan.matcher.agent import default_instruments
from sampan.matcher.mapping import PartitionBook
from sampan.schemas import registry
from sampan.tools.venue_clock import phase_command

T0 = 1_800_000_000 * NS_PER_S


def phase(n: int, name: Phase) -> dict[str, Any]:
    return phase_command(PhaseChange(T0 + n, None, name, 7, name is Phase.BLOCKING))  # type: ignore[arg-type]


def day_log() -> list[dict[str, Any]]:
    return [
        phase(1, Phase.NOT_YET_OPEN),
        phase(2, Phase.POS_ORDER_INPUT),
        command("NEW", "b1", side="BUY", price_e3=515_000, qty=300, ts_ns=T0 + 3),
        command("NEW", "s1", account="ACC2", member="M2", side="SELL", price_e3=510_000,
                qty=200, ts_ns=T0 + 4),
        command("NEW", "aa", account="ACC3", member="M3", side="SELL", ord_type="AT_AUCTION",
                price_e3=0, qty=200, ts_ns=T0 + 5),
        phase(6, Phase.POS_NO_CANCEL),
        command("CANCEL", "x", orig_cl_ord_id="b1", ts_ns=T0 + 7),  # refused: no-cancel
        phase(8, Phase.POS_RANDOM_MATCHING),
        phase(9, Phase.BLOCKING),
        phase(10, Phase.CONTINUOUS),
        phase(11, Phase.CLOSED),
    ]  # fmt: skip


def test_phase_commands_round_trip_through_the_schema() -> None:
    for value in day_log():
        decoded = registry().decode("OrderCommand", registry().encode("OrderCommand", value))
        assert decoded == {"phase": None, "phase_seed": None, **value}


def test_an_auction_day_in_records_and_its_replay_through_a_mid_auction_snapshot() -> None:
    log = day_log()
    book = PartitionBook(0, default_instruments())
    records = [r for offset, c in enumerate(log) for r in book.apply(offset, c)]
    fills = [r.value for r in records if r.topic == "fills"]
    assert [(f["price_e3"], f["qty"], f["sell_order_id"]) for f in fills] == [
        (510_000, 200, "X0.5"),  # the at-auction sell first, at the IEP 510 (nearer 512)
        (510_000, 100, "X0.4"),
    ]
    events = [
        (r.value["cl_ord_id"], r.value["exec_type"]) for r in records if r.topic == "orders.events"
    ]
    assert ("x", "CANCEL_REJECTED") in events
    cancel = next(r.value for r in records if r.value.get("cl_ord_id") == "x")
    assert cancel["reject_reason"] == "NOT_IN_THIS_PHASE"
    assert ("s1", "EXPIRED") in events  # the rest of the sell expires at the close

    replay = PartitionBook(0, default_instruments())
    again = [r for offset, c in enumerate(log[:5]) for r in replay.apply(offset, c)]
    replay = PartitionBook.restore(replay.snapshot())  # in the middle of the auction
    again += [r for offset, c in enumerate(log[5:], start=5) for r in replay.apply(offset, c)]
    assert again == records


def test_a_phase_command_with_an_unknown_phase_raises_before_changing_anything() -> None:
    book = PartitionBook(0, default_instruments())
    before = book.snapshot()
    with pytest.raises(ValueError, match="unknown phase"):
        book.apply(0, {**phase(1, Phase.CLOSED), "phase": "LUNCH"})
    assert book.snapshot() == before
