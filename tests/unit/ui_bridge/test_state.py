"""The view rebuilt from records: orders with fills, inventory, depth and stats."""

from __future__ import annotations

from typing import Any

from sampan.ui_bridge.state import View, change_bp


def report(**kw: Any) -> dict[str, Any]:
    base = {
        "exec_id": "e1",
        "venue": "INTERNAL",
        "order_id": "O1",
        "cl_ord_id": "c1",
        "orig_cl_ord_id": None,
        "parent_id": None,
        "account": "A1",
        "member": "M1",
        "security": 700,
        "side": "SELL",
        "exec_type": "NEW",
        "ord_status": "NEW",
        "price_e3": 512_000,
        "order_qty": 300,
        "last_px_e3": 0,
        "last_qty": 0,
        "cum_qty": 0,
        "leaves_qty": 300,
        "cum_notional_e3": 0,
        "reject_reason": None,
        "text": None,
        "ts_ns": 10,
    }
    return {**base, **kw}


def snapshot(qty: int) -> dict[str, Any]:
    return {
        "account": "A1",
        "member": "M1",
        "cash_cents": 0,
        "available_cash_cents": 0,
        "holdings_value_cents": 0,
        "portfolio_value_cents": 0,
        "equity_cents": 0,
        "credit_line_used_cents": 0,
        "cut_loss_equity_cents": 0,
        "cut_loss_breached": False,
        "positions": [{"security": 700, "qty": qty, "last_e3": 512_000, "value_cents": 0}],
        "ts_ns": 1,
    }


def test_order_row_follows_reports_and_fills_are_deduplicated() -> None:
    view = View()
    view.sent[("A1", "c1")] = ("SMART", "B1")
    view.apply("orders.events", report())
    trade = report(
        exec_id="e2",
        exec_type="TRADE",
        ord_status="PARTIALLY_FILLED",
        last_px_e3=512_000,
        last_qty=100,
        cum_qty=100,
        leaves_qty=200,
        cum_notional_e3=51_200_000,
    )
    updates = view.apply("orders.events", trade)
    view.apply("orders.events", trade)  # a replayed report changes nothing
    [row] = view.orders_of("A1")
    assert row["route"] == "SMART" and row["batch_id"] == "B1"
    assert (row["order_qty"], row["cum_qty"], row["leaves_qty"]) == (300, 100, 200)
    assert row["avg_px_e3"] == 512_000
    assert [f["exec_id"] for f in row["fills"]] == ["e2"]
    assert any(u.message["type"] == "exec" and u.key == "A1" for u in updates)


def test_cancel_report_addresses_the_original_order() -> None:
    view = View()
    view.apply("orders.events", report())
    view.apply(
        "orders.events",
        report(
            exec_id="e3",
            cl_ord_id="x9",
            orig_cl_ord_id="c1",
            exec_type="CANCELED",
            ord_status="CANCELED",
            leaves_qty=0,
        ),
    )
    [row] = view.orders_of("A1")
    assert row["cl_ord_id"] == "c1" and row["status"] == "CANCELED"


def test_an_amended_order_keeps_one_row_and_is_addressed_by_the_amends_id() -> None:
    view = View()
    view.apply("orders.events", report())
    amended = report(exec_id="e2", cl_ord_id="a1", orig_cl_ord_id="c1", exec_type="REPLACED")
    view.apply("orders.events", {**amended, "price_e3": 513_000})
    # After the amend the venue reports the order under the amend's id.
    trade = report(
        exec_id="e3",
        cl_ord_id="a1",
        exec_type="TRADE",
        ord_status="PARTIALLY_FILLED",
        price_e3=513_000,
        last_px_e3=513_000,
        last_qty=100,
        cum_qty=100,
        leaves_qty=200,
        cum_notional_e3=51_300_000,
    )
    view.apply("orders.events", trade)
    second = report(exec_id="e4", cl_ord_id="a2", orig_cl_ord_id="a1", exec_type="REPLACED")
    view.apply("orders.events", {**second, "order_qty": 400, "cum_qty": 100, "leaves_qty": 300})
    [row] = view.orders_of("A1")
    assert row["cl_ord_id"] == "c1" and row["cum_qty"] == 100 and row["order_qty"] == 400
    assert [f["exec_id"] for f in row["fills"]] == ["e3"]
    # A cancel now names the latest amend's id, as the router and the matcher know it.
    assert view.orders["A1"]["c1"].latest_cl_ord_id == "a2"
    canceled = report(
        exec_id="e5",
        cl_ord_id="x1",
        orig_cl_ord_id="a2",
        exec_type="CANCELED",
        ord_status="CANCELED",
    )
    view.apply("orders.events", canceled)
    [row] = view.orders_of("A1")
    assert row["status"] == "CANCELED"


