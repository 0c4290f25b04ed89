"""What the fault test checks once the venue is quiet. Each check returns its problems (empty
when it holds), so one run reports every check that failed, not only the first.

Orders are read from `orders.events` as a member sees them. A leaf order is one order at one
venue (`venue`, `order_id`): an internal order (amends keep its order id), an HKEX order, or a
SMART parent's internal or HKEX child. A SMART parent is the router's order `P...`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from fault_stream import Expect, Item

TERMINAL = frozenset({"FILLED", "CANCELED", "REJECTED", "EXPIRED"})
NS_PER_DAY = 86_400 * 10**9
HKT_NS = 8 * 3_600 * 10**9
PROBLEMS_SHOWN = 8


def fill_identity(fill: Mapping[str, Any]) -> tuple[str, int, str]:
    """(venue, Hong Kong day number or 0, exec id): HKEX ExecIDs are unique within a day."""
    day = (fill["ts_ns"] + HKT_NS) // NS_PER_DAY if fill["venue"] == "HKEX" else 0
    return fill["venue"], day, fill["exec_id"]


def _leaf_key(r: Mapping[str, Any]) -> tuple[str, str, str]:
    # A SMART parent's reports name the venue its current child is at: the parent is one order.
    return r["account"], "SMART" if is_parent(r) else r["venue"], r["order_id"]


def is_parent(r: Mapping[str, Any]) -> bool:
    return r["order_id"].startswith("P")


def group_orders(reports: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str, str], list[Any]]:
    """Reports of each order that has a venue order id, in topic order (per account)."""
    orders: dict[tuple[str, str, str], list[Any]] = defaultdict(list)
    for r in reports:
        if r["order_id"] and r["exec_type"] != "CANCEL_REJECTED":
            orders[_leaf_key(r)].append(r)
    return orders


def check_final_states(
    reports: list[Mapping[str, Any]], fills: list[Mapping[str, Any]]
) -> list[str]:
    """Every order ended (FILLED, CANCELED, REJECTED, EXPIRED), with nothing left open, and its
    filled quantity equal to its trades and to its fills."""
    problems: list[str] = []
    fill_qty: Counter[tuple[str, str, str]] = Counter()
    for f in fills:
        fill_qty[(f["buy_account"], f["venue"], f["buy_order_id"])] += f["qty"]
        fill_qty[(f["sell_account"], f["venue"], f["sell_order_id"])] += f["qty"]
    for key, rs in group_orders(reports).items():
        last = rs[-1]
        traded = sum(r["last_qty"] for r in rs if r["exec_type"] == "TRADE")
        where = f"{key[0]} {key[1]} order {key[2]} ({last['cl_ord_id'][:40]})"
        if last["ord_status"] not in TERMINAL:
            problems.append(f"{where} ended {last['ord_status']} (leaves {last['leaves_qty']})")
            continue
        if last["leaves_qty"] != 0:
            problems.append(f"{where} is {last['ord_status']} with leaves_qty {last['leaves_qty']}")
        if last["cum_qty"] != traded:
            problems.append(f"{where}: cum_qty {last['cum_qty']} but its trades sum to {traded}")
        if (last["ord_status"] == "FILLED") != (last["cum_qty"] == last["order_qty"] > 0):
            problems.append(
                f"{where} is {last['ord_status']} at {last['cum_qty']}/{last['order_qty']}"
            )
        if not is_parent(last) and fill_qty[key] != last["cum_qty"]:
            problems.append(
                f"{where}: cum_qty {last['cum_qty']} but its fills sum to {fill_qty[key]}"
            )
    return problems


def check_answers(
    items: list[Item], reports: list[Mapping[str, Any]]
) -> tuple[list[str], list[str]]:
    """Every order and request of the stream was answered under its own ClOrdID; those built
    to be refused were refused with a reason. (An oversized record: see check_dead_letters.)
    Returns (problems, unanswered cancels, amends and mass cancels) apart, each a check of
    its own."""
    problems: list[str] = []
    request_problems: list[str] = []
    by_cl: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for r in reports:
        by_cl[(r["account"], r["cl_ord_id"])].append(r)
    for item in items:
        c = item.command
        if c is None or item.expect is Expect.REFUSED_OR_DEAD:
            continue
        mine = by_cl.get((c["account"], c["cl_ord_id"]), [])
        if c["kind"] == "MASS_CANCEL":
            prefix = c["cl_ord_id"] + "."
            mine = mine or [
                r
                for (a, cl), rs in by_cl.items()
                if a == c["account"] and cl.startswith(prefix)
                for r in rs
            ]
        what = f"item {item.n} ({item.what}, {c['kind']} {c['cl_ord_id']})"
        if not mine:
            request = c["kind"] in ("CANCEL", "AMEND", "MASS_CANCEL")
            (request_problems if request else problems).append(
                f"{what} got no answer on orders.events"
            )
        elif item.expect is Expect.REFUSED:
            first = mine[0]
            if (
                first["exec_type"] not in ("REJECTED", "CANCEL_REJECTED")
                or not first["reject_reason"]
            ):
                problems.append(
                    f"{what} was built to be refused but got {first['exec_type']} "
                    f"{first['ord_status']} ({first['reject_reason']})"
                )
    return problems, request_problems


def check_fills(
    fills: list[Mapping[str, Any]],
    reports: list[Mapping[str, Any]],
    dropcopy: list[Mapping[str, Any]],
) -> list[str]:
    """No fill repeated; each member side of each fill has exactly one trade report at its
    venue and each trade report a fill (none lost); HKEX's drop copy and the fills agree."""
    problems: list[str] = []
    ids = Counter(fill_identity(f) for f in fills)
    problems += [f"fill {k} appears {n} times" for k, n in ids.items() if n > 1]
    expected: Counter[tuple[Any, ...]] = Counter()
    for f in fills:
        venue, exec_id = f["venue"], f["exec_id"]
        if f["buy_member"] != "HKEX":
            expected[(venue, exec_id, f["buy_account"], "BUY", f["price_e3"], f["qty"])] += 1
        if f["sell_member"] != "HKEX":
            expected[(venue, exec_id, f["sell_account"], "SELL", f["price_e3"], f["qty"])] += 1
    seen: Counter[tuple[Any, ...]] = Counter()
    for r in reports:
        if r["exec_type"] == "TRADE" and not is_parent(r):
            side = "BUY" if r["side"] == "BUY" else "SELL"
            seen[
                (r["venue"], r["exec_id"], r["account"], side, r["last_px_e3"], r["last_qty"])
            ] += 1
    for key in expected - seen:
        problems.append(f"fill side {key} has no trade report")
    for key in seen - expected:
        problems.append(f"trade report {key} has no fill (or more reports than fills)")
    hkex_fills = {f["exec_id"] for f in fills if f["venue"] == "HKEX"}
    dc_trades = {d["exec_id"] for d in dropcopy if d["exec_type"] == "F"}
    problems += [
        f"HKEX execution {e} on drop copy has no fill" for e in sorted(dc_trades - hkex_fills)
    ]
    problems += [f"HKEX fill {e} is not on drop copy" for e in sorted(hkex_fills - dc_trades)]
    return problems


