"""The parties every process names: the venues and the exchange's side of an HKEX trade.

Guarantees: one spelling of each. The router writes HKEX fills whose exchange side is
`EXCHANGE_MEMBER` / `EXCHANGE_ACCOUNT`; the ledger charges no fees to that side and
reconciliation reads an HKEX fill's own side as the one that is not the exchange's.
"""

from __future__ import annotations

import enum


class Venue(enum.StrEnum):
    """Where an order or a fill executed; the `venue` field of records."""

    INTERNAL = "INTERNAL"
    HKEX = "HKEX"


EXCHANGE_MEMBER = "HKEX"  # the member on the exchange side of an HKEX fill
EXCHANGE_ACCOUNT = "HKEX.CLEARING"  # the ledger's clearing account for the exchange side
HKEX_GATEWAY_COMP_ID = "HKEX"  # the simulated OCG-C gateway's CompID, for both sessions
# The user the live-risk process stamps on its cut-loss MASS_CANCEL: the router then cancels
# only the account's orders that add risk (buys and short sales), not its reducing sells.
RISK_AGENT_USER = "sampan-risk"
