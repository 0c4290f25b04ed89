"""`sampan ui` (the trader's screen server) and `sampan users` (who may log in).

Passwords never come from the command line (argv is visible to every user of the machine in
`ps`): `users add` and `users passwd` read one line from standard input, or the first line of
`--password-file`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from sampan.config import settings
from sampan.errors import SampanError

# The roles of sampan.ui_bridge.auth.Role, named here so that `sampan --help` does not load
# Argon2 (a unit test keeps the two equal).
ROLES = ("trader", "risk", "auditor", "admin")


def _serve(args: argparse.Namespace) -> int:
    from sampan.ui_bridge.server import serve
    from sampan.ui_bridge.store import ui_schema

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    current = settings()
    return serve(
        current, ui_schema(), args.host, args.port, args.secure_cookies, _tls(args, current)
    )


def _tls(args: argparse.Namespace, current: Any) -> tuple[Path, Path] | None:
    """The certificate and key `--tls` serves with: the given files, else the local stack's
    (signed by its CA in `<state>/security/`)."""
    if not args.tls:
        return None
    if args.certfile or args.keyfile:
        if not (args.certfile and args.keyfile):
            raise SampanError("--certfile and --keyfile go together")
        return Path(args.certfile), Path(args.keyfile)
    from sampan.credentials import LocalSecurity

    local = LocalSecurity.of(current.state_dir)
    if not local.present():
        raise SampanError(
            f"--tls without --certfile/--keyfile needs a secured local stack ({local.root} has "
            "no certificate): give a certificate and key"
        )
    return local.server_cert, local.server_key


def _password(args: argparse.Namespace) -> str:
    if args.password_file:
        try:
            text = Path(args.password_file).read_text()
        except OSError as error:
            raise SampanError(f"cannot read {args.password_file}: {error}") from None
    else:
        if sys.stdin.isatty():
            import getpass

            return getpass.getpass("password: ")
        text = sys.stdin.readline()
    lines = text.splitlines()
    if not lines:
        raise SampanError("no password given (standard input or --password-file was empty)")
    return lines[0]


def _store() -> Any:
    from sampan.ui_bridge.store import Store, migrate, ui_schema

    schema = ui_schema()
    migrate(settings(), schema)
    return Store(settings(), schema)


def _users(args: argparse.Namespace) -> int:
    from sampan.ui_bridge.auth import BadPassword, Role

    store = _store()
    if args.action == "migrate":
        print("users schema migrated")
    elif args.action == "add":
        try:
            store.add_user(args.username, _password(args), Role(args.role), args.member)
        except BadPassword as error:
            raise SampanError(str(error)) from None
        print(
            f"user {args.username} added ({args.role}{', member ' + args.member if args.member else ''})"
        )
    elif args.action == "passwd":
        try:
            store.set_password(args.username, _password(args))
        except BadPassword as error:
            raise SampanError(str(error)) from None
        print(f"password of {args.username} changed")
    elif args.action in ("disable", "enable"):
        store.set_disabled(args.username, args.action == "disable")
        print(f"user {args.username} {args.action}d")
    elif args.action == "list":
        print(f"{'user':<24} {'role':<8} {'member':<10} state")
        for user in store.users():
            state = "disabled" if user.disabled else "enabled"
            print(f"{user.username:<24} {user.role!s:<8} {user.member or '-':<10} {state}")
    return 0


def register(subparsers: Any) -> None:
    ui = subparsers.add_parser(
        "ui",
        help="the trader's screen: web page, REST API and WebSocket (Starlette on uvicorn)",
        description="Rebuilds the screen's state from the topics, then serves the page at /, "
        "the REST API under /api (OpenAPI at /api/openapi.json) and the WebSocket at /ws. "
        "Users come from PostgreSQL (schema SAMPAN_UI_SCHEMA, default ui; see `sampan users`). "
        "Sessions are signed with SAMPAN_UI_SECRET (at least 32 characters; a random one when "
        "unset, so sessions end when the server restarts).",
    )
    ui.add_argument("--host", default="127.0.0.1", help="address to listen on")
    ui.add_argument("--port", type=int, default=8080, help="port to listen on")
    ui.add_argument(
        "--secure-cookies", action="store_true", help="mark cookies Secure (behind HTTPS)"
    )
    ui.add_argument(
        "--tls",
        action="store_true",
        help="serve HTTPS and WSS only (Secure cookies, HSTS) with --certfile/--keyfile, or the "
        "local stack's certificate (trust <state>/security/ca.pem)",
    )
    ui.add_argument("--certfile", help="PEM certificate (chain) for --tls")
    ui.add_argument("--keyfile", help="PEM private key for --tls")
    ui.set_defaults(handler=_serve)

    users = subparsers.add_parser(
        "users",
        help="add, list, disable and enable the users of the screen",
        description="Users live in PostgreSQL (schema SAMPAN_UI_SCHEMA, default ui), passwords "
        "as Argon2id hashes. Passwords are read from standard input or --password-file, never "
        "from the command line.",
    )
    actions = users.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="add a user (password from stdin or --password-file)")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--member", help="the member firm of a trader (traders only)")
    add.add_argument("--password-file", help="read the password from the first line of this file")
    passwd = actions.add_parser("passwd", help="set a user's password (stdin or --password-file)")
    passwd.add_argument("username")
    passwd.add_argument("--password-file")
    for name in ("disable", "enable"):
        action = actions.add_parser(name, help=f"{name} a user (a running server notices in 5 s)")
        action.add_argument("username")
    actions.add_parser("list", help="list users: name, role, member, state")
    actions.add_parser("migrate", help="create or upgrade the users schema")
    users.set_defaults(handler=_users)
