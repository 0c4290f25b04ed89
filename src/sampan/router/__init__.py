"""The router: pre-trade risk, routing to the internal book or HKEX, parent/child orders.

Place in the flow: `orders.requests` → router → `orders.internal` (the matcher) or the OCG-C
session (the simulated HKEX); the router's reports and HKEX fills go to `orders.events` and
`fills`. `risk`, `ids`, `orders` and `core` are pure; `fixlink`, `state_topic`, `tables` and
`service` do the I/O.
"""