def test_child_reports_and_yesterdays_are_left_out() -> None:
    view = View(day_start_ns=5)
    view.apply("orders.events", report(parent_id="c0", cl_ord_id="child"))
    view.apply("orders.events", report(cl_ord_id="old", ts_ns=1))
    assert view.orders_of("A1") == []


def test_inventory_available_is_less_open_sells() -> None:
    view = View()
    view.apply("ledger.balances", snapshot(1_000))
    view.apply("orders.events", report())  # an open sell of 300
    [position] = view.inventory("A1")
    assert position["qty"] == 1_000 and position["available_qty"] == 700


def test_depth_update_is_keyed_by_venue_and_security() -> None:
    view = View()
    depth = {
        "venue": "HKEX",
        "security": 700,
        "bids": [{"price_e3": 511_500, "qty": 100, "orders": 2}],
        "asks": [],
        "seq": 3,
        "ts_ns": 9,
    }
    [update] = view.apply("md.depth", depth)
    assert update.channel == "depth" and update.key == ("HKEX", 700)
    assert update.message["bids"] == [{"price_e3": 511_500, "qty": 100, "count": 2}]


def instrument(security: int, prev: int = 100_000) -> dict[str, Any]:
    return {
        "security": security,
        "name": f"S{security}",
        "currency": "HKD",
        "board_lot": 100,
        "spread_table": "01",
        "prev_close_e3": prev,
        "enabled": True,
        "ts_ns": 0,
    }


def stats(venue: str, security: int, last: int | None, prev: int = 100_000) -> dict[str, Any]:
    return {
        "venue": venue,
        "security": security,
        "last_e3": last,
        "open_e3": last,
        "high_e3": last,
        "low_e3": last,
        "prev_close_e3": prev,
        "nominal_e3": last,
        "volume": 100,
        "turnover_e3": 100 * (last or 0),
        "ts_ns": 5,
    }


def mover(security: int, last: int, bp: int) -> dict[str, int]:
    return {"security": security, "last_e3": last, "prev_close_e3": 100_000, "change_bp": bp}


def movers_record(venue: str, day: str, top: list[Any], bottom: list[Any]) -> dict[str, Any]:
    return {"venue": venue, "day": day, "top": top, "bottom": bottom, "ts_ns": 9}


def trade(venue: str, security: int, price: int) -> dict[str, Any]:
    return {
        "venue": venue,
        "security": security,
        "trade_id": "t",
        "price_e3": price,
        "qty": 100,
        "aggressor": None,
        "ts_ns": 0,
    }


def test_movers_are_the_analytics_ranking_not_the_screens_own() -> None:
    view = View()
    for security in (1, 2, 3):
        view.apply("reference.instruments", instrument(security))
    # Trades alone rank nothing: the screen shows what analytics publishes.
    view.apply("md.trades", trade("INTERNAL", 1, 110_000))
    assert view.movers()["top"] == [] and view.movers()["venue"] is None
    # The analytics ranking, verbatim (its order, its figures), even where a naive sort of
    # the screen's own figures would differ.
    record = movers_record(
        "INTERNAL", "2026-11-30", [mover(3, 101_000, 100), mover(1, 110_000, 1_000)], []
    )
    [update] = view.apply("md.movers", record)
    assert update.channel == "market" and update.message["type"] == "movers"
    message = view.movers()
    assert update.message == message
    assert message["venue"] == "INTERNAL"
    assert [r["security"] for r in message["top"]] == [3, 1]
    assert message["top"][0] == {
        "type": "stats",
        "security": 3,
        "name": "S3",
        "venue": "INTERNAL",
        "last_e3": 101_000,
        "prev_close_e3": 100_000,
        "change_bp": 100,
    }
    assert message["bottom"] == []
    # HKEX's ranking is the panel's once it ranks anything; both stay in `venues`.
    view.apply("md.movers", movers_record("HKEX", "2026-11-30", [], [mover(2, 95_000, -500)]))
    message = view.movers()
    assert message["venue"] == "HKEX"
    assert message["top"] == [] and [r["security"] for r in message["bottom"]] == [2]
    assert [r["security"] for r in message["venues"]["INTERNAL"]["top"]] == [3, 1]
    # The latest record per venue wins (the topic is compacted, keyed by venue).
    view.apply("md.movers", movers_record("HKEX", "2026-11-30", [], []))
    assert view.movers()["venue"] == "INTERNAL"


