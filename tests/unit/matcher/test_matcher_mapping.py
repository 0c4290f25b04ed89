"""The matcher's record mapping: client ids, FIX-style cancel/amend answers, duplicates, state."""

from typing import Any

from sampan.market.listings import listings
from sampan.matcher.agent import default_instruments
from sampan.matcher.mapping import PartitionBook
from sampan.tools.loadgen import generate_commands


def command(kind: str, cl: str, **fields: Any) -> dict[str, Any]:
    base = {
        "command_id": cl, "kind": kind, "account": "ACC1", "member": "M1", "security": 700,
        "cl_ord_id": cl, "orig_cl_ord_id": None, "side": "BUY", "ord_type": "LIMIT",
        "time_in_force": "DAY", "price_e3": 512_000, "qty": 100, "route": "INTERNAL",
        "batch_id": None, "parent_id": None, "user": None, "ts_ns": 5, "stp": None,
    }  # fmt: skip
    return {**base, **fields}


def reports(records: list[Any]) -> list[tuple[str, str | None, str, str]]:
    return [
        (
            r.value["cl_ord_id"],
            r.value["orig_cl_ord_id"],
            r.value["exec_type"],
            r.value["ord_status"],
        )
        for r in records
        if r.topic == "orders.events"
    ]


def test_cancel_and_amend_answers_carry_the_request_and_original_ids() -> None:
    book = PartitionBook(0, default_instruments())
    assert reports(book.apply(0, command("NEW", "a"))) == [("a", None, "NEW", "NEW")]
    amend = command("AMEND", "b", orig_cl_ord_id="a", price_e3=511_500, qty=200)
    assert reports(book.apply(1, amend)) == [("b", "a", "REPLACED", "NEW")]
    cancel = command("CANCEL", "c", orig_cl_ord_id="b")
    assert reports(book.apply(2, cancel)) == [("c", "b", "CANCELED", "CANCELED")]
    again = command("CANCEL", "d", orig_cl_ord_id="b")
    [rejected] = book.apply(3, again)
    assert rejected.value["exec_type"] == "CANCEL_REJECTED"
    assert rejected.value["reject_reason"] == "UNKNOWN_ORDER"
    assert book.orders == {} and book.by_client == {}


def test_duplicate_client_order_id_is_rejected_and_the_live_order_is_untouched() -> None:
    book = PartitionBook(0, default_instruments())
    book.apply(0, command("NEW", "a"))
    [dup] = book.apply(1, command("NEW", "a", price_e3=511_000))
    assert (dup.value["exec_type"], dup.value["reject_reason"]) == (
        "REJECTED",
        "DUPLICATE_ORDER_ID",
    )
    assert dup.value["order_id"] == ""
    assert book.by_client == {("ACC1", "a"): 1}
    cancel = book.apply(2, command("CANCEL", "c", orig_cl_ord_id="a"))
    assert reports(cancel) == [("c", "a", "CANCELED", "CANCELED")]


def test_unknown_security_is_a_reject_not_a_crash() -> None:
    book = PartitionBook(0, default_instruments())
    [reject] = book.apply(0, command("NEW", "a", security=4))
    assert (reject.value["exec_type"], reject.value["reject_reason"]) == (
        "REJECTED",
        "UNKNOWN_SECURITY",
    )


def test_rejects_for_unknown_securities_get_unique_deterministic_exec_ids() -> None:
    book = PartitionBook(2, default_instruments())
    records = [
        *book.apply(10, command("NEW", "a", security=4)),
        *book.apply(11, command("NEW", "b", security=4)),
        *book.apply(12, command("CANCEL", "c", security=4, orig_cl_ord_id="a")),
        *book.apply(13, command("AMEND", "d", security=4, orig_cl_ord_id="b")),
    ]
    assert [r.value["reject_reason"] for r in records] == ["UNKNOWN_SECURITY"] * 4
    assert [r.value["exec_id"] for r in records] == ["X2.r10", "X2.r11", "X2.r12", "X2.r13"]
    again = PartitionBook(2, default_instruments())
    assert [r.value["exec_id"] for r in again.apply(10, command("NEW", "a", security=4))] == [
        "X2.r10"
    ]


def test_a_cross_yields_a_fill_with_both_legs_and_a_trade() -> None:
    book = PartitionBook(2, default_instruments())
    book.apply(0, command("NEW", "s", account="ACC2", member="M2", side="SELL", qty=300))
    records = book.apply(1, command("NEW", "b", qty=500, price_e3=512_500))
    [fill] = [r for r in records if r.topic == "fills"]
    assert fill.key == "ACC1"
    assert (fill.value["buy_order_id"], fill.value["sell_order_id"]) == ("X2.2", "X2.1")
    assert (fill.value["price_e3"], fill.value["qty"], fill.value["aggressor"]) == (
        512_000,
        300,
        "BUY",
    )
    [trade] = [r for r in records if r.topic == "md.trades"]
    assert trade.key == "INTERNAL:700" and trade.value["trade_id"] == fill.value["exec_id"]
    depth = book.depth_record(700, 1, 5)
    assert depth.value["bids"] == [{"price_e3": 512_500, "qty": 200, "orders": 1}]


def test_snapshot_then_restore_continues_exactly_like_the_original() -> None:
    commands = list(generate_commands(3, 6000, listings(), ["ACC1", "ACC2", "ACC3", "ACC4"]))
    original = PartitionBook(1, default_instruments())
    for offset, cmd in enumerate(commands[:3000]):
        original.apply(offset, cmd)
    restored = PartitionBook.restore(original.snapshot())
    for offset, cmd in enumerate(commands[3000:], start=3000):
        assert [r.value for r in restored.apply(offset, cmd)] == [
            r.value for r in original.apply(offset, cmd)
        ]
    restored.engine.validate()


def test_an_oversized_command_is_refused_with_a_small_report_and_changes_nothing() -> None:
    from sampan.schemas import registry

    book = PartitionBook(0, default_instruments())
    book.apply(0, command("NEW", "a"))
    before = book.snapshot()
    huge = "x" * 400_000
    [refused] = book.apply(1, command("CANCEL", huge, command_id=huge, orig_cl_ord_id="a"))
    assert refused.value["reject_reason"] == "INVALID_FIELD"
    assert refused.value["exec_id"] == "X0.r1" and len(refused.value["cl_ord_id"]) == 80
    assert len(registry().encode("ExecutionReport", refused.value)) < 1_000
    assert book.snapshot() == before
