"""The screen's state, rebuilt from the topics: latest value per key, and today's orders. Pure.

`View.apply(topic, record)` folds one decoded record in and returns the WebSocket messages it
causes (`Update`s, each naming who may receive it). Nothing here does I/O; the Kafka follower
feeds it, the REST handlers read it.

Guarantees: compacted topics keep the latest record per key (instruments, accounts, balances,
depth, stats, movers, reconciliation breaks); an order is one row per member's client order id, its
figures from the latest report, its fills from the TRADE reports (de-duplicated by exec id, so
a replayed report changes nothing). A SMART order's child reports (those with a `parent_id`)
are left out: the parent's own reports carry the whole order, fills from both venues included.

Market figures are shown, never computed here: last prices come from `md.stats` (HKEX's from
omd-ingest, the internal venue's from the analytics app; a trade alone moves no figure), and
the movers are the analytics app's ranking on `md.movers` (one record per venue, today's only).
The change in basis points is last against the record's previous close, rounded half away from
zero as the analytics app rounds it, so a stats row and a movers row always agree.

Limits (all bounded): `ORDERS_PER_ACCOUNT_MAX` orders per account (the oldest go first),
`FILLS_PER_ORDER_MAX` fills kept per order row, `BREAKS_MAX` reconciliation breaks,
`ALERTS_MAX` surveillance alerts (latest per alert id: an alert raised again replaces itself).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

ORDERS_PER_ACCOUNT_MAX = 20_000
FILLS_PER_ORDER_MAX = 1_000
BREAKS_MAX = 100_000
ALERTS_MAX = 10_000
MOVERS_VENUES = ("HKEX", "INTERNAL")  # the movers panel shows the first venue that has any
HK_OFFSET = timedelta(hours=8)
OPEN_STATUSES = frozenset({"NEW", "PARTIALLY_FILLED"})
_ORDER_ADDRESSED = frozenset({"CANCELED", "REPLACED", "CANCEL_REJECTED"})


@dataclass(frozen=True, slots=True)
class Update:
    """A message to fan out: to the subscribers of a depth book, of an account, or of the market."""

    channel: str  # "depth" | "account" | "market"
    key: Any  # (venue, security) | account | None
    message: dict[str, Any]


@dataclass
class OrderRow:
    cl_ord_id: str
    order_id: str
    account: str
    security: int
    side: str
    route: str | None
    price_e3: int
    order_qty: int
    cum_qty: int = 0
    leaves_qty: int = 0
    cum_notional_e3: int = 0
    status: str = "NEW"
    reject_reason: str | None = None
    text: str | None = None
    batch_id: str | None = None
    ts_ns: int = 0
    fills: list[dict[str, Any]] = field(default_factory=list)
    # The venue knows an amended order by the amend's ClOrdID (FIX): a later cancel or amend
    # names this one as its OrigClOrdID. None: the order was never amended.
    latest_cl_ord_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "cl_ord_id": self.cl_ord_id,
            "order_id": self.order_id,
            "account": self.account,
            "security": self.security,
            "side": self.side,
            "route": self.route,
            "price_e3": self.price_e3,
            "order_qty": self.order_qty,
            "cum_qty": self.cum_qty,
            "leaves_qty": self.leaves_qty,
            # Integer HK$0.001 average, rounded down; the exact figure is notional / cum_qty.
            "avg_px_e3": self.cum_notional_e3 // self.cum_qty if self.cum_qty else 0,
            "cum_notional_e3": self.cum_notional_e3,
            "status": self.status,
            "reject_reason": self.reject_reason,
            "text": self.text,
            "batch_id": self.batch_id,
            # The id the venue knows the order by now (an amend's, as FIX).
            "live_cl_ord_id": self.latest_cl_ord_id or self.cl_ord_id,
            "ts_ns": self.ts_ns,
            "fills": list(self.fills),
        }


@dataclass
class View:
    instruments: dict[int, dict[str, Any]] = field(default_factory=dict)
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Live risk's marked-to-market figures per account (risk.marks), and its blocks.
    marks: dict[str, dict[str, Any]] = field(default_factory=dict)
    controls: dict[str, dict[str, Any]] = field(default_factory=dict)
    depth: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    stats: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    movers_of: dict[str, dict[str, Any]] = field(default_factory=dict)  # venue → Movers record
    breaks: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict)
    alerts: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict)
    orders: dict[str, OrderedDict[str, OrderRow]] = field(default_factory=dict)
    # An amend's ClOrdID → the order's first one, per account (bounded like the rows), so the
    # order's later reports, which carry the amend's id, land on its row.
    aliases: dict[str, OrderedDict[str, str]] = field(default_factory=dict)
    # What this server sent, so the order log can show route and batch before the first report.
    sent: dict[tuple[str, str], tuple[str, str | None]] = field(default_factory=dict)
    day_start_ns: int = 0  # reports before this are not today's

    # ---- reads -----------------------------------------------------------------------------
    def enabled_securities(self) -> frozenset[int]:
        return frozenset(s for s, i in self.instruments.items() if i["enabled"])

    def members_by_account(self) -> dict[str, str]:
        return {a: r["member"] for a, r in self.accounts.items()}

    def member_of(self, account: str) -> str | None:
        record = self.accounts.get(account)
        return None if record is None else str(record["member"])

    def orders_of(self, account: str) -> list[dict[str, Any]]:
        return [row.as_json() for row in self.orders.get(account, {}).values()]

    def open_sell_qty(self, account: str) -> dict[int, int]:
        held: dict[int, int] = {}
        for row in self.orders.get(account, {}).values():
            if row.side != "BUY" and row.status in OPEN_STATUSES:
                held[row.security] = held.get(row.security, 0) + row.leaves_qty
        return held

    def inventory(self, account: str) -> list[dict[str, Any]]:
        """Per security: quantity, available (less open sells), average cost of today's buys
        (the ledger does not publish cost; null when no buy was filled today), value."""
        snapshot = self.snapshots.get(account)
        positions = snapshot["positions"] if snapshot else []
        selling = self.open_sell_qty(account)
        cost: dict[int, tuple[int, int]] = {}
        for row in self.orders.get(account, {}).values():
            if row.side == "BUY" and row.cum_qty:
                notional, qty = cost.get(row.security, (0, 0))
                cost[row.security] = (notional + row.cum_notional_e3, qty + row.cum_qty)
        out = []
        for p in positions:
            notional, qty = cost.get(p["security"], (0, 0))
            out.append(
                {
                    "security": p["security"],
                    "qty": p["qty"],
                    "available_qty": p["qty"] - selling.get(p["security"], 0),
                    "avg_cost_e3": notional // qty if qty else None,
                    "last_e3": p["last_e3"],
                    "value_cents": p["value_cents"],
                }
            )
        return out

    def market_stats(self) -> list[dict[str, Any]]:
        """Last price and change for every enabled security, from `md.stats` (HKEX's figures,
        else the internal venue's), in basis points against the record's previous close."""
        return [
            self._stats_row(security, instrument)
            for security, instrument in sorted(self.instruments.items())
            if instrument["enabled"]
        ]

    def _stats_row(self, security: int, instrument: dict[str, Any]) -> dict[str, Any]:
        prev = instrument["prev_close_e3"]
        last = None
        venue = None
        for v in ("HKEX", "INTERNAL"):
            stats = self.stats.get((v, security))
            if stats and stats.get("last_e3"):
                last, venue = stats["last_e3"], v
                prev = stats.get("prev_close_e3") or prev
                break
        return {
            "type": "stats",
            "security": security,
            "name": instrument["name"],
            "venue": venue,
            "last_e3": last,
            "prev_close_e3": prev,
            "change_bp": change_bp(last, prev),
        }

    def trading_day(self) -> str | None:
        """The Hong Kong date the view's day starts on (None: every day is taken)."""
        if not self.day_start_ns:
            return None
        start = datetime.fromtimestamp(self.day_start_ns / 1e9, UTC) + HK_OFFSET
        return start.date().isoformat()

    def movers(self) -> dict[str, Any]:
        """The `movers` message: each venue's ranking as the analytics app published it, and
        as `top` and `bottom` the first of `MOVERS_VENUES` that ranks anything."""
        venues = {venue: self._movers_rows(record) for venue, record in self.movers_of.items()}
        shown = next((v for v in MOVERS_VENUES if venues.get(v, {}).get("ranked")), None)
        chosen = venues.get(shown or "", {"top": [], "bottom": []})
        return {
            "type": "movers",
            "venue": shown,
            "top": chosen["top"],
            "bottom": chosen["bottom"],
            "venues": {
                v: {"top": rows["top"], "bottom": rows["bottom"]} for v, rows in venues.items()
            },
        }

    def _movers_rows(self, record: dict[str, Any]) -> dict[str, Any]:
        def row(mover: dict[str, Any]) -> dict[str, Any]:
            instrument = self.instruments.get(mover["security"])
            return {
                "type": "stats",
                "security": mover["security"],
                "name": None if instrument is None else instrument["name"],
                "venue": record["venue"],
                "last_e3": mover["last_e3"],
                "prev_close_e3": mover["prev_close_e3"],
                "change_bp": mover["change_bp"],
            }

        top = [row(m) for m in record["top"]]
        bottom = [row(m) for m in record["bottom"]]
        return {"top": top, "bottom": bottom, "ranked": bool(top or bottom)}

    # ---- writes ----------------------------------------------------------------------------
    def apply(self, topic: str, record: dict[str, Any]) -> list[Update]:
        handler = getattr(self, "_on_" + topic.replace(".", "_"), None)
        assert handler is not None, f"the view does not follow {topic}"
        result: list[Update] = handler(record)
        return result

    def _on_reference_instruments(self, r: dict[str, Any]) -> list[Update]:
        self.instruments[r["security"]] = r
        return []

    def _on_reference_accounts(self, r: dict[str, Any]) -> list[Update]:
        self.accounts[r["account"]] = r
        return [Update("account", r["account"], {"type": "limits", **r})]

    def _on_ledger_balances(self, r: dict[str, Any]) -> list[Update]:
        self.snapshots[r["account"]] = r
        return [
            Update("account", r["account"], {"type": "account", **r}),
            Update(
                "account",
                r["account"],
                {
                    "type": "inventory",
                    "account": r["account"],
                    "positions": self.inventory(r["account"]),
                },
            ),
        ]

    def _on_risk_marks(self, r: dict[str, Any]) -> list[Update]:
        self.marks[r["account"]] = r
        return [Update("account", r["account"], {"type": "mark", **r})]

    def _on_risk_controls(self, r: dict[str, Any]) -> list[Update]:
        self.controls[r["account"]] = r
        return [Update("account", r["account"], {"type": "control", **r})]

    def _on_md_depth(self, r: dict[str, Any]) -> list[Update]:
        key = (r["venue"], r["security"])
        self.depth[key] = r
        return [Update("depth", key, depth_message(r))]

    def _on_md_stats(self, r: dict[str, Any]) -> list[Update]:
        self.stats[(r["venue"], r["security"])] = r
        return [Update("market", None, {"type": "stats", **_stats_of(self, r["security"])})]

    def _on_md_trades(self, r: dict[str, Any]) -> list[Update]:
        return []

    def _on_md_movers(self, r: dict[str, Any]) -> list[Update]:
        day = self.trading_day()
        if day is not None and r["day"] != day:
            # Another day's ranking (yesterday's, kept by compaction) is not today's movers.
            if self.movers_of.get(r["venue"], {}).get("day") != day:
                self.movers_of.pop(r["venue"], None)
            return []
        self.movers_of[r["venue"]] = r
        return [Update("market", None, self.movers())]

    def _on_recon_breaks(self, r: dict[str, Any]) -> list[Update]:
        self.breaks.pop(r["exec_id"], None)
        self.breaks[r["exec_id"]] = r
        while len(self.breaks) > BREAKS_MAX:
            self.breaks.popitem(last=False)
        return [Update("recon", None, {"type": "recon_break", **r})]

    def _on_surveillance_alerts(self, r: dict[str, Any]) -> list[Update]:
        # Risk officers and auditors only: the recon channel is theirs.
        self.alerts.pop(r["alert_id"], None)
        self.alerts[r["alert_id"]] = r
        while len(self.alerts) > ALERTS_MAX:
            self.alerts.popitem(last=False)
        return [Update("recon", None, {"type": "surveillance_alert", **r})]

    def _on_orders_events(self, r: dict[str, Any]) -> list[Update]:
        if r["parent_id"] is not None or r["ts_ns"] < self.day_start_ns:
            return []
        account = r["account"]
        rows = self.orders.setdefault(account, OrderedDict())
        aliases = self.aliases.setdefault(account, OrderedDict())
        key = aliases.get(r["cl_ord_id"], r["cl_ord_id"])
        orig = aliases.get(r["orig_cl_ord_id"] or "", r["orig_cl_ord_id"])
        if r["exec_type"] in _ORDER_ADDRESSED and orig in rows:
            key = orig
        if r["exec_type"] == "REPLACED" and key != r["cl_ord_id"]:
            aliases[r["cl_ord_id"]] = key
            while len(aliases) > ORDERS_PER_ACCOUNT_MAX:
                aliases.popitem(last=False)
        row = rows.get(key)
        if row is None:
            route, batch_id = self.sent.pop((account, key), (None, None))
            row = OrderRow(
                cl_ord_id=key,
                order_id=r["order_id"],
                account=account,
                security=r["security"],
                side=r["side"],
                route=route,
                price_e3=r["price_e3"],
                order_qty=r["order_qty"],
                batch_id=batch_id,
                ts_ns=r["ts_ns"],
            )
            rows[key] = row
            while len(rows) > ORDERS_PER_ACCOUNT_MAX:
                rows.popitem(last=False)
        if r["exec_type"] == "REPLACED" and key != r["cl_ord_id"]:
            row.latest_cl_ord_id = r["cl_ord_id"]
        if r["exec_type"] == "CANCEL_REJECTED":
            row.text = r["text"] or r["reject_reason"]
        else:
            row.order_id = r["order_id"]
            row.price_e3 = r["price_e3"]
            row.order_qty = r["order_qty"]
            row.cum_qty = r["cum_qty"]
            row.leaves_qty = r["leaves_qty"]
            row.cum_notional_e3 = r["cum_notional_e3"]
            row.status = r["ord_status"]
            row.reject_reason = r["reject_reason"] or row.reject_reason
            row.text = r["text"] or row.text
        if (
            r["exec_type"] == "TRADE"
            and len(row.fills) < FILLS_PER_ORDER_MAX
            and all(f["exec_id"] != r["exec_id"] for f in row.fills)
        ):
            row.fills.append(
                {
                    "exec_id": r["exec_id"],
                    "venue": r["venue"],
                    "last_px_e3": r["last_px_e3"],
                    "last_qty": r["last_qty"],
                    "ts_ns": r["ts_ns"],
                }
            )
        updates = [Update("account", account, {"type": "exec", **r, "batch_id": row.batch_id})]
        if (
            r["exec_type"] in ("NEW", "TRADE", "CANCELED", "REPLACED", "EXPIRED")
            and row.side != "BUY"
        ):
            updates.append(
                Update(
                    "account",
                    account,
                    {"type": "inventory", "account": account, "positions": self.inventory(account)},
                )
            )
        return updates


def depth_message(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "depth",
        "venue": r["venue"],
        "security": r["security"],
        "bids": [_level(x) for x in r["bids"]],
        "asks": [_level(x) for x in r["asks"]],
        "seq": r["seq"],
        "ts_ns": r["ts_ns"],
    }


def _level(level: dict[str, Any]) -> dict[str, int]:
    return {"price_e3": level["price_e3"], "qty": level["qty"], "count": level["orders"]}


def change_bp(last_e3: int | None, prev_close_e3: int | None) -> int | None:
    """Last against the previous close in basis points, rounded half away from zero (as the
    analytics app's movers); None without a last price or a previous close."""
    if last_e3 is None or not prev_close_e3:
        return None
    quotient, remainder = divmod(abs(last_e3 - prev_close_e3) * 10_000, prev_close_e3)
    if 2 * remainder >= prev_close_e3:
        quotient += 1
    return quotient if last_e3 >= prev_close_e3 else -quotient


def _stats_of(view: View, security: int) -> dict[str, Any]:
    instrument = view.instruments.get(security)
    if instrument is None:
        return {"security": security}
    row = view._stats_row(security, instrument)
    return {k: v for k, v in row.items() if k != "type"}
