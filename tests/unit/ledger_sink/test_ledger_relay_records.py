"""The outbox relay's records and the state a rebuild from ledger.postings derives from them."""

from __future__ import annotations

from sampan.ledger_sink.from_topics import _Rebuilt
from sampan.ledger_sink.positions import Position
from sampan.ledger_sink.relay import Position as At
from sampan.ledger_sink.relay import entry, exec_id_of
from sampan.ledger_sink.rules import LEG_CASH, LEG_DEPOSIT, LEG_SHARES
from sampan.schemas import registry

ACCOUNTS = {
    "B1": ("M1", "member"), "S1": ("M2", "member"), "HKEX.CLEARING": ("HKEX", "exchange"),
    "BANK.HKD": ("SAMPAN", "funding"),
}  # fmt: skip


def fill_entry(entry_id: int, ref: str, seller: str = "S1", ts_ns: int = 5) -> dict:
    fills = {entry_id: (entry_id, ref, b"\x01" * 32, 700, 512_000, 100, ts_ns, 2, 9)}
    transfers = {
        entry_id: [
            (entry_id, LEG_SHARES, seller, "B1", "700", 100),
            (entry_id, LEG_CASH, "B1", seller, "HKD", 5_120_000),
        ]
    }
    return entry(42, entry_id, "fill", fills, {}, transfers, ACCOUNTS)


def test_exec_ids_of_fill_refs() -> None:
    assert exec_id_of("INTERNAL:X0.17") == "X0.17"
    assert exec_id_of("HKEX:2026-11-27:E5:1") == "E5:1"


def test_an_entry_is_a_complete_deterministic_record() -> None:
    record = fill_entry(7, "HKEX:2026-11-27:E5")
    assert record == fill_entry(7, "HKEX:2026-11-27:E5")
    assert (record["entry_ref"], record["kind"], record["exec_id"]) == (
        "HKEX:2026-11-27:E5", "FILL", "E5",
    )  # fmt: skip
    assert [a["account"] for a in record["accounts"]] == ["B1", "S1"]
    assert registry().decode("LedgerEntry", registry().encode("LedgerEntry", record)) == record
    movements = {8: (8, "open-1", "B1", "M1", "deposit", 900, "OPENING", "BANK.HKD", 3)}
    cash = entry(
        43, 8, "cash", {}, movements, {8: [(8, LEG_DEPOSIT, "BANK.HKD", "B1", "HKD", 900)]},
        ACCOUNTS,
    )  # fmt: skip
    assert (cash["entry_ref"], cash["kind"], cash["movement"]["amount_cents"]) == (
        "CASH:open-1", "CASH", 900,
    )  # fmt: skip
    assert At(42, 7) < At(42, 8) < At(43, 1)


def test_the_rebuilt_state_follows_the_postings() -> None:
    state = _Rebuilt()
    state.apply(fill_entry(1, "INTERNAL:X1", ts_ns=5))
    state.apply(fill_entry(2, "INTERNAL:X2", seller="HKEX.CLEARING", ts_ns=4))
    assert state.balances[("B1", "700")] == 200 and state.balances[("S1", "700")] == -100
    assert state.balances[("B1", "HKD")] == -10_240_000
    assert state.positions[("B1", 700)] == Position(200, 200 * 512_000, 0)
    assert ("HKEX.CLEARING", 700) not in state.positions
    assert state.last[700] == (5, "INTERNAL:X1", 512_000)
