"""matcher: the internal venue, an exactly-once Kafka agent around the pure matching engine.

It reads `orders.internal` (risk-approved commands, keyed by security), runs one
`sampan.matching.Engine` per security (`mapping`: records to typed commands and events back to
records), and writes `orders.events`, `fills`, `md.depth`, `md.trades` and `matcher.snapshots`
in one transaction with its input offsets (`agent`, on `sampan.streams`). `verify` replays the
input and compares with what was committed.
"""
