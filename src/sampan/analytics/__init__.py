"""Downstream analytics: session statistics, movers and surveillance, on faust-streaming.

Place in the flow: `md.trades`, `reference.instruments` → analytics → `md.stats` (internal
venue), `md.movers`; `orders.events`, `fills`, `md.trades`, `md.depth` → analytics →
`surveillance.alerts`. `stats`, `movers` and the surveillance rules are pure; `app`, `cli` and
`surveillance.shell` do the I/O.
"""
