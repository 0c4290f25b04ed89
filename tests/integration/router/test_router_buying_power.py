"""Buying power on the real stack counts every fill exactly once across a ledger restart with a
backlog and a router restart: an account with HK$1m and no credit line, refused a buy, is still
refused after the ledger sink restarts (its snapshots published before the backlog is posted
say which fills they include) and after the router restarts (it reads the fills no snapshot
includes again); and a buy it can afford is accepted once the ledger has caught up."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from router_harness import (
    Proc,
    Sim,
    account,
    command,
    events_of,
    producer,
    publish,
    read_all,
    send,
    start_matcher,
    start_router,
    state_dir,
    wait_for,
)

from sampan.config import Settings
from sampan.ledger_sink import db
from sampan.ledger_sink.movements import post_opening_deposits
from sampan.schemas import registry
from sampan.tools.bench.ledger import synthetic_fills

pytestmark = pytest.mark.integration

PX = 512_000  # HK$512, TENCENT's previous close
CASH = 100_000_000  # HK$1m, in cents
BACKLOG = 20_000  # fills of other accounts posted after the sink restarts
WAIT_S = 90.0


@pytest.fixture
def schema(env_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"ledger_t{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("SAMPAN_LEDGER_SCHEMA", name)
    db.migrate(env_settings, name)
    yield name
    db.drop_schema(env_settings, name)


def _cash(settings: Settings, schema: str, account: str) -> int:
    with psycopg.connect(settings.database_url, options=f"-c search_path={schema}") as conn:
        row = conn.execute(
            "SELECT balance FROM balances WHERE account = %s AND asset = 'HKD'", (account,)
        ).fetchone()
    return int(row[0]) if row else 0


def _answer(settings: Settings, order: dict, *procs: Proc) -> dict:
    """The router's first answer to a NEW: accepted (NEW, maybe filled) or REJECTED."""

    def answered() -> dict | None:
        return next(
            (
                e
                for e in events_of(settings)
                if e["cl_ord_id"] == order["cl_ord_id"] and e["exec_type"] in ("NEW", "REJECTED")
            ),
            None,
        )

    result: dict = wait_for(f"an answer to {order['cl_ord_id']}", answered, WAIT_S, *procs)
    return result


def _buy(settings: Settings, qty: int, *procs: Proc) -> dict:
    order = command("BUY1", "M1", "BUY", qty, PX, "INTERNAL", tif="IOC")
    send(settings, order)
    return _answer(settings, order, *procs)


def _filled(settings: Settings, answer: dict, *procs: Proc) -> None:
    wait_for(
        f"{answer['cl_ord_id']} filled",
        lambda: any(
            e["cl_ord_id"] == answer["cl_ord_id"] and e["ord_status"] == "FILLED"
            for e in events_of(settings)
        ),
        WAIT_S,
        *procs,
    )


def _backlog(settings: Settings) -> None:
    """BACKLOG fills of other accounts on BUY1's partition of `fills` (its key)."""
    p = producer(settings)
    for record in synthetic_fills(BACKLOG, seed=31, hkex_every=0):
        while True:
            try:
                p.produce(settings.topic("fills"), registry().encode("Fill", record), b"BUY1")
                break
            except BufferError:
                p.poll(0.1)
    assert p.flush(60) == 0


def _snapshot_after(settings: Settings, since_ns: int, cash_cents: int) -> bool:
    return any(
        s["account"] == "BUY1" and s["ts_ns"] >= since_ns and s["cash_cents"] == cash_cents
        for s in read_all(settings, "ledger.balances", "AccountSnapshot")
    )


def test_no_overspending_across_ledger_and_router_restarts(
    env_settings: Settings, schema: str
) -> None:
    s = env_settings
    directory = state_dir()
    sim = Sim(directory / "sim")
    publish(
        s,
        "reference.accounts",
        "Account",
        [
            account("BUY1", "M1", 0, cut_loss_cents=-(10**15)),
            account("SELL1", "M2", 10**12, allow_short=True),
        ],
    )
    matcher = start_matcher(directory)
    sink = Proc("sink", ["sampan.cli", "ledger-sink", "--batch-max", "50"], directory)
    router = start_router(sim, directory)
    procs = [router, matcher, sink]
    try:
        assert post_opening_deposits(s, schema, [("BUY1", "M1", CASH), ("SELL1", "M2", CASH)])
        resting = command("SELL1", "M2", "SELL_SHORT", 100_000, PX, "INTERNAL")
        send(s, resting)
        _answer(s, resting, *procs)

        # The ledger down: fills of other accounts pile up ahead of BUY1's on its partition,
        # so the restarted sink posts for a while before it reaches BUY1's fill.
        sink.kill()
        _backlog(s)
        # HK$870,400 of shares bought, so a HK$204,800 buy is refused.
        _filled(s, _buy(s, 1_700, *procs), *procs)
        refused = _buy(s, 400, *procs)
        assert refused["exec_type"] == "REJECTED", refused
        assert refused["reject_reason"] == "INSUFFICIENT_BUYING_POWER", refused
        time.sleep(3)  # older than any settlement grace a clock-based rule might allow

        restarted_ns = time.time_ns()
        sink.start()
        wait_for(
            "the restarted sink's snapshot of BUY1, before its backlog",
            lambda: _snapshot_after(s, restarted_ns, CASH),
            WAIT_S,
            *procs,
        )
        again = _buy(s, 400, *procs)
        backlog_posted = _cash(s, schema, "BUY1") != CASH
        assert again["exec_type"] == "REJECTED", again
        assert not backlog_posted, "the sink posted BUY1's fill before the router answered"

        # The ledger caught up: the fill is in the cash, and counted once, not twice.
        wait_for("BUY1's fill in the ledger", lambda: _cash(s, schema, "BUY1") < CASH, WAIT_S)
        after = _cash(s, schema, "BUY1")
        wait_for(
            "BUY1's snapshot with its fill",
            lambda: _snapshot_after(s, restarted_ns, after),
            WAIT_S,
            *procs,
        )
        assert _buy(s, 400, *procs)["exec_type"] == "REJECTED"
        _filled(s, _buy(s, 100, *procs), *procs)  # HK$51,200 of the ~HK$129,000 left

        # The ledger down again, a fill it has not posted, and the router restarted: the
        # router reads that fill again from `fills` and still counts it.
        wait_for("the second fill in the ledger", lambda: _cash(s, schema, "BUY1") < after, WAIT_S)
        sink.kill()
        _filled(s, _buy(s, 100, *procs), *procs)  # HK$51,200 more: leaves ~HK$26,000
        assert router.stop() == 0
        router.start()
        refused = _buy(s, 100, *procs)
        assert refused["exec_type"] == "REJECTED", refused
        assert refused["reject_reason"] == "INSUFFICIENT_BUYING_POWER", refused
    finally:
        for proc in procs:
            proc.stop()
        sim.close()
