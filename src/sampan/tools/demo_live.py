"""`sampan demo`: the whole venue, live, with simulated members trading, until Ctrl-C.

Starts every venue process (hkex-sim with its synthetic liquidity, omd-ingest, matcher, router,
ledger-sink, dropcopy, recon, analytics and the `sampan ui` screen) under
`sampan.tools.venue.Supervisor`
against a fresh topic prefix and ledger schema, seeds instruments and accounts, creates the
demo users, prints the URL and the demo logins, and then keeps a few simulated member firms
trading with each other and with HKEX (`MemberFlow`) until Ctrl-C, SIGTERM or `--duration`.
A process that dies is reported with the tail of its log and restarted; one that keeps dying
stops the demo with its log. Every process it started is stopped on the way out.

Guarantees:
- `MemberFlow` is pure and seeded: every order it makes is a whole number of board lots, on
  the instrument's tick, within `drift_bp_max` of the previous close (inside the router's
  collar), and no simulated member keeps more than `open_max` resting orders (the oldest is
  cancelled first).
- Every wait is bounded; the flow's producer never blocks longer than its flush timeout.

Limits: the simulated members keep their own mid price per security (a bounded random walk
around the previous close); they do not read the market, so HKEX's synthetic fair price and
theirs drift apart within the collar. Each run leaves its `live<id>` topics and ledger schema
behind for inspection.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import time
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from types import FrameType
from typing import Any

from sampan import stack, topics_cli
from sampan.config import Settings, settings
from sampan.errors import SampanError
from sampan.market.listings import SPREAD_TABLE_CODES, Listing, listings
from sampan.market.rules import SPREAD_TABLES
from sampan.schemas import registry
from sampan.streams import profiles
from sampan.tools.seed import AccountSeed, account_record

BPS = 10_000
UI_PORT_DEFAULT = 8080
RATE_DEFAULT = 4.0  # simulated member orders per second, across all members
HKEX_RATE_DEFAULT = 20  # the simulator's synthetic actions per second
RESTARTS_MAX = 5  # per process, for the whole run
STATUS_EVERY_S = 30.0
FLUSH_TIMEOUT_S = 10.0
READY_TIMEOUT_S = 120.0  # per process

# The demo's people: (username, password, role, member). A trader sees its firm's accounts.
DEMO_USERS: tuple[tuple[str, str, str, str], ...] = (
    ("trader1", "trader1-demo", "trader", "M1"),
    ("trader2", "trader2-demo", "trader", "M2"),
    ("risk", "risk-demo", "risk", ""),
    ("auditor", "auditor-demo", "auditor", ""),
)
# Member firms whose traders are people: HK$50m of cash each, room to trade all day.
HUMAN_SEEDS: tuple[AccountSeed, ...] = tuple(
    AccountSeed(f"ACC{n}", f"M{n}", 50_000_000_00, 10_000_000_00, 5_000_000_00, 20_000_000_00)
    for n in range(1, 5)
)
# Simulated members: they may sell short, so they can quote both sides from the first second.
SIM_SEEDS: tuple[AccountSeed, ...] = tuple(
    AccountSeed(
        f"SIM{n}", f"S{n}", 500_000_000_00, 100_000_000_00, 50_000_000_00, 50_000_000_00, True
    )
    for n in range(1, 4)
)


@dataclass(frozen=True, slots=True)
class FlowConfig:
    seed: int = 7
    open_max: int = 8  # resting orders per simulated member, at most
    drift_bp_max: int = 500  # a mid stays within 5% of the previous close (collar is 10%)
    lots_max: int = 5
    maker_pct: int = 60  # resting DAY orders a few ticks from the mid
    taker_pct: int = 25  # internal IOC orders through the mid
    smart_pct: int = 10  # SMART IOC orders (internal first, the rest to HKEX)
    # the rest: HKEX IOC orders

    def __post_init__(self) -> None:
        assert self.open_max >= 1 and 0 < self.drift_bp_max < 1_000 and self.lots_max >= 1
        assert self.maker_pct + self.taker_pct + self.smart_pct <= 100


class MemberFlow:
    """A seeded order flow of simulated members, as `OrderCommand` records. Pure: time is
    passed in, nothing is sent."""

    def __init__(
        self,
        members: Sequence[AccountSeed],
        instruments: Sequence[Listing],
        config: FlowConfig | None = None,
        run_id: str = "sim",
    ) -> None:
        assert members and instruments
        self.config = config or FlowConfig()
        self.members = list(members)
        self.instruments = [i for i in instruments if i.enabled]
        assert self.instruments, "at least one enabled instrument"
        self.rng = random.Random(self.config.seed)
        self.mids = {i.security: i.prev_close_e3 for i in self.instruments}
        self.open: dict[str, deque[tuple[str, int]]] = {m.account: deque() for m in members}
        self.run_id = run_id
        self.sent = 0

    def _table(self, listing: Listing) -> Any:
        return SPREAD_TABLES[SPREAD_TABLE_CODES[listing.spread_table]]

    def _walk(self, listing: Listing) -> int:
        table = self._table(listing)
        mid = self.mids[listing.security]
        step = self.rng.choice((-1, 0, 0, 1))
        moved = table.tick_up(mid, 1) if step > 0 else table.tick_down(mid, 1) if step else mid
        ref = listing.prev_close_e3
        if abs(moved - ref) * BPS <= ref * self.config.drift_bp_max:
            mid = moved
        self.mids[listing.security] = mid
        return mid

    def _id(self) -> str:
        self.sent += 1
        return f"{self.run_id}-{self.sent}"

    def step(self, ts_ns: int) -> list[dict[str, Any]]:
        """One member's next action: a new order, and a cancel of its oldest resting order
        when it already has `open_max` of them."""
        c = self.config
        member = self.rng.choice(self.members)
        listing = self.rng.choice(self.instruments)
        table = self._table(listing)
        mid = self._walk(listing)
        side = self.rng.choice(("BUY", "SELL"))
        qty = listing.board_lot * self.rng.randint(1, c.lots_max)
        roll = self.rng.randrange(100)
        out: list[dict[str, Any]] = []
        if roll < c.maker_pct:
            away = self.rng.randint(1, 4)
            price = table.tick_down(mid, away) if side == "BUY" else table.tick_up(mid, away)
            route, tif = "INTERNAL", "DAY"
        else:
            price = table.tick_up(mid, 3) if side == "BUY" else table.tick_down(mid, 3)
            tif = "IOC"
            if roll < c.maker_pct + c.taker_pct:
                route = "INTERNAL"
            elif roll < c.maker_pct + c.taker_pct + c.smart_pct:
                route = "SMART"
            else:
                route = "HKEX"
        cl_ord_id = self._id()
        out.append(
            command(member, "NEW", cl_ord_id, listing.security, side, qty, price, route, tif, ts_ns)
        )
        if tif == "DAY":
            resting = self.open[member.account]
            resting.append((cl_ord_id, listing.security))
            if len(resting) > c.open_max:
                old_id, old_security = resting.popleft()
                out.append(
                    command(
                        member,
                        "CANCEL",
                        self._id(),
                        old_security,
                        "BUY",
                        0,
                        0,
                        "INTERNAL",
                        "DAY",
                        ts_ns,
                        orig_cl_ord_id=old_id,
                    )
                )
        return out


def command(
    member: AccountSeed,
    kind: str,
    cl_ord_id: str,
    security: int,
    side: str,
    qty: int,
    price_e3: int,
    route: str,
    tif: str,
    ts_ns: int,
    orig_cl_ord_id: str | None = None,
) -> dict[str, Any]:
    return {
        "command_id": cl_ord_id,
        "kind": kind,
        "account": member.account,
        "member": member.member,
        "security": security,
        "cl_ord_id": cl_ord_id,
        "orig_cl_ord_id": orig_cl_ord_id,
        "side": side,
        "ord_type": "LIMIT",
        "time_in_force": tif,
        "price_e3": price_e3,
        "qty": qty,
        "route": route,
        "batch_id": None,
        "parent_id": None,
        "user": "sim",
        "ts_ns": ts_ns,
        "stp": None,
    }


class _Stop(Exception):
    """SIGTERM arrived: leave the run loop the way Ctrl-C does."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def _ticks(rate: float, duration_s: float | None) -> Iterator[float]:
    """Monotonic times at `rate` per second until `duration_s` (None: forever)."""
    assert rate > 0
    start = time.monotonic()
    n = 0
    while duration_s is None or time.monotonic() - start < duration_s:
        n += 1
        due = start + n / rate
        while (delay := due - time.monotonic()) > 0:
            time.sleep(min(delay, 0.5))
        yield time.monotonic()


