"""Live risk: every account marked to market on every price move of either venue.

Place in the flow: `reference.accounts`, `ledger.balances`, `fills`, `md.trades` (both venues),
`risk.controls` → risk → `risk.marks` (compacted, per account), `risk.alerts`, `risk.controls`
(a breach blocks the account) and `orders.requests` (a MASS_CANCEL of the orders that add risk).
The router reads `risk.controls` and refuses orders that add risk for a blocked account with
`CUT_LOSS_BREACHED`; `sampan risk enable <account>` re-enables it.

`book` is the pure core (no I/O, no clock); `records` maps it to Avro records; `service` is the
Kafka loop around it; `cli` the commands.
"""
