"""ui_bridge: the trader's screen. `sampan ui` serves the page, a REST API and one WebSocket per
browser; `sampan users` manages the people who may log in.

Place in the flow: it reads `ledger.balances`, `md.depth`, `md.trades`, `md.stats`,
`orders.events`, `reference.*`, `recon.breaks` and `surveillance.alerts`, rebuilding its state
from them before it accepts clients, and fans them out to the clients each user may see; it writes only
`orders.requests` (keyed by account) and `reference.accounts` (risk officers' limits). Users,
sessions revoked by logout, and the access audit trail live in PostgreSQL in the schema
`SAMPAN_UI_SCHEMA` (default `ui`). Pre-trade risk stays in the router: the screen shows its
verdict. Imports shared packages only, never another process package.
"""
