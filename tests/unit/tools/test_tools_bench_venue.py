"""`sampan bench venue`'s pure parts: ledger refs to exec ids, the percentile figures, the
offered stream's accounts."""

from __future__ import annotations

from sampan.ledger_sink.rules import fill_ref
from sampan.tools.bench import venue


def test_exec_id_from_every_fill_ref_form() -> None:
    assert venue._exec_id_of(fill_ref("INTERNAL", "X700-12", 0)) == "X700-12"
    assert venue._exec_id_of(fill_ref("HKEX", "E77", 1_795_000_000 * 10**9)) == "E77"


def test_figures_are_named_per_rate_in_milliseconds() -> None:
    figures = venue._figures(250, [i / 1000 for i in range(1, 1001)], "confirm")
    assert figures == {
        "venue_confirm_ms_p50_at_250": 500.0,
        "venue_confirm_ms_p99_at_250": 990.0,
        "venue_confirm_ms_p999_at_250": 999.0,
    }


def test_no_account_both_buys_and_sells() -> None:
    seeds = venue._seeds()
    assert len({s.account for s in seeds}) == venue.ACCOUNTS
    assert all(s.allow_short for s in seeds)
    sellers = {venue.pair_accounts(p)[0] for p in range(100)}
    buyers = {venue.pair_accounts(p)[1] for p in range(100)}
    assert sellers.isdisjoint(buyers) and sellers | buyers == {s.account for s in seeds}
