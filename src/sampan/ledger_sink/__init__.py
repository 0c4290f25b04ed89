"""ledger_sink: the double-entry ledger in PostgreSQL, fed exactly once from `fills`.

Place in the flow: `fills → ledger_sink → PostgreSQL (double-entry) → ledger.balances`.

`rules` (posting rules) and `positions` / `snapshot` (average cost, live balances) are pure;
`store` writes one batch in one database transaction together with the Kafka offsets; `sink`
is the consumer loop around it; `limits` follows `reference.accounts` into the accounts table
(in the sink's process); `cash` (pure) and `movements` post deposits and withdrawals;
`audit` verifies and rebuilds the ledger; `bench` measures it.
The journal is stored compactly (a transfer is (fill_id, leg) plus accounts, asset, amount);
the `journal` view shows it with readable ids, `<fill ref>:leg_name`, where a fill's ref is
`INTERNAL:<exec_id>` or `HKEX:<YYYY-MM-DD>:<exec_id>` (rules.py).
"""