def test_movers_of_another_day_are_not_shown() -> None:
    # 2026-11-30 00:00 in Hong Kong is 2026-11-29 16:00 UTC.
    view = View(day_start_ns=1_795_968_000 * 10**9)
    assert view.trading_day() == "2026-11-30"
    view.apply("reference.instruments", instrument(1))
    assert view.apply("md.movers", movers_record("HKEX", "2026-11-29", [mover(1, 1, 1)], [])) == []
    assert view.movers()["venue"] is None
    view.apply("md.movers", movers_record("HKEX", "2026-11-30", [mover(1, 110_000, 1_000)], []))
    assert view.movers()["venue"] == "HKEX"
    # A stale record arriving after today's (e.g. replayed) does not displace it.
    view.apply("md.movers", movers_record("HKEX", "2026-11-29", [], []))
    assert view.movers()["venue"] == "HKEX"


def test_internal_last_and_change_come_from_internal_stats() -> None:
    view = View()
    view.apply("reference.instruments", instrument(1))
    # A trade moves no figure; the internal md.stats record does.
    assert view.apply("md.trades", trade("INTERNAL", 1, 120_000)) == []
    assert view.market_stats()[0]["last_e3"] is None
    [update] = view.apply("md.stats", stats("INTERNAL", 1, 99_995))
    assert update.message["venue"] == "INTERNAL"
    assert update.message["last_e3"] == 99_995
    # -0.5 bp rounds half away from zero, as analytics rounds its movers.
    assert update.message["change_bp"] == -1
    # HKEX's figures are preferred once the exchange has a last price.
    [update] = view.apply("md.stats", stats("HKEX", 1, 105_000))
    assert (update.message["venue"], update.message["change_bp"]) == ("HKEX", 500)


def test_change_bp_rounds_half_away_from_zero() -> None:
    assert change_bp(100_005, 100_000) == 1
    assert change_bp(100_004, 100_000) == 0
    assert change_bp(99_995, 100_000) == -1
    assert change_bp(110_000, 100_000) == 1_000
    assert change_bp(None, 100_000) is None
    assert change_bp(1, 0) is None


def test_reports_after_an_amend_stay_on_the_order_row() -> None:
    view = View()
    view.apply("orders.events", report(side="BUY"))
    view.apply(
        "orders.events",
        report(
            side="BUY",
            exec_id="e2",
            cl_ord_id="a1",
            orig_cl_ord_id="c1",
            exec_type="REPLACED",
            order_qty=500,
            leaves_qty=500,
        ),
    )
    view.apply(
        "orders.events",
        report(
            side="BUY",
            exec_id="e3",
            cl_ord_id="a1",
            exec_type="TRADE",
            ord_status="PARTIALLY_FILLED",
            order_qty=500,
            last_px_e3=512_000,
            last_qty=100,
            cum_qty=100,
            leaves_qty=400,
            cum_notional_e3=51_200_000,
        ),
    )
    [row] = view.orders_of("A1")
    assert row["cl_ord_id"] == "c1" and row["live_cl_ord_id"] == "a1"
    assert (row["order_qty"], row["cum_qty"], len(row["fills"])) == (500, 100, 1)


def test_a_surveillance_alert_raised_again_replaces_itself_on_the_recon_channel() -> None:
    view = View()
    alert = {
        "alert_id": "SPOOFING:S1:700:O1",
        "rule": "SPOOFING",
        "venue": "INTERNAL",
        "security": 700,
        "accounts": ["S1"],
        "member": "MS",
        "order_ids": ["O1"],
        "exec_ids": ["X1"],
        "detail": "1 large buy order",
        "ts_ns": 10,
    }
    updates = view.apply("surveillance.alerts", alert)
    assert [(u.channel, u.message["type"]) for u in updates] == [("recon", "surveillance_alert")]
    fuller = {**alert, "exec_ids": ["X1", "X2"]}
    view.apply("surveillance.alerts", {**alert, "alert_id": "WASH_TRADE:INTERNAL:X9"})
    view.apply("surveillance.alerts", fuller)
    assert list(view.alerts) == ["WASH_TRADE:INTERNAL:X9", "SPOOFING:S1:700:O1"]
    assert view.alerts["SPOOFING:S1:700:O1"] == fuller


def test_live_risk_marks_and_blocks_reach_the_account_channel() -> None:
    from sampan.risk.book import RiskBook, RiskConfig
    from sampan.risk.records import control_record, mark_record

    book = RiskBook(RiskConfig(mark_interval_ns=0))
    book.limits("A1", "M1", 0, 1)
    book.snapshot("A1", "M1", 1_000, {700: 100}, {})
    book.price(700, 470_000, 1)
    (mark,) = book.flush(2, "2026-11-30").marks
    view = View()
    (update,) = view.apply("risk.marks", mark_record(mark))
    assert (update.channel, update.key, update.message["type"]) == ("account", "A1", "mark")
    assert update.message["equity_cents"] == 1_000 + 4_700_000
    assert view.marks["A1"]["holdings_value_cents"] == 4_700_000
    (update,) = view.apply("risk.controls", control_record("A1", True, "sampan-risk", 3, "x"))
    assert update.message["type"] == "control" and view.controls["A1"]["blocked"]