def seed_venue(current: Settings, run_id: str) -> None:
    """Topics, ledger schema, instruments, the human and simulated accounts, their cash."""
    from sampan.ledger_sink import db
    from sampan.tools.records import publish_records
    from sampan.tools.seed import fund_seed, publish_seed

    result = topics_cli.apply(current)
    print(f"[{run_id}] topics under {current.topic_prefix!r}: {len(result.created)} created")
    db.migrate(current, run_id)
    publish_seed(current)
    now = time.time_ns()
    seeds = (*HUMAN_SEEDS, *SIM_SEEDS)
    publish_records(
        current,
        "reference.accounts",
        "Account",
        [(s.account, account_record(s, now)) for s in seeds],
    )
    posted, _ = fund_seed(current, seeds)
    print(f"[{run_id}] {len(seeds)} accounts seeded and {posted} funded; ledger schema {run_id}")


def ui_spec(port: int) -> Any:
    from sampan.tools.venue import ProcessSpec, sampan_command

    return ProcessSpec(
        "ui",
        sampan_command("ui", "--host", "127.0.0.1", "--port", str(port)),
        ready_port=port,
        ready_timeout_s=60.0,
    )


def create_users(env: dict[str, str]) -> None:
    """The demo users, through `sampan users add` (password on stdin)."""
    import subprocess

    from sampan.tools.venue import sampan_command

    for username, password, role, member in DEMO_USERS:
        argv = [*sampan_command("users", "add", username, "--role", role)]
        if member:
            argv += ["--member", member]
        done = subprocess.run(
            argv, input=password.encode(), env=env, capture_output=True, timeout=60
        )
        if done.returncode != 0:
            raise SampanError(
                f"could not create demo user {username}: {done.stderr.decode(errors='replace')}"
            )


