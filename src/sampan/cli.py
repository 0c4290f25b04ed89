"""The `sampan` command: one entry point for every process, the local stack and the tools.

Each package that owns a subcommand exposes `register(subparsers)` in its own `cli` module; this
module only lists them, so adding a process never means editing another package's code. A
subcommand's handler returns the process exit status. Operator errors (`SampanError`, a
timeout, an unreachable database or broker) print one clear line to stderr and exit 2; they
never reach the user as a traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from sampan import credentials
from sampan.errors import SampanError

# Modules that provide `register(subparsers: argparse._SubParsersAction) -> None`.
COMMAND_MODULES: tuple[str, ...] = (
    "sampan.stack_cli",
    "sampan.topics_cli",
    "sampan.tools.demo",
    "sampan.tools.seed",
    "sampan.matcher.cli",
    "sampan.ledger_sink.cli",
    "sampan.router.cli",
    "sampan.hkex_sim.sim_cli",
    "sampan.dropcopy.cli",
    "sampan.hkex_sim.omd_cli",
    "sampan.omd_ingest.cli",
    "sampan.ui_bridge.cli",
    "sampan.tools.bench.cli",
    "sampan.tools.audit_cli",
    "sampan.analytics.cli",
    "sampan.risk.cli",
    "sampan.tools.venue_clock",
)

# The principal each process command runs as on the broker (`sampan.credentials`); every other
# command (the stack, topics, seed, demo, bench, users) is the operator's, `admin`.
COMMAND_PRINCIPALS: dict[str, str] = {
    "router": "router",
    "matcher": "matcher",
    "ledger-sink": "ledger_sink",
    "ledger": "ledger_sink",
    "dropcopy": "dropcopy",
    "recon": "recon",
    "omd-ingest": "omd_ingest",
    "ui": "ui_bridge",
    "analytics": "analytics",
    "risk": "risk",
    "audit": "audit",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sampan",
        description=(
            "sampan: a private trading venue on Apache Kafka. Members trade Hong Kong equities "
            "on an internal book or route to HKEX; one ledger for both venues.\n\n"
            "Connections come from the environment: SAMPAN_KAFKA_BOOTSTRAP (default "
            "127.0.0.1:19092) and SAMPAN_DATABASE_URL (default "
            "postgresql://sampan@127.0.0.1:15432/sampan)."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        module = importlib.import_module(module_name)
        module.register(subparsers)
    return parser


def _is_unreachable_service(error: Exception) -> bool:
    """A database or broker error (down, refused, timed out): an operator's problem to fix,
    shown as one line. The client libraries are matched by module, so `--help` stays quick."""
    module = type(error).__module__
    return module.startswith(("psycopg", "confluent_kafka", "cimpl"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    principal = COMMAND_PRINCIPALS.get(args.command, credentials.ADMIN)
    credentials.run_as(principal)
    try:
        status: int = args.handler(args)
    except SampanError as error:
        print(f"sampan {args.command}: {error}", file=sys.stderr)
        return 2
    except (TimeoutError, OSError) as error:
        print(f"sampan {args.command}: {error}", file=sys.stderr)
        return 2
    except Exception as error:
        if not _is_unreachable_service(error):
            raise
        print(f"sampan {args.command}: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sampan {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        credentials.done_as(principal)
    return status


if __name__ == "__main__":
    sys.exit(main())
