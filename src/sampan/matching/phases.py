"""What a book does when the venue enters a phase of the trading day, pure.

Guarantees (each book, in the engine's ascending security order, events appended to `out`):
- Pre-opening order input: the reference price is the previous close (the instrument's
  nominal price before a first close); orders are accepted within +/-15% of it.
- Either no-cancel period: the limits for new orders are recorded, buys at most the lowest
  ask and sells at least the highest bid of that moment (OMD-C Reference Price, 3.10.7).
- Leaving the pre-opening random matching: the book uncrosses at its IEP (no IEP, no trade);
  at-auction orders left over expire; at-auction limit orders left over become limit orders,
  unless priced 9 times or more (or a ninth or less) of the new nominal price, which expire.
- Reference price fixing: the closing auction's reference price is the last traded price
  (else the previous close) and orders are accepted within +/-5% of it. HKEX takes the median
  of five nominal prices sampled in the last minute; sampan takes the last traded price.
- Leaving the closing random close: the book uncrosses at its IEP, or when there is none, at
  the reference price (HKEX's rule for the closing auction); the closing price is the auction
  price, else the reference price. Closing (from either auction or continuous trading): every
  order left expires (all orders are day orders) and the day's close is fixed.
- Roll-over to the next day (NOT_YET_OPEN): the close becomes the previous close and the
  nominal price; the day's auction figures are cleared. From continuous trading (a venue that
  traded without a schedule joining one) the day is closed first, as at CLOSED.
"""

from __future__ import annotations

from sampan.market.sessions import Phase
from sampan.matching.auction import Equilibrium, at_price, band, equilibrium
from sampan.matching.book import OrderBook
from sampan.matching.model import AuctionUncrossed, Event, OrderType

POS_BAND_BPS = 1_500  # +/-15% of the previous close
CAS_BAND_BPS = 500  # +/-5% of the reference price


def indicative(book: OrderBook) -> Equilibrium | None:
    """The book's IEP, IEV and imbalance now (meaningful while orders accumulate)."""
    bids, asks, buy_qty, sell_qty = book.auction_book()
    return equilibrium(bids, asks, buy_qty, sell_qty, book.day.reference_e3)


def enter(book: OrderBook, old: Phase, new: Phase, ts_ns: int, out: list[Event]) -> None:
    day = book.day
    if book.vcm is not None and new is not Phase.CONTINUOUS:
        book.vcm.until_ns = 0  # a cooling-off ends with its session
        book.vcm.session_used = False  # and the next session may trigger once
    if new is Phase.POS_ORDER_INPUT:
        day.reference_e3 = day.prev_close_e3 or book.instrument.nominal_price_e3
        day.band_low_e3, day.band_high_e3 = band(book.table, day.reference_e3, POS_BAND_BPS)
    elif new is Phase.POS_NO_CANCEL or new is Phase.CAS_NO_CANCEL:
        day.nc_buy_max_e3 = book.asks.best_priced_e3()
        day.nc_sell_min_e3 = book.bids.best_priced_e3()
    elif new is Phase.BLOCKING:
        _uncross(book, indicative(book), ts_ns, out)
        _after_opening_auction(book, ts_ns, out)
        _clear_auction(book)
    elif new is Phase.CAS_REFERENCE_PRICE_FIXING:
        day.reference_e3 = book.last_px_e3 or day.prev_close_e3
        day.band_low_e3, day.band_high_e3 = band(book.table, day.reference_e3, CAS_BAND_BPS)
    elif new is Phase.CLOSED:
        if old is Phase.CAS_RANDOM_CLOSE:
            result = indicative(book)
            if result is None and day.reference_e3:
                bids, asks, buy_qty, sell_qty = book.auction_book()
                result = at_price(bids, asks, buy_qty, sell_qty, day.reference_e3)
            traded = _uncross(book, result, ts_ns, out)
            day.close_e3 = result.price_e3 if traded and result else day.reference_e3
        else:
            day.close_e3 = book.last_px_e3 or day.prev_close_e3
        for order in book.orders_by_priority():
            out.append(book.expire(order, ts_ns))
        _clear_auction(book)
    elif new is Phase.NOT_YET_OPEN:
        if old is Phase.CONTINUOUS:  # joining a schedule: the unscheduled day closes first
            enter(book, old, Phase.CLOSED, ts_ns, out)
        day.prev_close_e3 = day.close_e3 or day.prev_close_e3
        day.close_e3 = 0
        if day.prev_close_e3:
            book.last_px_e3 = day.prev_close_e3  # the new day's nominal price
        _clear_auction(book)


def _uncross(book: OrderBook, result: Equilibrium | None, ts_ns: int, out: list[Event]) -> int:
    traded = 0
    if result is not None and result.qty:
        traded = book.uncross(result.price_e3, ts_ns, out)
        assert traded == result.qty, f"uncross traded {traded}, the IEV is {result.qty}"
    price = result.price_e3 if traded and result is not None else 0
    out.append(AuctionUncrossed(ts_ns, book.security, price, traded))
    return traded


def _after_opening_auction(book: OrderBook, ts_ns: int, out: list[Event]) -> None:
    factor = book.rules.nominal_price_check_factor
    nominal = book.last_px_e3 or book.instrument.nominal_price_e3
    for order in book.orders_by_priority():
        if order.order_type is OrderType.AT_AUCTION:
            out.append(book.expire(order, ts_ns))
        elif order.order_type is OrderType.AT_AUCTION_LIMIT:
            price = order.price_e3
            if factor and nominal and (price >= nominal * factor or price * factor <= nominal):
                out.append(book.expire(order, ts_ns))
            else:
                order.order_type = OrderType.LIMIT


def _clear_auction(book: OrderBook) -> None:
    day = book.day
    day.reference_e3 = day.band_low_e3 = day.band_high_e3 = 0
    day.nc_buy_max_e3 = day.nc_sell_min_e3 = 0
