"""Downstream analytics: session statistics and movers of both venues, on faust-streaming.

Place in the flow: `md.trades`, `reference.instruments` → analytics → `md.stats` (internal
venue), `md.movers`. `stats`, `movers` and `day` are pure; `app` and `cli` do the I/O.
"""
