"""The fault test's seeded order stream: a pure function of its seed (the send times aside).

A mix of internal limit and IOC orders, cancels, amends, mass cancels, HKEX and SMART orders
(some priced through HKEX's best price or on a security HKEX does not list, so HKEX rejects
them), orders built to be refused by pre-trade risk, malformed records (no Avro framing, a
wrong schema fingerprint, a truncated body) and schema-valid records with oversized fields.

Every item says what the venue must do with it: `Expect.ANSWER` (an order or request the venue
must answer and bring to a final state), `Expect.REFUSED` (a reject with a reason),
`Expect.DEAD_LETTER` (the record, and only it, on a dead-letter topic) or `Expect.REFUSED_OR_DEAD`
(an oversized field: refused with a reason or dead-lettered, never lost, never fatal).
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field
from typing import Any

from sampan.tools.seed import AccountSeed

# Prices are HK$0.001; each security's tick is the one of its price band (Part A table), and
# the prices used here stay within ten ticks of the previous close, inside that band.
SECURITIES: dict[int, tuple[int, int, int]] = {  # security -> (board lot, prev close, tick)
    700: (100, 512_000, 500),
    388: (100, 376_400, 200),
    5: (400, 98_550, 50),
}
INTERNAL_ONLY = 939  # listed on the internal venue, not on the simulated HKEX
INTERNAL_ONLY_SPEC = (1000, 7_540, 10)
UNKNOWN_SECURITY = 4242

# F1 is tight (HK$2m, no credit line) and buys a lot, so buying power binds on it; F2 and F3
# may sell short and provide the internal liquidity; F4 may not short; F5 shares member M1
# with F1, so self-trade prevention acts between them. FX is disabled.
ACCOUNTS: tuple[AccountSeed, ...] = (
    AccountSeed("F1", "M1", 2_000_000_00, 0, 0, 1_000_000_00),
    AccountSeed("F2", "M2", 50_000_000_00, 5_000_000_00, 0, 5_000_000_00, allow_short=True),
    AccountSeed("F3", "M3", 20_000_000_00, 2_000_000_00, 0, 5_000_000_00, allow_short=True),
    AccountSeed("F4", "M4", 10_000_000_00, 0, 0, 2_000_000_00),
    AccountSeed("F5", "M1", 5_000_000_00, 500_000_00, 0, 2_000_000_00),
)
DISABLED = AccountSeed("FX", "M9", 1_000_000_00, 0, 0, 1_000_000_00)
BUYERS_WEIGHT = {"F1": 4, "F2": 2, "F3": 2, "F4": 2, "F5": 2}
SHORT_SELLERS = ("F2", "F3")
OVERSIZED_CHARS = 400_000  # one field of a schema-valid record (the broker takes 1 MB)
YEAR_1823_NS = -4_670_000_000 * 10**9  # a timestamp in 1823


class Expect(enum.Enum):
    ANSWER = "answer"
    REFUSED = "refused"
    DEAD_LETTER = "dead_letter"
    REFUSED_OR_DEAD = "refused_or_dead"


@dataclass(slots=True)
class Item:
    """One record to send: to `topic` with `key`; `command` (an OrderCommand, `ts_ns` set at
    sending unless `fixed_ts`) or raw `payload` bytes."""

    n: int
    topic: str
    key: str
    expect: Expect
    what: str
    command: dict[str, Any] | None = None
    payload: bytes | None = None
    fixed_ts: bool = False
    # Filled in when sent: the record's partition and offset on its topic.
    partition: int = -1
    offset: int = -1
    sent_value: bytes = field(default=b"", repr=False)
    sent_ns: int = 0


def _command(kind: str, account: str, member: str, security: int, cl: str) -> dict[str, Any]:
    return {
        "command_id": f"c-{cl}",
        "kind": kind,
        "account": account,
        "member": member,
        "security": security,
        "cl_ord_id": cl,
        "orig_cl_ord_id": None,
        "side": "BUY",
        "ord_type": "LIMIT",
        "time_in_force": "DAY",
        "price_e3": 0,
        "qty": 0,
        "route": "INTERNAL",
        "batch_id": None,
        "parent_id": None,
        "user": "fault",
        "ts_ns": 0,
        "stp": None,
    }


class StreamBuilder:
    def __init__(self, seed: int, run: str) -> None:
        self.rng = random.Random(seed)
        self.run = run
        self.items: list[Item] = []
        self.members = {a.account: a.member for a in ACCOUNTS}
        self.sent_new: dict[str, list[tuple[str, str]]] = {a.account: [] for a in ACCOUNTS}
        self.security_of: dict[str, int] = {}

    def _cl(self) -> str:
        return f"{self.run}-{len(self.items)}"

    def _add(self, item: Item) -> None:
        self.items.append(item)

    def _price(self, security: int, side: str, ticks_min: int, ticks_max: int) -> int:
        """A price `ticks` from the previous close: below it for a buy at positive ticks
        (passive), above it for a sell; negative ticks are aggressive."""
        _, close, tick = SECURITIES.get(security) or INTERNAL_ONLY_SPEC
        ticks = self.rng.randint(ticks_min, ticks_max)
        return close - ticks * tick if side == "BUY" else close + ticks * tick

    def _new(self, route: str, tif: str, account: str | None = None) -> dict[str, Any]:
        rng = self.rng
        if account is None:
            names = list(BUYERS_WEIGHT)
            account = rng.choices(names, [BUYERS_WEIGHT[a] for a in names])[0]
        security = rng.choice(list(SECURITIES))
        if account in SHORT_SELLERS and rng.random() < 0.6:
            side = "SELL_SHORT"
        elif account == "F1":
            side = "BUY" if rng.random() < 0.85 else "SELL"
        else:
            side = rng.choice(("BUY", "SELL"))
        c = _command("NEW", account, self.members[account], security, self._cl())
        lot = SECURITIES[security][0]
        c.update(side=side, route=route, time_in_force=tif, qty=lot * rng.randint(1, 5))
        c["price_e3"] = self._price(security, "BUY" if side == "BUY" else "SELL", -4, 3)
        return c

    def add_order(self, c: dict[str, Any], what: str) -> None:
        self.sent_new[c["account"]].append((c["cl_ord_id"], c["route"]))
        self.security_of[c["cl_ord_id"]] = c["security"]
        self._add(Item(len(self.items), "orders.requests", c["account"], Expect.ANSWER, what, c))

    def internal(self) -> None:
        tif = "IOC" if self.rng.random() < 0.25 else "DAY"
        self.add_order(self._new("INTERNAL", tif), f"internal {tif}")

    def hkex(self) -> None:
        c = self._new("HKEX", "IOC" if self.rng.random() < 0.2 else "DAY")
        buy = c["side"] == "BUY"
        roll = self.rng.random()
        if roll < 0.2:  # priced ten or more ticks through the touch: HKEX refuses it
            c["price_e3"] = self._price(c["security"], "BUY" if buy else "SELL", -14, -10)
            what = "HKEX through the touch"
        elif roll < 0.3:
            c.update(security=INTERNAL_ONLY, price_e3=INTERNAL_ONLY_SPEC[1])
            c["qty"] = INTERNAL_ONLY_SPEC[0]
            what = "HKEX on a security HKEX does not list"
        else:
            what = "HKEX limit"
        self.add_order(c, what)

    def smart(self) -> None:
        c = self._new("SMART", "DAY")
        if self.rng.random() < 0.3:
            side = "BUY" if c["side"] == "BUY" else "SELL"
            c["price_e3"] = self._price(c["security"], side, -14, -10)
            what = "SMART through HKEX's touch"
        else:
            what = "SMART"
        self.add_order(c, what)

    def _target(self, account: str, internal_only: bool) -> str | None:
        sent = [
            cl for cl, route in self.sent_new[account] if route == "INTERNAL" or not internal_only
        ]
        return self.rng.choice(sent[-30:]) if sent else None

    def cancel(self) -> None:
        account = self.rng.choice(list(BUYERS_WEIGHT))
        target = self._target(account, False)
        if target is None:
            return
        security = self.security_of[target]
        c = _command("CANCEL", account, self.members[account], security, self._cl())
        c["orig_cl_ord_id"] = target
        self._add(Item(len(self.items), "orders.requests", account, Expect.ANSWER, "cancel", c))

    def amend(self) -> None:
        account = self.rng.choice(list(BUYERS_WEIGHT))
        target = self._target(account, True)
        if target is None:
            return
        security = self.security_of[target]
        c = _command("AMEND", account, self.members[account], security, self._cl())
        lot, _, _ = SECURITIES.get(security) or INTERNAL_ONLY_SPEC
        c.update(orig_cl_ord_id=target, qty=lot * self.rng.randint(1, 6))
        c["price_e3"] = self._price(security, "BUY", -1, 4)
        self._add(Item(len(self.items), "orders.requests", account, Expect.ANSWER, "amend", c))

    def mass_cancel(self) -> None:
        account = self.rng.choice(list(BUYERS_WEIGHT))
        security = self.rng.choice([0, *SECURITIES])
        c = _command("MASS_CANCEL", account, self.members[account], security, self._cl())
        self._add(Item(len(self.items), "orders.requests", account, Expect.ANSWER, "mass", c))

    def refused(self) -> None:
        """An order (or request) pre-trade risk or the router must refuse."""
        rng = self.rng
        c = self._new(rng.choice(("INTERNAL", "HKEX", "SMART")), "DAY", "F4")
        lot, close, tick = SECURITIES[c["security"]]
        kind = rng.randrange(12)
        if kind == 0:
            c["price_e3"] += tick // 2 or 1
            what = "off tick"
        elif kind == 1:
            c["qty"] = lot * 2 + lot // 2
            what = "not a board lot"
        elif kind == 2:
            c["price_e3"] = close * 13 // 10 // tick * tick
            c["side"] = "BUY"
            what = "outside the price collar"
        elif kind == 3:
            c["qty"] = lot * (2_000_000_00 * 10 // (close * lot) + 2)
            c["side"] = "BUY"
            what = "over the fat-finger limit"
        elif kind == 4:
            c["account"] = "NOSUCH"
            what = "unknown account"
        elif kind == 5:
            c["account"], c["member"] = DISABLED.account, DISABLED.member
            what = "disabled account"
        elif kind == 6:
            c["member"] = "M3"
            what = "member does not own the account"
        elif kind == 7:
            c["security"] = UNKNOWN_SECURITY
            what = "unknown security"
        elif kind == 8:
            c["side"] = "SELL_SHORT"
            what = "short sale by an account that may not short"
        elif kind == 9:
            c["qty"] = 0
            what = "zero quantity"
        elif kind == 10:
            c["ts_ns"] = YEAR_1823_NS
            what = "stamped in 1823"
            self._add(
                Item(
                    len(self.items),
                    "orders.requests",
                    c["account"],
                    Expect.REFUSED,
                    what,
                    c,
                    fixed_ts=True,
                )
            )
            return
        else:
            c = _command("CANCEL", "F4", "M4", 700, self._cl())
            c["orig_cl_ord_id"] = f"{self.run}-never-sent"
            what = "cancel of an order that does not exist"
        self._add(Item(len(self.items), "orders.requests", c["account"], Expect.REFUSED, what, c))

    def malformed(self) -> None:
        rng = self.rng
        kind = rng.randrange(3)
        if kind == 0:
            payload = bytes(rng.randrange(256) for _ in range(rng.randint(1, 60)))
            payload = b"\x00" + payload  # never the Avro single-object marker
            what = "bytes without Avro framing"
        elif kind == 1:
            payload = b"\xc3\x01" + bytes(rng.randrange(256) for _ in range(8)) + b"\x02\x04ab"
            what = "an unknown schema fingerprint"
        else:
            payload = b""  # replaced at send time by a valid record cut short
            what = "a truncated body"
        # On the venue's outside interface only: a foreign record on `fills` would rightly make
        # `matcher verify` find output the matcher never wrote.
        self._add(
            Item(
                len(self.items), "orders.requests", "F1", Expect.DEAD_LETTER, what, payload=payload
            )
        )

    def oversized(self) -> None:
        if self.rng.random() < 0.5:
            target = self._target("F3", False) or "none"
            c = _command("CANCEL", "F3", "M3", self.security_of.get(target, 700), self._cl())
            big = f"BIG{len(self.items)}-"
            c["command_id"] = (big + "c" * OVERSIZED_CHARS)[:OVERSIZED_CHARS]
            c["cl_ord_id"] = (big + "x" * OVERSIZED_CHARS)[:OVERSIZED_CHARS]
            c["orig_cl_ord_id"] = target
            what = "a cancel with 400 kB ids"
        else:
            c = self._new("INTERNAL", "DAY", "F3")
            c["user"] = "u" * OVERSIZED_CHARS
            what = "an order with a 400 kB user"
        self._add(
            Item(len(self.items), "orders.requests", c["account"], Expect.REFUSED_OR_DEAD, what, c)
        )


# Weights of each kind of item in the stream.
MIX = (
    ("internal", 40),
    ("hkex", 14),
    ("smart", 12),
    ("cancel", 12),
    ("amend", 7),
    ("mass_cancel", 2),
    ("refused", 9),
    ("malformed", 2),
    ("oversized", 1),
)


def build_stream(
    seed: int, count: int, run: str, without: frozenset[str] = frozenset()
) -> list[Item]:
    """`count` items (a cancel or amend with no earlier order is skipped); `without` names
    kinds of MIX left out."""
    builder = StreamBuilder(seed, run)
    names = [name for name, _ in MIX if name not in without]
    weights = [weight for name, weight in MIX if name not in without]
    while len(builder.items) < count:
        getattr(builder, builder.rng.choices(names, weights)[0])()
    return builder.items
