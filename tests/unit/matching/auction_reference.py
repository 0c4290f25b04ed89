"""A naive reference auction: the IEP rules and the uncross written the slow, obvious way.

Every candidate price is tried against every order; each rule of the IEP filters the list of
candidates in turn and says which rule decided. The uncross sorts each side by (at-auction
first, price, time) and pairs them off. Tests demand the engine agree with it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sampan.matching import Side


@dataclass
class AuctionOrder:
    order_id: int
    side: Side
    price_e3: int  # 0 for an at-auction order
    leaves: int
    arrival: int  # time priority: smaller is earlier


@dataclass
class Result:
    price_e3: int
    qty: int
    rule: int  # the rule that decided (1 volume, 2 imbalance, 3 reference, 4 higher)


def _matchable(orders: list[AuctionOrder], price: int) -> tuple[int, int]:
    demand = sum(
        o.leaves for o in orders if o.side is Side.BUY and (o.price_e3 == 0 or o.price_e3 >= price)
    )
    supply = sum(
        o.leaves for o in orders if o.side is Side.SELL and (o.price_e3 == 0 or o.price_e3 <= price)
    )
    return demand, supply


def reference_iep(orders: list[AuctionOrder], reference_e3: int) -> Result | None:
    candidates = sorted({o.price_e3 for o in orders if o.price_e3})
    volume = {p: min(_matchable(orders, p)) for p in candidates}
    if not candidates or max(volume.values()) == 0:
        return None
    top = max(volume.values())
    left = [p for p in candidates if volume[p] == top]
    if len(left) == 1:
        return Result(left[0], top, 1)
    imbalance = {p: abs(_matchable(orders, p)[0] - _matchable(orders, p)[1]) for p in left}
    least = min(imbalance.values())
    left = [p for p in left if imbalance[p] == least]
    if len(left) == 1:
        return Result(left[0], top, 2)
    if reference_e3:
        nearest = min(abs(p - reference_e3) for p in left)
        left = [p for p in left if abs(p - reference_e3) == nearest]
        if len(left) == 1:
            return Result(left[0], top, 3)
    return Result(max(left), top, 4)


def reference_uncross(orders: list[AuctionOrder], price: int) -> list[tuple[int, int, int]]:
    """(buy order id, sell order id, qty) of each trade, in order."""
    buys = sorted(
        (o for o in orders if o.side is Side.BUY and (o.price_e3 == 0 or o.price_e3 >= price)),
        key=lambda o: (o.price_e3 != 0, -o.price_e3, o.arrival),
    )
    sells = sorted(
        (o for o in orders if o.side is Side.SELL and (o.price_e3 == 0 or o.price_e3 <= price)),
        key=lambda o: (o.price_e3 != 0, o.price_e3, o.arrival),
    )
    left = {o.order_id: o.leaves for o in buys + sells}
    trades = []
    i = j = 0
    while i < len(buys) and j < len(sells):
        b, s = buys[i], sells[j]
        qty = min(left[b.order_id], left[s.order_id])
        trades.append((b.order_id, s.order_id, qty))
        left[b.order_id] -= qty
        left[s.order_id] -= qty
        if left[b.order_id] == 0:
            i += 1
        if left[s.order_id] == 0:
            j += 1
    return trades
