"""The risk book: marks as the ledger values an account, on every price move of either venue,
at most once per interval per account; edge-triggered alerts with deterministic ids; blocks;
unsettled fills; a restart that raises nothing twice."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sampan.risk.book import AlertKind, Level, RiskBook, RiskConfig
from sampan.risk.records import cancel_command, mark_from, mark_record

DAY = "2026-11-30"
MS = 1_000_000
# Cash HK$100,000 and 1,000 shares of 700 at HK$500: equity HK$600,000; cut-loss HK$560,000,
# so the warning level is HK$568,000 (80% of the way down).
CASH = 10_000_000
CUT = 56_000_000


def book(interval_ms: int = 0) -> RiskBook:
    b = RiskBook(RiskConfig(mark_interval_ns=interval_ms * MS))
    b.limits("A1", "M1", 0, CUT)
    b.snapshot("A1", "M1", CASH, {700: 1_000}, {0: 5})
    b.price(700, 500_000, 1)
    return b


def test_a_price_drop_warns_then_breaches_once_each() -> None:
    b = book()
    first = b.flush(10, DAY)
    (mark,) = first.marks
    assert (mark.equity_cents, mark.start_equity_cents) == (60_000_000, 60_000_000)
    assert mark.warning_equity_cents == 56_800_000 and mark.level is Level.NORMAL
    assert mark.cut_loss_distance_cents == 4_000_000 and not first.alerts
    b.price(700, 470_000, 2)  # equity 570,000: above the warning level
    assert not b.flush(11, DAY).alerts
    b.price(700, 467_000, 3)  # 567,000: below it
    warned = b.flush(12, DAY)
    assert [(a.alert_id, a.kind) for a in warned.alerts] == [
        (f"A1:{DAY}:WARNING:1", AlertKind.WARNING)
    ]
    assert warned.marks[0].level is Level.WARNING and not warned.blocks
    b.price(700, 466_500, 4)  # lower still: no second warning
    assert not b.flush(13, DAY).alerts
    b.price(700, 459_500, 5)  # 559,500 < 560,000
    breached = b.flush(14, DAY)
    assert [a.alert_id for a in breached.alerts] == [f"A1:{DAY}:BREACH:1"]
    assert [(x.account, x.breach) for x in breached.blocks] == [("A1", 1)]
    mark = breached.marks[0]
    assert mark.blocked and mark.level is Level.BREACHED
    assert mark.cut_loss_distance_cents == -50_000
    command = cancel_command(breached.blocks[0], DAY, 14)
    assert command["kind"] == "MASS_CANCEL" and command["cl_ord_id"] == f"CUTLOSS:{DAY}:1"


def test_a_re_enable_holds_until_the_account_recovers_and_breaches_again() -> None:
    b = book()
    b.flush(1, DAY)
    b.price(700, 450_000, 2)
    assert [a.kind for a in b.flush(2, DAY).alerts] == [AlertKind.BREACH]
    b.control("A1", False)  # the risk officer re-enables
    b.price(700, 449_000, 3)
    again = b.flush(3, DAY)
    assert not again.alerts and not again.blocks and not again.marks[0].blocked
    b.price(700, 500_000, 4)  # recovers
    b.flush(4, DAY)
    b.price(700, 450_000, 5)
    second = b.flush(5, DAY)
    assert [a.alert_id for a in second.alerts] == [f"A1:{DAY}:BREACH:2"]


def test_the_newest_trade_of_either_venue_prices_the_position() -> None:
    b = book()
    b.flush(1, DAY)
    b.price(700, 480_000, 10)  # HKEX, newer
    b.price(700, 510_000, 9)  # the internal book's older trade read later: not the last
    (mark,) = b.flush(2, DAY).marks
    assert mark.holdings_value_cents == 48_000_000 and mark.priced_ts_ns == 10


def test_marks_are_bounded_per_account_and_nothing_moves_nothing_is_sent() -> None:
    b = book(interval_ms=50)
    assert len(b.flush(0, DAY).marks) == 1
    for i in range(100):
        b.price(700, 500_000 + 500 * (i % 2 + 1), 10 + i)
    assert not b.flush(10 * MS, DAY).marks  # not due yet
    assert b.next_due_ns(10 * MS) == 50 * MS
    (mark,) = b.flush(50 * MS, DAY).marks
    assert mark.holdings_value_cents == 50_100_000  # the last of the hundred moves
    b.price(700, 501_000, 500)  # a trade at the same price is no move
    assert b.next_due_ns(200 * MS) is None


def test_unsettled_fills_count_until_a_snapshot_includes_them() -> None:
    b = book()
    b.flush(0, DAY)
    # Bought 100 more at 500 (fills partition 0, offset 7): cash out, shares in.
    b.fill(0, 7, 700, 500_000, 100, [("A1", "M1", True), ("HKX", "HKEX", False)])
    (mark,) = b.flush(1, DAY).marks
    assert mark.cash_cents == CASH - 5_000_000 and mark.equity_cents == 60_000_000
    assert "HKX" not in b.accounts  # the exchange's side is not an account
    b.fill(0, 3, 700, 1, 100, [("A1", "M1", True)])  # below the snapshot's offsets: included
    assert not b.flush(2, DAY).marks
    # The ledger's snapshot now includes it (with charges).
    b.snapshot("A1", "M1", CASH - 5_000_600, {700: 1_100}, {0: 8})
    (mark,) = b.flush(3, DAY).marks
    assert mark.cash_cents == CASH - 5_000_600


def test_a_restart_from_the_published_mark_raises_nothing_again() -> None:
    b = book()
    b.flush(1, DAY)
    b.price(700, 467_000, 2)
    warned = b.flush(2, DAY)
    restarted = RiskBook(RiskConfig(mark_interval_ns=0))
    restarted.restore(mark_from(mark_record(warned.marks[0])))
    restarted.limits("A1", "M1", 0, CUT)
    restarted.snapshot("A1", "M1", CASH, {700: 1_000}, {0: 5})
    restarted.price(700, 467_000, 2)
    again = restarted.flush(3, DAY)
    assert not again.alerts and not again.marks  # the same figures: nothing to say
    restarted.price(700, 450_000, 4)
    assert [a.alert_id for a in restarted.flush(4, DAY).alerts] == [f"A1:{DAY}:BREACH:1"]
    # A new day starts from the day's first equity and counts again.
    restarted.price(700, 300_000, 5)
    (mark,) = restarted.flush(5, "2026-12-01").marks
    assert mark.start_equity_cents == mark.equity_cents and mark.breaches == 0


@given(
    qty=st.integers(-(10**6), 10**6),
    price=st.integers(10, 10**7),
    cash=st.integers(-(10**10), 10**10),
)
def test_the_mark_values_as_the_ledger_does(qty: int, price: int, cash: int) -> None:
    b = RiskBook(RiskConfig(mark_interval_ns=0))
    b.snapshot("A", "M", cash, {5: qty}, {})
    b.price(5, price, 1)
    (mark,) = b.flush(0, DAY).marks or [None]
    assert mark is not None
    exact = qty * price  # HK$0.001
    value, rest = divmod(exact, 10)
    value += rest > 5 or (rest == 5 and value % 2 == 1)  # half-even, as the ledger
    assert mark.holdings_value_cents == value
    assert mark.equity_cents == cash + value
    assert mark.portfolio_value_cents == max(cash, 0) + value
    assert mark.credit_line_used_cents == max(0, -cash)