def run_live_demo(args: argparse.Namespace) -> int:
    from confluent_kafka import Producer

    from sampan.tools.venue import Supervisor, VenueOptions, VenuePorts, venue_specs

    base = settings()
    if not os.environ.get("SAMPAN_KAFKA_BOOTSTRAP") and not stack.is_up(base):
        for line in stack.up(base):
            print(f"stack: {line}")
    run_id = f"live{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "SAMPAN_TOPIC_PREFIX": f"{run_id}.",
        "SAMPAN_LEDGER_SCHEMA": run_id,
        "SAMPAN_UI_SCHEMA": f"{run_id}_ui",  # the demo users of this run
    }
    os.environ.update(env)  # this process writes the same topics and schema as its children
    current = settings()
    seed_venue(current, run_id)
    state_dir = current.state_dir / "demo" / run_id
    ports = VenuePorts.free()
    options = VenueOptions(state_dir, run_id, market_rate=args.hkex_rate, with_relay=True)
    specs = [
        # On a busy machine a Python process can take a while to log on: wait longer than
        # the tests do, still bounded.
        replace(spec, ready_timeout_s=max(spec.ready_timeout_s, READY_TIMEOUT_S))
        for spec in (*venue_specs(ports, options), ui_spec(args.port))
    ]
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    flow = MemberFlow(SIM_SEEDS, listings(), FlowConfig(seed=args.seed), run_id)
    producer = Producer(profiles.producer(current, linger_ms=5))
    topic = current.topic("orders.requests")
    try:
        with Supervisor(state_dir / "logs", env) as venue:
            print("starting hkex-sim")
            venue.start(specs[:1], progress=True)
            print("starting " + ", ".join(s.name for s in specs[1:]))
            venue.start(specs[1:], progress=True)
            create_users(env)
            print(f"\nsampan is live: http://127.0.0.1:{args.port}/")
            for username, password, role, member in DEMO_USERS:
                scope = f"member {member}'s accounts" if member else "every account"
                print(f"  {username:<8} / {password:<14} {role:<8} ({scope})")
            print(f"logs in {state_dir / 'logs'}; Ctrl-C stops everything\n")
            last_check = last_status = time.monotonic()
            for now in _ticks(args.rate, args.duration):
                for record in flow.step(time.time_ns()):
                    value = registry().encode("OrderCommand", record)
                    producer.produce(topic, value, record["account"].encode())
                producer.poll(0)
                if now - last_check >= 1.0:
                    last_check = now
                    venue.restart_dead(RESTARTS_MAX, lambda line: print(f"supervisor: {line}"))
                if now - last_status >= STATUS_EVERY_S:
                    last_status = now
                    print(f"{flow.sent} simulated orders sent; {len(venue.processes)} processes up")
            print(f"--duration {args.duration:.0f} s reached")
    except (KeyboardInterrupt, _Stop):
        print("\nstopping the venue")
    finally:
        signal.signal(signal.SIGTERM, previous)
        producer.flush(FLUSH_TIMEOUT_S)
    print(f"stopped; {flow.sent} simulated orders were sent")
    return 0


def register_live(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--port", type=int, default=UI_PORT_DEFAULT, help="the screen's port (default 8080)"
    )
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    parser.add_argument(
        "--rate",
        type=float,
        default=RATE_DEFAULT,
        help="simulated members' orders per second (default 4)",
    )
    parser.add_argument(
        "--hkex-rate",
        type=int,
        default=HKEX_RATE_DEFAULT,
        help="the simulated HKEX's synthetic actions per second (default 20)",
    )
    parser.add_argument("--seed", type=int, default=7, help="the simulated members' seed")
