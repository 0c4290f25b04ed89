"""The trader's screen in a real browser (Debian's Chromium driven by Playwright) against the
whole venue: hkex-sim, omd-ingest, matcher, router, ledger-sink, dropcopy, recon and `sampan ui`,
every one a real process on the real broker and database.

One venue serves the whole module (it takes a while to start); each test trades on accounts
of its own, so the tests do not depend on each other's orders. Screenshots of the main screen
at desktop and phone sizes, and of the risk officer's view, are written to docs/screenshots/.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from topic_namespace import new_prefix, topic_namespace

from sampan.config import Settings, settings
from sampan.ledger_sink import db
from sampan.tools.records import publish_records
from sampan.tools.seed import AccountSeed, account_record, fund_seed, publish_seed
from sampan.tools.venue import (
    HkexFirm,
    ProcessSpec,
    Supervisor,
    VenueOptions,
    VenuePorts,
    free_tcp_ports,
    sampan_command,
    venue_specs,
)
from sampan.ui_bridge.auth import Role
from sampan.ui_bridge.store import Store, drop_schema, migrate

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[3] / "docs" / "screenshots"
PASSWORD = "browser-test-password"
FIRM = "MAKER9"
WAIT_MS = 45_000  # what the screen may take to show a venue's answer on this busy machine
WAIT_S = WAIT_MS / 1000
READY_S = 150.0  # per process, to start on a loaded machine
HKEX_OFFER_E3 = 512_500  # HKEX's arranged best offer: 400 + 300 shares from another firm

# Every member firm has one account and one trader; M2's account may sell short, so it can
# rest the internal offers the buyers take.
SEEDS = tuple(
    AccountSeed(f"ACC{n}", f"M{n}", 5_000_000_00, 1_000_000_00, 500_000_00, 2_000_000_00, n == 2)
    for n in range(1, 5)
)
TRADERS = {f"trader{n}": f"M{n}" for n in range(1, 5)}


class Venue:
    def __init__(self, url: str, supervisor: Supervisor) -> None:
        self.url = url
        self.supervisor = supervisor
        self.clients: list[httpx.Client] = []

    def api(self, username: str) -> httpx.Client:
        """A REST client logged in as `username` (bearer token, as an API client)."""
        client = httpx.Client(base_url=self.url, timeout=15)
        self.clients.append(client)
        answer = client.post("/api/login", json={"username": username, "password": PASSWORD})
        assert answer.status_code == 200, answer.text
        client.headers["Authorization"] = f"Bearer {answer.json()['token']}"
        return client


def order(
    client: httpx.Client,
    account: str,
    side: str,
    qty: int,
    price_e3: int,
    route: str = "INTERNAL",
    security: int = 700,
) -> str:
    body = {
        "account": account,
        "security": security,
        "side": side,
        "qty": qty,
        "price_e3": price_e3,
        "route": route,
        "time_in_force": "DAY",
    }
    answer = client.post("/api/orders", json=body)
    assert answer.status_code == 202, answer.text
    cl_ord_id: str = answer.json()["cl_ord_id"]
    return cl_ord_id


def wait_order(client: httpx.Client, account: str, cl_ord_id: str, statuses: set[str]) -> Any:
    """The order's row in today's orders once its status is one of `statuses` (bounded)."""
    deadline = time.monotonic() + WAIT_S
    row: Any = None
    while time.monotonic() < deadline:
        rows = client.get(f"/api/accounts/{account}/orders").json()
        row = next((r for r in rows if r["cl_ord_id"] == cl_ord_id), None)
        if row is not None and row["status"] in statuses:
            return row
        time.sleep(0.3)
    raise AssertionError(f"order {cl_ord_id} of {account} not {statuses} in {WAIT_S} s: {row}")


@pytest.fixture(scope="module")
def venue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venue]:
    run = uuid.uuid4().hex[:10]
    ledger_schema, ui_schema = f"ledger_b{run}", f"ui_b{run}"
    directory = tmp_path_factory.mktemp("venue")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SAMPAN_TOPIC_PREFIX", new_prefix())
        env.setenv("SAMPAN_LEDGER_SCHEMA", ledger_schema)
        env.setenv("SAMPAN_UI_SCHEMA", ui_schema)
        current = settings()
        with topic_namespace(current):
            db.migrate(current, ledger_schema)
            migrate(current, ui_schema)
            try:
                yield from _run_venue(current, directory, ui_schema)
            finally:
                drop_schema(current, ui_schema)
                db.drop_schema(current, ledger_schema)


def _run_venue(current: Settings, directory: Path, ui_schema: str) -> Iterator[Venue]:
    publish_seed(current)
    now = time.time_ns()
    publish_records(
        current,
        "reference.accounts",
        "Account",
        [(s.account, account_record(s, now)) for s in SEEDS],
    )
    fund_seed(current, SEEDS)
    store = Store(current, ui_schema)
    for username, member in TRADERS.items():
        store.add_user(username, PASSWORD, Role.TRADER, member)
    store.add_user("risk", PASSWORD, Role.RISK, None)
    ports = VenuePorts.free()
    (ui_port,) = free_tcp_ports(1)
    options = VenueOptions(directory, directory.name, extra_firms=(f"{FIRM}:{FIRM}DC:0",))
    specs = [
        ProcessSpec(s.name, s.command, s.ready_log, s.ready_port, READY_S)
        for s in venue_specs(ports, options)
    ]
    ui = ProcessSpec(
        "ui",
        sampan_command("ui", "--port", str(ui_port)),
        ready_port=ui_port,
        ready_timeout_s=READY_S,
    )
    with Supervisor(directory / "logs", dict(os.environ)) as supervisor:
        supervisor.start(specs[:1])
        # HKEX's best offer for 700 becomes 400 + 300 at HK$512.500 from another firm: it takes
        # the simulator's seeded offers up to that price, then rests its own two sells.
        from sampan.fix.messages import Side as FixSide
        from sampan.fix.messages import TimeInForce as FixTif

        firm = HkexFirm(ports.ocg, FIRM)
        try:
            firm.place("9001", FixSide.BUY, 3_000, HKEX_OFFER_E3, FixTif.IOC)
            firm.place("9002", FixSide.SELL, 400, HKEX_OFFER_E3, FixTif.DAY)
            firm.place("9003", FixSide.SELL, 300, HKEX_OFFER_E3, FixTif.DAY)
        finally:
            firm.close()
        supervisor.start([*specs[1:], ui])
        venue = Venue(f"http://127.0.0.1:{ui_port}", supervisor)
        try:
            yield venue
        finally:
            for client in venue.clients:
                client.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as playwright:
        # Debian's Chromium, never a downloaded one.
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


def log_in(browser: Any, venue: Venue, username: str, width: int = 1600, height: int = 900) -> Any:
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors
    page.goto(venue.url + "/")
    page.fill("#login-user", username)
    page.fill("#login-pass", PASSWORD)
    page.click("#login-submit")
    expect(page.locator("#app")).to_be_visible()
    expect(page.locator("#conn")).to_have_class("conn live")
    return page


def ticket(
    page: Any, side: str, qty: str, price: str, route: str = "INTERNAL", code: str = "700"
) -> None:
    page.click("#tab-buy" if side == "BUY" else "#tab-sell")
    page.fill("#t-security", code)
    page.dispatch_event("#t-security", "change")
    page.fill("#t-qty", qty)
    page.fill("#t-price", price)
    page.check(f"input[name=route][value={route}]")
    page.click("#t-order")


def test_a_fill_against_another_member_changes_header_inventory_and_orders_live(
    venue: Venue, browser: Any
) -> None:
    from playwright.sync_api import expect

    seller = venue.api("trader2")
    resting = order(seller, "ACC2", "SELL", 200, 511_000)
    wait_order(seller, "ACC2", resting, {"NEW"})

    page = log_in(browser, venue, "trader1")
    expect(page.locator("#account-select option")).to_have_count(1)
    page.evaluate("window.__loadedOnce = true")  # gone if the page reloads
    before = {h: page.inner_text(h) for h in ("#h-equity", "#h-cash", "#h-portfolio")}

    ticket(page, "BUY", "200", "511.000")
    row = page.locator("#orders tbody tr").first
    expect(row).to_contain_text("FILLED")
    expect(row).to_contain_text("INTERNAL 200 @ 511.000")
    expect(page.locator("#t-result")).to_contain_text("Filled 200 @ 511.000 on INTERNAL")
    # Cash falls by the notional and its charges; the header follows without a reload.
    expect(page.locator("#h-cash")).not_to_have_text(before["#h-cash"])
    expect(page.locator("#h-portfolio")).not_to_have_text("—")
    page.click("[data-pane=inventory]")
    holding = page.locator("#inventory tbody tr[data-security='700']")
    expect(holding).to_contain_text("200")
    assert page.evaluate("window.__loadedOnce") is True
    assert page.errors == []
    # The seller's order filled too: the fill was against another member's order.
    assert wait_order(seller, "ACC2", resting, {"FILLED"})["cum_qty"] == 200

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.click("[data-pane=orders]")
    page.screenshot(path=str(SCREENSHOTS / "desktop.png"))
    phone = page.context.browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    phone_page = phone.new_page()
    phone_page.goto(venue.url + "/")
    phone_page.fill("#login-user", "trader1")
    phone_page.fill("#login-pass", PASSWORD)
    phone_page.click("#login-submit")
    expect(phone_page.locator("#orders tbody tr").first).to_contain_text("FILLED")
    phone_page.click("#watchlist tbody tr[data-security='700']")
    expect(phone_page.locator("#book-HKEX td.ask").first).not_to_have_text("")
    # Cards, not a squeezed desktop: the header cards stack and the wide table scrolls sideways.
    assert phone_page.evaluate("document.documentElement.scrollWidth") <= 390
    assert phone_page.evaluate(
        "(() => { const s = document.querySelector('.lower .pane:not([hidden])');"
        " return s.scrollWidth > s.clientWidth; })()"
    )
    phone_page.screenshot(path=str(SCREENSHOTS / "phone.png"), full_page=True)
    phone.close()
    page.context.close()


def test_a_smart_order_shows_its_internal_and_its_hkex_fills(venue: Venue, browser: Any) -> None:
    from playwright.sync_api import expect

    seller = venue.api("trader2")
    resting = order(seller, "ACC2", "SELL", 300, 512_000)
    wait_order(seller, "ACC2", resting, {"NEW"})

    page = log_in(browser, venue, "trader4")
    ticket(page, "BUY", "1000", "512.500", route="SMART")
    row = page.locator("#orders tbody tr").first
    expect(row).to_contain_text("FILLED")
    fills = row.locator(".fills")
    expect(fills).to_contain_text("INTERNAL 300 @ 512.000")
    expect(fills).to_contain_text("HKEX")
    expect(row.locator("td").nth(7)).to_have_text("1,000")  # filled of ordered
    hkex_shares = sum(
        int(line.split()[1].replace(",", ""))
        for line in fills.inner_text().splitlines()
        if line.startswith("HKEX")
    )
    assert hkex_shares == 700
    page.context.close()


def test_a_fat_finger_is_stopped_on_the_screen(venue: Venue, browser: Any) -> None:
    from playwright.sync_api import expect

    page = log_in(browser, venue, "trader1")
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if r.url.endswith("/api/orders") else None)
    problems = page.locator("#t-problems")
    cases = [
        ("150", "511.000", "board lot (100 shares)"),  # not a whole lot
        ("100", "511.300", "not on tick"),  # 0.500 tick in this band
        ("100", "700.000", re.compile(r"from the (last price|previous close)")),  # far away
        ("5000", "511.000", "above the account's limit"),  # HK$2.555m > HK$2m
    ]
    for qty, price, why in cases:
        ticket(page, "BUY", qty, price)
        expect(problems).to_contain_text(why)
        expect(page.locator("#t-result")).to_have_text("Not sent: see above.")
        page.keyboard.press("Enter")  # Enter in the ticket is Order too
    assert sent == []
    page.context.close()


def test_a_router_reject_shows_its_reason(venue: Venue, browser: Any) -> None:
    from playwright.sync_api import expect

    page = log_in(browser, venue, "trader3")
    # ACC3 holds no HKEX (00388) shares and may not sell short: the screen lets it go (it does
    # not judge inventory), the router refuses it.
    ticket(page, "SELL", "100", "376.400", code="388")
    expect(page.locator("#t-result")).to_contain_text("Rejected: INSUFFICIENT_INVENTORY")
    row = page.locator("#orders tbody tr").first
    expect(row).to_contain_text("REJECTED")
    expect(row.locator(".reason")).to_contain_text("INSUFFICIENT_INVENTORY")
    page.context.close()


def test_a_trader_cannot_see_another_firms_account(venue: Venue, browser: Any) -> None:
    from playwright.sync_api import expect

    page = log_in(browser, venue, "trader1")
    expect(page.locator("#account-select option")).to_have_text(["ACC1 · M1"])
    # The page's own session (cookie) against the REST API.
    for path in ("/api/accounts/ACC2", "/api/accounts/ACC2/orders", "/api/accounts/ACC2/inventory"):
        answer = page.request.get(venue.url + path)
        assert answer.status == 403, (path, answer.status)
        assert answer.json()["error"] == "FORBIDDEN"
    # And over the WebSocket, as the page would subscribe.
    refused = page.evaluate(
        """() => new Promise((resolve, reject) => {
            const ws = new WebSocket(`ws://${location.host}/ws`);
            const timer = setTimeout(() => reject(new Error("no answer in 20 s")), 20000);
            ws.onopen = () => ws.send(JSON.stringify({op: "subscribe", channel: "account", account: "ACC2"}));
            ws.onmessage = (ev) => {
                const msg = JSON.parse(ev.data);
                if (msg.type === "error" || msg.account === "ACC2") { clearTimeout(timer); ws.close(); resolve(msg); }
            };
        })"""
    )
    assert refused["type"] == "error" and refused["error"] == "FORBIDDEN", refused
    # The first account's orders of the other firm never reach this page.
    assert "ACC2" not in page.inner_text("#app")
    page.context.close()


def test_a_risk_officer_halts_an_account_and_its_next_order_is_refused(
    venue: Venue, browser: Any
) -> None:
    from playwright.sync_api import expect

    trader = log_in(browser, venue, "trader3")
    risk = log_in(browser, venue, "risk")
    risk.click("#tab-risk")
    row = risk.locator("#risk tbody tr[data-account='ACC3']")
    expect(row).to_contain_text("ACTIVE")
    row.get_by_role("button", name="Halt").click()
    expect(row).to_contain_text("HALTED")
    risk.screenshot(path=str(SCREENSHOTS / "risk.png"))
    # The trader's screen learns of the halt live and says so.
    expect(trader.locator("#banner")).to_contain_text("ACC3 is halted")
    # The router refuses the account's next order (sent through the API, past the screen).
    client = venue.api("trader3")
    cl_ord_id = order(client, "ACC3", "BUY", 100, 511_000)
    refused = wait_order(client, "ACC3", cl_ord_id, {"REJECTED", "NEW", "FILLED"})
    assert refused["status"] == "REJECTED" and refused["reject_reason"] == "ACCOUNT_DISABLED", (
        refused
    )
    trader.context.close()
    risk.context.close()


def test_money_is_exact_to_the_cent_in_the_trillions(venue: Venue, browser: Any) -> None:
    page = browser.new_page()
    page.goto(venue.url + "/")
    out = page.evaluate(
        """() => {
            const M = window.sampan.Money;
            const big = window.sampan.parseJson('{"c": 123456789012345678}').c;
            return [M.cents(big), M.cents("-5"), M.e3(512500), M.cents(M.notionalCents(511300n, 7000000000n)),
                    M.pct(M.changeBp(513000, 512000)), String(M.parsePriceE3("9,995.000"))];
        }"""
    )
    assert out == [
        "1,234,567,890,123,456.78",
        "-0.05",
        "512.500",
        "3,579,100,000,000.00",
        "+0.19%",
        "9995000",
    ]
    page.close()


def test_an_order_is_amended_and_cancelled_from_its_row(venue: Venue, browser: Any) -> None:
    from playwright.sync_api import expect

    page = log_in(browser, venue, "trader2")
    ticket(page, "SELL", "100", "520.000")
    row = page.locator("#orders tbody tr").first
    expect(row).to_contain_text("NEW")
    rows_before = page.locator("#orders tbody tr").count()
    row.get_by_role("button", name="Amend").click()
    expect(page.locator("#t-order")).to_have_text("Amend")
    page.fill("#t-price", "521.000")
    page.click("#t-order")
    # The amend and the cancel report under their own request ids; the row stays one row.
    expect(row.locator("td").nth(5)).to_have_text("521.000")
    expect(page.locator("#t-result")).to_contain_text("Amended: 100 @ 521.000")
    row.get_by_role("button", name="Cancel").click()
    expect(row).to_contain_text("CANCELED")
    expect(page.locator("#orders tbody tr")).to_have_count(rows_before)
    assert page.errors == []
    page.context.close()


def test_a_risk_officer_sees_surveillance_alerts_live_and_a_trader_cannot(
    venue: Venue, browser: Any
) -> None:
    from playwright.sync_api import expect

    risk = log_in(browser, venue, "risk")
    risk.click("#tab-risk")
    expect(risk.locator("#alerts tbody")).to_contain_text("No surveillance alerts")
    # The analytics app's record (its rules are tested on the real matcher apart): published
    # once, then raised again under the same id with fuller evidence.
    alert = {
        "alert_id": "SPOOFING:ACC3:700:O77",
        "rule": "SPOOFING",
        "venue": "INTERNAL",
        "security": 700,
        "accounts": ["ACC3"],
        "member": "M3",
        "order_ids": ["O77", "O78"],
        "exec_ids": ["X900"],
        "detail": "2 large buy order(s) of 6000 shares near the touch cancelled",
        "ts_ns": time.time_ns(),
    }
    current = settings()
    publish_records(
        current, "surveillance.alerts", "SurveillanceAlert", [(alert["alert_id"], alert)]
    )
    row = risk.locator("#alerts tbody tr[data-alert='SPOOFING:ACC3:700:O77']")
    expect(row).to_contain_text("SPOOFING")
    expect(row).to_contain_text("M3 ACC3")
    expect(row).to_contain_text("O77 O78 X900")
    fuller = {**alert, "exec_ids": ["X900", "X901"]}
    publish_records(
        current, "surveillance.alerts", "SurveillanceAlert", [(alert["alert_id"], fuller)]
    )
    expect(row).to_contain_text("O77 O78 X900 X901")
    expect(risk.locator("#alerts tbody tr")).to_have_count(1)
    assert risk.errors == []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    risk.locator("#alerts").screenshot(path=str(SCREENSHOTS / "surveillance.png"))
    # A trader is refused the alerts over REST and is never sent them.
    answer = venue.api("trader3").get("/api/surveillance/alerts")
    assert answer.status_code == 403, answer.text
    assert venue.api("risk").get("/api/surveillance/alerts").json() == [fuller]
    risk.context.close()
