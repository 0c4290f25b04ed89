"""`sampan audit` on a real session: every real process, then an auditor's questions.

The session: an internal sell rests; a SMART buy of 1,000 fills 300 against it and 700 on
HKEX (two executions, drop-copied and reconciled); another order is amended then cancelled;
one is refused by risk (its notional is above the account's fat-finger limit). Then
`sampan audit order` must tell each story with the records expected, in time order, with
their positions (the router's decisions among them: each check with its figures, the route,
the SMART split and the HKEX child it sent later); `sampan audit account` must show the passive seller's fill; an export must
decode record for record what the topics hold.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sampan.config import Settings
from sampan.dropcopy.records import EXEC_TYPE_TRADE
from sampan.fix.messages import Side as FixSide
from sampan.fix.messages import TimeInForce as FixTif
from sampan.ledger_sink import db
from sampan.tools.audit_trail import plain
from sampan.tools.records import new_order, publish_records, read_topic, wait_until
from sampan.tools.seed import AccountSeed, account_record, fund_seed
from sampan.tools.venue import HkexFirm, Supervisor, VenueOptions, VenuePorts, venue_specs

pytestmark = pytest.mark.integration

INTERNAL_E3 = 512_000
HKEX_E3 = 512_500
FIRM = "MAKER2"
WAIT_S = 45.0
READY_S = 180.0

SEEDS = (
    AccountSeed("BUYER1", "M1", 5_000_000_00, 1_000_000_00, 500_000_00, 2_000_000_00),
    AccountSeed(
        "SELLER2", "M2", 5_000_000_00, 1_000_000_00, 500_000_00, 2_000_000_00, allow_short=True
    ),
)


@pytest.fixture
def schema(env_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"ledger_a{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("SAMPAN_LEDGER_SCHEMA", name)
    db.migrate(env_settings, name)
    yield name
    db.drop_schema(env_settings, name)


def sampan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sampan.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )


def publish(s: Settings, topic: str, schema: str, records: list[dict[str, Any]]) -> None:
    publish_records(s, topic, schema, [(r["account"], r) for r in records])


def read(s: Settings, topic: str, schema: str) -> list[dict[str, Any]]:
    return read_topic(s, topic, schema, timeout_s=30.0)


def command(kind: str, cl_ord_id: str, account: str, side: str, qty: int, price_e3: int,
            route: str, orig: str | None = None) -> dict[str, Any]:  # fmt: skip
    order = new_order(cl_ord_id, account, side, qty, price_e3, route)
    return order | {"command_id": f"{cl_ord_id}-cmd", "kind": kind, "orig_cl_ord_id": orig}


def reports(s: Settings, cl_ord_id: str) -> list[dict[str, Any]]:
    return [r for r in read(s, "orders.events", "ExecutionReport") if r["cl_ord_id"] == cl_ord_id]


def audit_json(*args: str) -> dict[str, Any]:
    done = sampan("audit", *args, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def kinds(story: dict[str, Any]) -> list[tuple[str, str]]:
    """(topic, what) per record: the command kind, exec type, or exec id."""
    out = []
    for item in story["records"]:
        r = item["record"]
        what = r.get("kind") or r.get("exec_type") or r.get("exec_id")
        out.append((item["topic"], str(what)))
    return out


def test_audit_tells_each_order_and_account_story(
    env_settings: Settings, schema: str, tmp_path: Path
) -> None:
    s = env_settings
    now = time.time_ns()
    publish(s, "reference.accounts", "Account", [account_record(x, now) for x in SEEDS])
    assert fund_seed(s, SEEDS) == (2, 0)
    ports = VenuePorts.free()
    options = VenueOptions(
        tmp_path / "state",
        uuid.uuid4().hex[:8],
        extra_firms=(f"{FIRM}:{FIRM}DC:0",),
        recon_grace_s=1.0,
        with_omd=False,
        with_relay=True,
    )
    # Readiness waits sized for a loaded two-core machine (eight suites may share it).
    specs = [replace(spec, ready_timeout_s=READY_S) for spec in venue_specs(ports, options)]
    with Supervisor(tmp_path / "logs", dict(os.environ)) as venue:
        venue.start(specs[:1])
        firm = HkexFirm(ports.ocg, FIRM)
        try:
            firm.place("9001", FixSide.BUY, 3_000, HKEX_E3, FixTif.IOC)
            firm.place("9002", FixSide.SELL, 400, HKEX_E3, FixTif.DAY)
            firm.place("9003", FixSide.SELL, 300, HKEX_E3, FixTif.DAY)
            venue.start(specs[1:])
            check = venue.check
            rest = command("NEW", "rest-1", "SELLER2", "SELL_SHORT", 300, INTERNAL_E3, "INTERNAL")
            publish(s, "orders.requests", "OrderCommand", [rest])
            wait_until("the resting sell", lambda: reports(s, "rest-1"), WAIT_S, check)
            smart = command("NEW", "smart-1", "BUYER1", "BUY", 1_000, HKEX_E3, "SMART")
            park = command("NEW", "park-1", "BUYER1", "BUY", 100, 500_000, "INTERNAL")
            fat = command("NEW", "fat-1", "BUYER1", "BUY", 10_000, 505_000, "INTERNAL")
            publish(s, "orders.requests", "OrderCommand", [smart, park, fat])
            wait_until(
                "the SMART parent FILLED",
                lambda: [r for r in reports(s, "smart-1") if r["ord_status"] == "FILLED"],
                WAIT_S,
                check,
            )
            wait_until("park-1 resting", lambda: reports(s, "park-1"), WAIT_S, check)
            amend = command("AMEND", "park-2", "BUYER1", "BUY", 200, 500_000, "INTERNAL", "park-1")
            publish(s, "orders.requests", "OrderCommand", [amend])
            wait_until("the amend", lambda: reports(s, "park-2"), WAIT_S, check)
            cancel = command("CANCEL", "park-3", "BUYER1", "BUY", 0, 0, "INTERNAL", "park-2")
            publish(s, "orders.requests", "OrderCommand", [cancel])
            wait_until(
                "the cancel",
                lambda: [r for r in reports(s, "park-3") if r["exec_type"] == "CANCELED"],
                WAIT_S,
                check,
            )

            def reconciled() -> bool:
                out = sampan("recon", "report", "--grace-s", "1").stdout
                return "matched 2, pending 0, open breaks 0" in out

            wait_until("recon: 2 HKEX executions matched", reconciled, WAIT_S, check)
            wait_until(
                "the ledger's 2 deposits and 3 fills on ledger.postings",
                lambda: len(read(s, "ledger.postings", "LedgerEntry")) >= 5,
                WAIT_S,
                check,
            )
        finally:
            firm.close()
        venue.stop()

    # The SMART order: request, the internal child, parent and child reports, three fills, and
    # both HKEX executions' drop copies, in time order with their positions.
    story = audit_json("order", "smart-1")
    seen = kinds(story)
    assert seen[0] == ("orders.requests", "NEW")
    assert ("orders.internal", "NEW") in seen
    decided = [i["record"] for i in story["records"] if i["topic"] == "router.decisions"]
    assert [(d["event"], d["outcome"], d["route"]) for d in decided] == [
        ("REQUEST", "ACCEPTED", "SMART"), ("CHILD_SENT", "ACCEPTED", "SMART"),
    ]  # fmt: skip
    assert all(c["passed"] for c in decided[0]["checks"])
    power = {c["name"]: c for c in decided[0]["checks"]}["INSUFFICIENT_BUYING_POWER"]
    assert power["value"] == decided[0]["hold_cents"] and power["limit"] >= power["value"]
    (internal_child,) = decided[0]["children"]
    assert (internal_child["venue"], internal_child["qty"]) == ("INTERNAL", 1_000)
    (hkex_child,) = decided[1]["children"]
    assert (hkex_child["venue"], hkex_child["qty"]) == ("HKEX", 700)
    # The decision follows its request, and the HKEX child's comes before HKEX's reports.
    topics_seen = [t for t, _ in seen]
    assert topics_seen.index("router.decisions") == 1
    hkex_reports = [
        n for n, i in enumerate(story["records"])
        if i["topic"] == "orders.events" and i["record"]["venue"] == "HKEX"
    ]  # fmt: skip
    child_at = [n for n, (t, w) in enumerate(seen) if t == "router.decisions"][1]
    assert hkex_reports and child_at < min(hkex_reports)
    fills = [r for t, r in seen if t == "fills"]
    assert len(fills) == 3
    hkex_fills = sorted(
        i["record"]["exec_id"] for i in story["records"]
        if i["topic"] == "fills" and i["record"]["venue"] == "HKEX"
    )  # fmt: skip
    trade_copies = sorted(
        i["record"]["exec_id"]
        for i in story["records"]
        if i["topic"] == "hkex.dropcopy" and i["record"]["exec_type"] == EXEC_TYPE_TRADE
    )
    assert len(hkex_fills) == 2 and trade_copies == hkex_fills
    # Each fill's ledger entry, with its postings, follows the fill.
    fill_execs = sorted(i["record"]["exec_id"] for i in story["records"] if i["topic"] == "fills")
    entries = [i["record"] for i in story["records"] if i["topic"] == "ledger.postings"]
    assert sorted(e["exec_id"] for e in entries) == fill_execs
    assert all(e["kind"] == "FILL" and e["postings"] for e in entries)
    events = [i["record"] for i in story["records"] if i["topic"] == "orders.events"]
    parent = [e for e in events if e["cl_ord_id"] == "smart-1"]
    assert parent[-1]["ord_status"] == "FILLED" and parent[-1]["cum_qty"] == 1_000
    assert {e["venue"] for e in events} == {"INTERNAL", "HKEX"}
    times = [i["ts_ns"] for i in story["records"]]
    assert times == sorted(times)
    assert all(
        {"topic", "partition", "offset"} <= item.keys() and item["offset"] >= 0
        for item in story["records"]
    )

    # Amended then cancelled: both requests and the reports of each step.
    park = kinds(audit_json("order", "park-1"))
    requests = [w for t, w in park if t == "orders.requests"]
    assert requests == ["NEW", "AMEND", "CANCEL"]
    assert [w for t, w in park if t == "router.decisions"] == ["NEW", "AMEND", "CANCEL"]
    assert [w for t, w in park if t == "orders.events"][-1] == "CANCELED"
    assert "REPLACED" in [w for t, w in park if t == "orders.events"]

    # Refused by risk: the request and the router's reject with its reason.
    fat_story = audit_json("order", "fat-1")
    rejects = [i["record"] for i in fat_story["records"] if i["topic"] == "orders.events"]
    assert [r["exec_type"] for r in rejects] == ["REJECTED"] and rejects[0]["reject_reason"]
    assert not [i for i in fat_story["records"] if i["topic"] == "orders.internal"]
    (refusal,) = [i["record"] for i in fat_story["records"] if i["topic"] == "router.decisions"]
    assert (refusal["outcome"], refusal["reject_reason"]) == ("REJECTED", "MAX_NOTIONAL")
    failed = refusal["checks"][-1]
    assert failed["name"] == "MAX_NOTIONAL" and not failed["passed"]
    assert failed["value"] == 10_000 * 505_000 > failed["limit"] == 2_000_000_00 * 10

    # The readable table says the same, and an unknown id says so plainly.
    table = sampan("audit", "order", "fat-1")
    assert table.returncode == 0 and "REJECTED" in table.stdout and "orders.events[" in table.stdout
    assert "check FAIL MAX_NOTIONAL value 5,050,000,000 e3 limit 2,000,000,000 e3" in table.stdout
    unknown = sampan("audit", "order", "no-such-order")
    assert unknown.returncode == 1 and "no record of order 'no-such-order'" in unknown.stderr

    # The passive seller's fill is found though `fills` is keyed by the aggressor.
    seller = audit_json("account", "SELLER2")
    seller_fills = [i["record"] for i in seller["records"] if i["topic"] == "fills"]
    assert [(f["sell_account"], f["qty"], f["price_e3"]) for f in seller_fills] == [
        ("SELLER2", 300, INTERNAL_E3)
    ]
    assert seller["closing_balance"] is not None
    seller_entries = [i["record"] for i in seller["records"] if i["topic"] == "ledger.postings"]
    assert sorted(e["kind"] for e in seller_entries) == ["CASH", "FILL"]
    cash = next(e for e in seller_entries if e["kind"] == "CASH")
    assert cash["movement"]["account"] == "SELLER2" and cash["movement"]["direction"] == "deposit"
    seller_table = sampan("audit", "account", "SELLER2")
    assert "ledger entry" in seller_table.stdout and "posting leg" in seller_table.stdout

    # An export of the session decodes record for record what the topics hold.
    out = tmp_path / "export.jsonl"
    done = sampan(
        "audit", "export", "--from", "2000-01-01T00:00", "--to", "2100-01-01T00:00",
        "--topics", "orders.requests", "router.decisions", "orders.events", "fills",
        "ledger.postings", "--output", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    for topic, name in (
        ("orders.requests", "OrderCommand"),
        ("router.decisions", "RouterDecision"),
        ("orders.events", "ExecutionReport"),
        ("fills", "Fill"),
        ("ledger.postings", "LedgerEntry"),
    ):
        exported = [r["record"] for r in rows if r["topic"] == topic]
        held = [plain(r) for r in read(s, topic, name)]
        assert held and sorted(map(json.dumps, exported)) == sorted(map(json.dumps, held))
        assert f"{topic}" in done.stderr
    assert all(r["error"] is None for r in rows)
