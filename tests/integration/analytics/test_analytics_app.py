"""The analytics app on the real broker: SIGKILLed mid-stream and restarted, what a reader of
md.stats and md.movers sees equals a naive recomputation from the trades (no double counts)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from sampan.config import Settings
from sampan.schemas.codec import registry
from sampan.streams import profiles
from sampan.streams.reader import read_to_end

pytestmark = pytest.mark.integration

SECURITIES = tuple(range(1, 16))
PREV_E3 = 10_000
TRADES_PER_ROUND = 600
WAIT_S = 120.0


def ts_ns() -> int:
    return time.time_ns()


def produce(
    s: Settings, topic: str, schema: str, items: list[tuple[bytes, dict[str, Any]]]
) -> None:
    producer = Producer(profiles.producer(s))
    for key, record in items:
        producer.produce(s.topic(topic), key=key, value=registry().encode(schema, record))
        producer.poll(0)
    assert producer.flush(30) == 0, f"{topic}: not delivered within 30 s"


def latest(s: Settings, topic: str, schema: str) -> dict[bytes, dict[str, Any]]:
    out: dict[bytes, dict[str, Any]] = {}
    for message in read_to_end(s, topic, 30.0):
        out[message.key()] = registry().decode(schema, message.value())
    return out


def make_trades(round_: int) -> list[tuple[bytes, dict[str, Any]]]:
    items = []
    for i in range(TRADES_PER_ROUND):
        n = round_ * TRADES_PER_ROUND + i
        venue = "INTERNAL" if n % 3 else "HKEX"
        security = SECURITIES[(n * 7) % len(SECURITIES)]
        # Prices wander around the previous close, some securities up, some down.
        price_e3 = PREV_E3 + (security - 8) * 50 + (n % 11) * 10
        record = {
            "venue": venue,
            "security": security,
            "trade_id": f"T{n}",
            "price_e3": price_e3,
            "qty": 100 * (1 + n % 5),
            "aggressor": None,
            "ts_ns": ts_ns(),
        }
        items.append((f"{venue}:{security}".encode(), record))
    return items


def naive(trades: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for t in trades:
        key = f"{t['venue']}:{t['security']}"
        s = out.setdefault(key, {"volume": 0, "turnover_e3": 0, "open_e3": t["price_e3"]})
        s["volume"] += t["qty"]
        s["turnover_e3"] += t["price_e3"] * t["qty"]
        s["last_e3"] = t["price_e3"]
        s["high_e3"] = max(s.get("high_e3", 0), t["price_e3"])
        s["low_e3"] = min(s.get("low_e3", 10**18), t["price_e3"])
    return out


class App:
    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sampan.cli", "analytics"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ),
        )

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> None:
        assert self.proc.poll() is None, self.output()[-4000:]


@pytest.fixture
def start_app(tmp_path: Path) -> Iterator[Callable[[], App]]:
    apps: list[App] = []

    def start() -> App:
        app = App(tmp_path / f"analytics-{len(apps)}.log")
        apps.append(app)
        return app

    yield start
    for app in apps:
        if app.proc.poll() is None:
            app.proc.kill()
            app.proc.wait(timeout=10)
        app.log.close()


def wait_for(what: str, probe: Callable[[], bool], check: Callable[[], None]) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        check()
        if probe():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {WAIT_S:.0f} s waiting for {what}")


def test_restart_mid_stream_counts_nothing_twice(
    env_settings: Settings, start_app: Callable[[], App]
) -> None:
    s = env_settings
    instruments = [
        (
            str(sec).encode(),
            {
                "security": sec,
                "name": f"SEC{sec}",
                "currency": "HKD",
                "board_lot": 100,
                "spread_table": "A",
                "prev_close_e3": PREV_E3,
                "enabled": sec != 15,
                "ts_ns": ts_ns(),
            },
        )
        for sec in SECURITIES
    ]
    produce(s, "reference.instruments", "Instrument", instruments)
    sent: list[dict[str, Any]] = []
    app = start_app()
    first = make_trades(0)
    produce(s, "md.trades", "TradeTick", first)
    sent += [r for _, r in first]

    def some_stats() -> bool:
        return bool(latest(s, "md.stats", "SecurityStats"))

    wait_for("the first md.stats records", some_stats, app.alive)
    # Kill it while it works on a second round.
    second = make_trades(1)
    produce(s, "md.trades", "TradeTick", second)
    sent += [r for _, r in second]
    app.proc.send_signal(signal.SIGKILL)
    app.proc.wait(timeout=10)
    third = make_trades(2)
    produce(s, "md.trades", "TradeTick", third)
    sent += [r for _, r in third]
    restarted = start_app()
    expected = naive(sent)
    internal = {k: v for k, v in expected.items() if k.startswith("INTERNAL:")}

    last_seen: dict[str, Any] = {}

    def stats_match() -> bool:
        seen = latest(s, "md.stats", "SecurityStats")
        got = {
            k.decode(): {
                "volume": r["volume"],
                "turnover_e3": r["turnover_e3"],
                "open_e3": r["open_e3"],
                "last_e3": r["last_e3"],
                "high_e3": r["high_e3"],
                "low_e3": r["low_e3"],
            }
            for k, r in seen.items()
        }
        last_seen.clear()
        last_seen.update(got)
        return got == internal

    try:
        wait_for("md.stats to equal the naive recomputation", stats_match, restarted.alive)
    except AssertionError:
        differ = {
            k: (internal.get(k), last_seen.get(k))
            for k in internal
            if internal.get(k) != last_seen.get(k)
        }
        raise AssertionError(f"expected vs seen: {differ}\n{restarted.output()[-3000:]}") from None

    def movers_match() -> bool:
        board = latest(s, "md.movers", "Movers")
        for venue in ("INTERNAL", "HKEX"):
            record = board.get(venue.encode())
            if record is None:
                return False
            changes = {
                int(k.split(":")[1]): (v["last_e3"] - PREV_E3) * 10_000 // PREV_E3
                for k, v in expected.items()
                if k.startswith(venue + ":") and k != f"{venue}:15"
            }
            rises = sorted(((-c, sec) for sec, c in changes.items() if c > 0))[:10]
            falls = sorted(((c, sec) for sec, c in changes.items() if c < 0))[:10]
            if [m["security"] for m in record["top"]] != [sec for _, sec in rises]:
                return False
            if [m["security"] for m in record["bottom"]] != [sec for _, sec in falls]:
                return False
        return True

    wait_for("md.movers to rank as a naive recomputation", movers_match, restarted.alive)
    restarted.proc.send_signal(signal.SIGTERM)
    assert restarted.proc.wait(timeout=60) is not None
    assert "Traceback" not in restarted.output(), restarted.output()[-4000:]
