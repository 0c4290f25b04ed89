"""`sampan risk`: the live-risk process until SIGTERM or SIGINT; `sampan risk enable ACCOUNT`: a
risk officer re-enables an account a cut-loss breach blocked.

Connections come from the environment (`sampan.config`); the topics must exist (`sampan topics
apply`). The process exits 0 on SIGTERM/SIGINT and 70 when its loop stalls (its supervisor restarts
it; it rebuilds from the topics).
"""

from __future__ import annotations

import argparse
import getpass
import logging
from typing import Any

from sampan.config import settings
from sampan.risk.book import MARK_INTERVAL_NS_DEFAULT, WARNING_BPS_DEFAULT, RiskConfig

ACCOUNT_LEN_MAX = 32


def _run(args: argparse.Namespace) -> int:
    from sampan.risk.service import RiskService, ServiceConfig

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    risk = RiskConfig(
        warning_bps=args.warning_bps, mark_interval_ns=args.mark_interval_ms * 1_000_000
    )
    config = ServiceConfig(risk=risk, instance_id=args.instance_id)
    return RiskService(settings(), config).run()


def _enable(args: argparse.Namespace) -> int:
    from sampan.errors import SampanError
    from sampan.risk.service import enable

    account: str = args.account
    if not account or len(account) > ACCOUNT_LEN_MAX or not account.isprintable():
        raise SampanError(f"not an account id: {account[:ACCOUNT_LEN_MAX]!r}")
    user = args.user or getpass.getuser()
    enable(settings(), account, user)
    print(f"risk: {account} re-enabled by {user}; the router accepts its orders again")
    return 0


def _bps(text: str) -> int:
    value = int(text)
    if not 0 < value <= 10_000:
        raise argparse.ArgumentTypeError("basis points in 1..10000")
    return value


def _ms(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 60_000:
        raise argparse.ArgumentTypeError("milliseconds in 0..60000")
    return value


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "risk",
        help="live risk: accounts marked to market, cut-loss alerts and blocks",
        description=(
            "Marks every account to market on every price move of either venue (md.trades), "
            "from the ledger's balances and the fills since: equity, portfolio value, available "
            "cash, credit used, distance to the cut-loss level, on risk.marks. Alerts on "
            "risk.alerts when equity falls past the warning level and past the cut-loss level; "
            "a breach blocks the account's orders that add risk (risk.controls, read by the "
            "router) and cancels its open ones. `sampan risk enable ACCOUNT` re-enables it."
        ),
    )
    parser.add_argument(
        "--warning-bps",
        type=_bps,
        default=WARNING_BPS_DEFAULT,
        help="the warning level, in basis points of the way from the day's starting equity "
        "down to the cut-loss level (default 8000: 80%%)",
    )
    parser.add_argument(
        "--mark-interval-ms",
        type=_ms,
        default=MARK_INTERVAL_NS_DEFAULT // 1_000_000,
        help="at most one mark per account per this many milliseconds (default 50)",
    )
    parser.add_argument("--instance-id", default="0", help="transactional id suffix")
    parser.set_defaults(handler=_run)
    commands = parser.add_subparsers(dest="risk_command", metavar="COMMAND")
    enable = commands.add_parser(
        "enable",
        help="re-enable an account a cut-loss breach blocked",
        description="Writes a risk.controls record: the router accepts the account's orders "
        "that add risk again; a new breach blocks it again.",
    )
    enable.add_argument("account")
    enable.add_argument("--user", default=None, help="the risk officer (default: the OS user)")
    enable.set_defaults(handler=_enable)