def check_cash(
    ledger_cash: Mapping[str, int],
    ledger_shares: Mapping[tuple[str, int], int],
    recomputed_cash: Mapping[str, int],
    recomputed_shares: Mapping[tuple[str, int], int],
    accounts: Iterable[str],
) -> list[str]:
    problems: list[str] = []
    for account in accounts:
        got, want = ledger_cash.get(account, 0), recomputed_cash.get(account, 0)
        if got != want:
            problems.append(f"{account}: ledger cash {got} cents, recomputed from fills {want}")
    for key in sorted(set(ledger_shares) | set(recomputed_shares)):
        if key[0] not in accounts:
            continue
        got, want = ledger_shares.get(key, 0), recomputed_shares.get(key, 0)
        if got != want:
            problems.append(f"{key}: ledger holds {got} shares, recomputed from fills {want}")
    return problems


def check_limits(
    cash: Mapping[str, int],
    shares: Mapping[tuple[str, int], int],
    limits: Mapping[str, tuple[int, bool]],
) -> list[str]:
    """No account below zero beyond its credit line; none short unless it may short."""
    problems: list[str] = []
    for account, (credit_line_cents, may_short) in limits.items():
        if cash.get(account, 0) < -credit_line_cents:
            problems.append(
                f"{account}: cash {cash.get(account, 0)} cents is beyond its credit line "
                f"{credit_line_cents}"
            )
        if not may_short:
            for (owner, security), qty in shares.items():
                if owner == account and qty < 0:
                    problems.append(f"{account} is short {-qty} of {security} and may not short")
    return problems


def check_dead_letters(
    items: list[Item], letters: list[Mapping[str, Any]], refused: set[int]
) -> list[str]:
    """Dead-letter topics hold exactly the malformed records sent (each at least once), and
    an oversized record was either refused (`refused`: item numbers) or dead-lettered."""
    problems: list[str] = []
    sent = {
        (i.topic, i.partition, i.offset): i
        for i in items
        if i.expect in (Expect.DEAD_LETTER, Expect.REFUSED_OR_DEAD)
    }
    got: set[tuple[str, int, int]] = set()
    for d in letters:
        where = (d["source_topic"], d["source_partition"], d["source_offset"])
        item = sent.get(where)
        if item is None:
            problems.append(
                f"dead letter of {where} by {d['agent']} is not a malformed record sent: {d['error'][:200]}"
            )
            continue
        if d["value"] != item.sent_value:
            problems.append(f"dead letter of {where} does not carry the bytes sent")
        got.add(where)
    for where, item in sent.items():
        if item.expect is Expect.DEAD_LETTER and where not in got:
            problems.append(f"malformed record {where} ({item.what}) was not dead-lettered")
        if item.expect is Expect.REFUSED_OR_DEAD and where not in got and item.n not in refused:
            problems.append(
                f"oversized record {where} ({item.what}) was neither refused nor dead-lettered"
            )
    return problems


def show(problems: list[str]) -> str:
    head = problems[:PROBLEMS_SHOWN]
    more = f"\n  ... and {len(problems) - len(head)} more" if len(problems) > len(head) else ""
    return "".join(f"\n  {p}" for p in head) + more
