"""The Starlette application of `sampan ui`: login, the REST API, the WebSocket, the page.

Guarantees: every request but login and the page's files is authenticated (a signed session
token from the `sampan_session` cookie, with the CSRF header on unsafe methods, or a bearer
token) and authorised by `access`; a refusal answers 403 `{"error","reason"}` and is written to
the access audit trail. Bad input answers 4xx with a code and a reason and writes nothing; no
traceback reaches a client (an unexpected error answers 500 `INTERNAL` and is logged). Orders
are written to `orders.requests` keyed by account, and a 202 means the broker has the command;
the router's verdict arrives on the WebSocket. Until the follower has rebuilt the state from
the topics, every API call and WebSocket answers 503 `STARTING`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from sampan.ui_bridge import validation
from sampan.ui_bridge.access import Action, Refusal, may, may_on_account, visible_accounts
from sampan.ui_bridge.auth import (
    USERNAME_MAX,
    Role,
    Session,
    SessionCodec,
    Throttle,
    TokenRefused,
    csrf_ok,
    verify_password,
)
from sampan.ui_bridge.hub import Client, Hub, dumps
from sampan.ui_bridge.openapi import OPENAPI
from sampan.ui_bridge.state import View
from sampan.ui_bridge.store import Store
from sampan.ui_bridge.validation import BadRequest

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
SESSION_COOKIE = "sampan_session"
CSRF_COOKIE = "sampan_csrf"
WS_MESSAGE_BYTES_MAX = 64 * 1024
WS_SUBSCRIPTIONS_MAX = 200
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
REVOKED_REFRESH_S = 5.0


class Sink(Protocol):
    """Where the app writes: `orders.requests` and `reference.accounts` (kafka_io.Sender)."""

    def send(self, topic: str, key: str, schema: str, value: dict[str, Any]) -> Awaitable[None]: ...


@dataclass
class Ui:
    """Everything a request handler needs; one per server."""

    view: View
    hub: Hub
    store: Store
    codec: SessionCodec
    sink: Sink
    secure_cookies: bool = False
    throttle: Throttle = field(default_factory=Throttle)
    revoked: set[str] = field(default_factory=set)
    disabled: frozenset[str] = frozenset()
    failure: Callable[[], str | None] = lambda: None
    _seq: int = 0

    def next_cl_ord_id(self) -> str:
        self._seq += 1
        return f"W{time.time_ns() // 1_000_000:x}{self._seq:04d}"


def error(code: str, reason: str, status: int) -> JSONResponse:
    return JSONResponse({"error": code, "reason": reason}, status_code=status)


def _ui(conn: HTTPConnection) -> Ui:
    ui: Ui = conn.app.state.ui
    return ui


def _remote(conn: HTTPConnection) -> str:
    return conn.client.host if conn.client else "unknown"


async def _audit(
    conn: HTTPConnection, session: Session | None, action: str, target: str, reason: str
) -> None:
    ui = _ui(conn)
    try:
        await asyncio.to_thread(
            ui.store.audit,
            session.username if session else None,
            str(session.role) if session else None,
            action,
            target,
            reason,
            _remote(conn),
        )
    except Exception as failure:  # the refusal stands even if the audit write fails; say so
        log.error("ui: access audit write failed (%s %s: %s): %s", action, target, reason, failure)


async def refuse(
    conn: HTTPConnection, session: Session | None, action: str, target: str, refusal: Refusal
) -> JSONResponse:
    await _audit(conn, session, action, target, refusal.reason)
    return error(refusal.code, refusal.reason, 403)


def _token(conn: HTTPConnection) -> tuple[str | None, bool]:
    """The session token and whether it came from the cookie (which needs CSRF)."""
    header = conn.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip(), False
    query = conn.query_params.get("token") if conn.scope["type"] == "websocket" else None
    if query:
        return query, False
    cookie = conn.cookies.get(SESSION_COOKIE)
    return cookie, cookie is not None


def same_origin(origin: str | None, host: str | None) -> bool:
    """True when the browser's Origin names this server (no Origin: not a browser)."""
    if origin is None:
        return True
    return host is not None and urlsplit(origin).netloc.lower() == host.lower()


def authenticate(conn: HTTPConnection) -> Session | JSONResponse:
    ui = _ui(conn)
    token, from_cookie = _token(conn)
    if not token:
        return error("UNAUTHENTICATED", "log in first", 401)
    try:
        session = ui.codec.load(token, int(time.time()), ui.revoked)
    except TokenRefused as refused:
        return error("UNAUTHENTICATED", refused.reason, 401)
    if session.username in ui.disabled:
        return error("UNAUTHENTICATED", "this user is disabled", 401)
    if (
        from_cookie
        and conn.scope["type"] == "http"
        and conn.scope["method"] in UNSAFE
        and not csrf_ok(session, conn.headers.get("x-csrf-token"))
    ):
        return error("CSRF", "the X-CSRF-Token header is missing or wrong", 403)
    return session


def api(
    handler: Callable[[Request, Session], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """Authenticate, refuse while starting, turn BadRequest into 4xx and anything else into 500."""

    async def endpoint(request: Request) -> Response:
        ui = _ui(request)
        if not ui.hub.ready:
            return error("STARTING", ui.failure() or "rebuilding state from the topics; retry", 503)
        session = authenticate(request)
        if isinstance(session, JSONResponse):
            if session.status_code == 403:
                await _audit(
                    request, None, f"{request.method} {request.url.path}", "-", "CSRF check failed"
                )
            return session
        try:
            return await handler(request, session)
        except BadRequest as bad:
            return error(bad.code, bad.reason, bad.status)
        except OSError as failure:
            log.error("ui: %s %s: %s", request.method, request.url.path, failure)
            return error("UNAVAILABLE", str(failure), 503)

    return endpoint


async def _body(request: Request) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > validation.BODY_BYTES_MAX:
        raise BadRequest("TOO_LARGE", f"the body is over {validation.BODY_BYTES_MAX} bytes", 413)
    chunks = bytearray()
    async for chunk in request.stream():
        chunks.extend(chunk)
        if len(chunks) > validation.BODY_BYTES_MAX:
            raise BadRequest(
                "TOO_LARGE", f"the body is over {validation.BODY_BYTES_MAX} bytes", 413
            )
    return validation.parse_json(bytes(chunks))


# ---- auth ------------------------------------------------------------------------------------
def user_json(ui: Ui, session: Session) -> dict[str, Any]:
    return {
        "username": session.username,
        "role": str(session.role),
        "member": session.member,
        "accounts": visible_accounts(session, ui.view.members_by_account()),
    }


async def login(request: Request) -> Response:
    ui = _ui(request)
    try:
        body = await _body(request)
    except BadRequest as bad:
        return error(bad.code, bad.reason, bad.status)
    username, password = body.get("username"), body.get("password")
    if (
        not isinstance(username, str)
        or not isinstance(password, str)
        or len(username) > USERNAME_MAX
    ):
        return error("LOGIN_FAILED", "give a username and a password", 401)
    now = time.monotonic()
    for key in (f"user:{username}", f"ip:{_remote(request)}"):
        wait_s = ui.throttle.blocked_s(key, now)
        if wait_s > 0:
            await _audit(request, None, "login", username, "throttled")
            return JSONResponse(
                {
                    "error": "THROTTLED",
                    "reason": f"too many failed logins; retry in {wait_s:.0f} s",
                },
                status_code=429,
                headers={"Retry-After": str(int(wait_s) + 1)},
            )
    try:
        user = await asyncio.to_thread(ui.store.user, username)
    except Exception as failure:
        log.error("ui: login: the users database failed: %s", failure)
        return error("UNAVAILABLE", "the users database is not answering; retry", 503)
    ok = await asyncio.to_thread(verify_password, user.password_hash if user else None, password)
    if not ok or user is None or user.disabled:
        for key in (f"user:{username}", f"ip:{_remote(request)}"):
            ui.throttle.failed(key, now)
        reason = (
            "user disabled"
            if user is not None and user.disabled and ok
            else "wrong user name or password"
        )
        await _audit(request, None, "login", username, reason)
        return error("LOGIN_FAILED", "wrong user name or password, or the user is disabled", 401)
    ui.throttle.succeeded(f"user:{username}")
    token, session = ui.codec.issue(user.username, user.role, user.member, int(time.time()))
    await _audit(request, session, "login", username, "ok")
    body_out = {
        "token": token,
        "csrf": session.csrf,
        "expires_ts_ns": session.expires_ts_s * 1_000_000_000,
        "user": user_json(ui, session),
    }
    response = JSONResponse(body_out)
    max_age = ui.codec.ttl_s
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max_age,
        httponly=True,
        samesite="strict",
        secure=ui.secure_cookies,
    )
    response.set_cookie(
        CSRF_COOKIE,
        session.csrf,
        max_age=max_age,
        httponly=False,
        samesite="strict",
        secure=ui.secure_cookies,
    )
    return response


async def logout(request: Request, session: Session) -> Response:
    ui = _ui(request)
    await asyncio.to_thread(ui.store.revoke, session.sid, session.expires_ts_s)
    ui.revoked.add(session.sid)
    await _audit(request, session, "logout", session.username, "ok")
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE)
    response.delete_cookie(CSRF_COOKIE)
    return response


async def me(request: Request, session: Session) -> Response:
    return JSONResponse(user_json(_ui(request), session))


# ---- reads -----------------------------------------------------------------------------------
def tick_table(code: str) -> list[list[int]]:
    """Rows `[from_e3, tick_e3]`: a price above `from_e3` (and up to the next row's) moves in
    steps of `tick_e3`; the band bounds are HKEX's, upper bounds inclusive."""
    from sampan.market.listings import SPREAD_TABLE_CODES
    from sampan.market.rules import SPREAD_TABLES

    number = SPREAD_TABLE_CODES.get(code)
    if number is None:
        return []
    table = SPREAD_TABLES[number]
    froms = (0, *table.uppers_e3[:-1])
    return [[low, tick] for low, tick in zip(froms, table.ticks_e3, strict=True)]


async def instruments(request: Request, session: Session) -> Response:
    view = _ui(request).view
    return JSONResponse(
        [
            {
                "security": i["security"],
                "name": i["name"],
                "board_lot": i["board_lot"],
                "spread_table": i["spread_table"],
                "prev_close_e3": i["prev_close_e3"],
                "enabled": i["enabled"],
                "tick_table": tick_table(i["spread_table"]),
            }
            for _, i in sorted(view.instruments.items())
        ]
    )


def _account_json(view: View, account: str) -> dict[str, Any]:
    return {
        "account": account,
        "member": view.member_of(account),
        "limits": view.accounts.get(account),
        "snapshot": view.snapshots.get(account),
        # Live risk's marked-to-market figures (risk.marks) and block (risk.controls), if any.
        "mark": view.marks.get(account),
        "control": view.controls.get(account),
    }


async def _visible(
    request: Request, session: Session, account: str, action: Action = Action.VIEW_ACCOUNT
) -> Response | None:
    view = _ui(request).view
    refusal = may_on_account(session, action, account, view.member_of(account))
    if refusal is None:
        return None
    return await refuse(request, session, str(action), account, refusal)


async def accounts(request: Request, session: Session) -> Response:
    view = _ui(request).view
    names = visible_accounts(session, view.members_by_account())
    if not names and session.role is Role.ADMIN:
        return await refuse(
            request,
            session,
            "view_account",
            "*",
            Refusal("FORBIDDEN", "the admin role sees no accounts"),
        )
    return JSONResponse([_account_json(view, a) for a in names])


async def account(request: Request, session: Session) -> Response:
    name = request.path_params["account"]
    refused = await _visible(request, session, name)
    return refused or JSONResponse(_account_json(_ui(request).view, name))


async def account_orders(request: Request, session: Session) -> Response:
    name = request.path_params["account"]
    refused = await _visible(request, session, name)
    return refused or JSONResponse(_ui(request).view.orders_of(name))


async def account_inventory(request: Request, session: Session) -> Response:
    name = request.path_params["account"]
    refused = await _visible(request, session, name)
    return refused or JSONResponse(_ui(request).view.inventory(name))


async def risk_accounts(request: Request, session: Session) -> Response:
    refusal = may(session, Action.VIEW_RISK)
    if refusal is not None:
        return await refuse(request, session, "view_risk", "*", refusal)
    view = _ui(request).view
    rows = []
    for name in sorted(view.accounts):
        snapshot = view.snapshots.get(name)
        limits = view.accounts[name]
        distance = None
        if snapshot is not None:
            distance = snapshot["equity_cents"] - limits["cut_loss_cents"]
        rows.append({**_account_json(view, name), "cut_loss_distance_cents": distance})
    return JSONResponse(rows)


async def recon_breaks(request: Request, session: Session) -> Response:
    refusal = may(session, Action.VIEW_RECON)
    if refusal is not None:
        return await refuse(request, session, "view_recon", "*", refusal)
    return JSONResponse(list(reversed(_ui(request).view.breaks.values())))


async def surveillance_alerts(request: Request, session: Session) -> Response:
    refusal = may(session, Action.VIEW_RECON)
    if refusal is not None:
        return await refuse(request, session, "view_surveillance", "*", refusal)
    return JSONResponse(list(reversed(_ui(request).view.alerts.values())))


async def users(request: Request, session: Session) -> Response:
    refusal = may(session, Action.MANAGE_USERS)
    if refusal is not None:
        return await refuse(request, session, "manage_users", "*", refusal)
    listed = await asyncio.to_thread(_ui(request).store.users)
    return JSONResponse(
        [
            {
                "username": u.username,
                "role": str(u.role),
                "member": u.member,
                "disabled": u.disabled,
            }
            for u in listed
        ]
    )


async def access_audit(request: Request, session: Session) -> Response:
    refusal = may(session, Action.VIEW_AUDIT)
    if refusal is not None:
        return await refuse(request, session, "view_audit", "*", refusal)
    raw = request.query_params.get("limit", "100")
    if not raw.isdigit():
        raise BadRequest("INVALID_FIELD", "limit must be a positive integer")
    rows = await asyncio.to_thread(_ui(request).store.audit_trail, int(raw))
    return JSONResponse(rows)


# ---- writes ----------------------------------------------------------------------------------
def command(
    session: Session,
    member: str,
    kind: str,
    account: str,
    security: int,
    cl_ord_id: str,
    side: str,
    qty: int,
    price_e3: int,
    *,
    route: str = "INTERNAL",
    tif: str = "DAY",
    orig: str | None = None,
    batch_id: str | None = None,
) -> dict[str, Any]:
    return {
        "command_id": uuid.uuid4().hex,
        "kind": kind,
        "account": account,
        "member": member,
        "security": security,
        "cl_ord_id": cl_ord_id,
        "orig_cl_ord_id": orig,
        "side": side,
        "ord_type": "LIMIT",
        "time_in_force": tif,
        "price_e3": price_e3,
        "qty": qty,
        "route": route,
        "batch_id": batch_id,
        "parent_id": None,
        "user": session.username,
        "ts_ns": time.time_ns(),
        "stp": None,
    }


async def _may_trade(
    request: Request, session: Session, account: str
) -> tuple[str | None, Response | None]:
    view = _ui(request).view
    member = view.member_of(account)
    refusal = may_on_account(session, Action.TRADE, account, member)
    if refusal is not None:
        return None, await refuse(request, session, "trade", account, refusal)
    if member is None:  # programmer error: may_on_account refuses an unknown account
        raise AssertionError(account)
    return member, None


def _new_command(
    ui: Ui, session: Session, member: str, order: validation.NewOrder, batch_id: str | None
) -> dict[str, Any]:
    cl_ord_id = order.cl_ord_id or ui.next_cl_ord_id()
    if (
        cl_ord_id in ui.view.orders.get(order.account, ())
        or (order.account, cl_ord_id) in ui.view.sent
    ):
        raise BadRequest("DUPLICATE_CL_ORD_ID", f"cl_ord_id {cl_ord_id} was used today", 409)
    return command(
        session,
        member,
        "NEW",
        order.account,
        order.security,
        cl_ord_id,
        order.side,
        order.qty,
        order.price_e3,
        route=order.route,
        tif=order.time_in_force,
        batch_id=batch_id,
    )


async def _send_commands(ui: Ui, commands: list[dict[str, Any]]) -> None:
    for c in commands:
        if c["kind"] == "NEW":
            ui.view.sent[(c["account"], c["cl_ord_id"])] = (c["route"], c["batch_id"])
    # In order, one future each: the producer keeps per-partition order (idempotent), and all
    # of one account's commands share its partition, so the router sees them in this order.
    futures = [ui.sink.send("orders.requests", c["account"], "OrderCommand", c) for c in commands]
    await asyncio.gather(*futures)


async def place_order(request: Request, session: Session) -> Response:
    ui = _ui(request)
    body = await _body(request)
    account_name = validation.account_of(body)
    member, refused = await _may_trade(request, session, account_name)
    if refused:
        return refused
    assert member is not None
    order = validation.new_order(body, ui.view.enabled_securities())
    c = _new_command(ui, session, member, order, None)
    await _send_commands(ui, [c])
    return JSONResponse(
        {"command_id": c["command_id"], "cl_ord_id": c["cl_ord_id"]}, status_code=202
    )


async def place_batch(request: Request, session: Session) -> Response:
    ui = _ui(request)
    body = await _body(request)
    account_name = validation.account_of(body)
    member, refused = await _may_trade(request, session, account_name)
    if refused:
        return refused
    assert member is not None
    _, orders = validation.batch(body, ui.view.enabled_securities())
    batch_id = f"B{uuid.uuid4().hex[:16]}"
    commands = [_new_command(ui, session, member, o, batch_id) for o in orders]
    await _send_commands(ui, commands)
    return JSONResponse(
        {
            "batch_id": batch_id,
            "orders": [
                {"command_id": c["command_id"], "cl_ord_id": c["cl_ord_id"]} for c in commands
            ],
        },
        status_code=202,
    )


async def _order_change(request: Request, session: Session, kind: str) -> Response:
    ui = _ui(request)
    body = await _body(request)
    account_name = validation.account_of(body)
    member, refused = await _may_trade(request, session, account_name)
    if refused:
        return refused
    assert member is not None
    orig = request.path_params["cl_ord_id"]
    row = ui.view.orders.get(account_name, {}).get(orig)
    if row is None:
        raise BadRequest("UNKNOWN_ORDER", f"no order {orig} today on account {account_name}", 404)
    qty, price_e3 = row.order_qty, row.price_e3
    if kind == "AMEND":
        change = validation.amend(body)
        qty, price_e3 = change.qty, change.price_e3
    c = command(
        session,
        member,
        kind,
        account_name,
        row.security,
        ui.next_cl_ord_id(),
        row.side,
        qty,
        price_e3,
        route=row.route or "INTERNAL",
        orig=row.latest_cl_ord_id or orig,  # an amended order is known by the amend's id
    )
    await _send_commands(ui, [c])
    return JSONResponse(
        {"command_id": c["command_id"], "cl_ord_id": c["cl_ord_id"]}, status_code=202
    )


async def cancel_order(request: Request, session: Session) -> Response:
    return await _order_change(request, session, "CANCEL")


async def amend_order(request: Request, session: Session) -> Response:
    return await _order_change(request, session, "AMEND")


async def set_limits(request: Request, session: Session) -> Response:
    ui = _ui(request)
    name = request.path_params["account"]
    refusal = may_on_account(session, Action.SET_LIMITS, name, ui.view.member_of(name))
    if refusal is not None:
        return await refuse(request, session, "set_limits", name, refusal)
    change = validation.limits(await _body(request))
    record = dict(ui.view.accounts[name])
    for field_name in (
        "credit_line_cents",
        "cut_loss_cents",
        "max_order_notional_cents",
        "enabled",
    ):
        value = getattr(change, field_name)
        if value is not None:
            record[field_name] = value
    record["ts_ns"] = time.time_ns()
    await ui.sink.send("reference.accounts", name, "Account", record)
    log.info("ui: %s set limits of %s: %s", session.username, name, change)
    return JSONResponse(record, status_code=202)


async def risk_enable(request: Request, session: Session) -> Response:
    """A risk officer re-enables an account live risk blocked on a cut-loss breach."""
    ui = _ui(request)
    name = request.path_params["account"]
    refusal = may_on_account(session, Action.SET_LIMITS, name, ui.view.member_of(name))
    if refusal is not None:
        return await refuse(request, session, "risk_enable", name, refusal)
    record = {
        "account": name,
        "blocked": False,
        "reason": "ENABLED",
        "alert_id": None,
        "user": session.username,
        "ts_ns": time.time_ns(),
    }
    await ui.sink.send("risk.controls", name, "RiskControl", record)
    log.info("ui: %s re-enabled %s after a cut-loss block", session.username, name)
    return JSONResponse(record, status_code=202)


async def openapi(request: Request) -> Response:
    return JSONResponse(OPENAPI)


async def health(request: Request) -> Response:
    ui = _ui(request)
    return JSONResponse(
        {"ready": ui.hub.ready, "failure": ui.failure(), **ui.hub.totals()},
        status_code=200 if ui.hub.ready else 503,
    )


# ---- the WebSocket ---------------------------------------------------------------------------
async def websocket(ws: WebSocket) -> None:
    ui = _ui(ws)
    if not ui.hub.ready:
        await ws.close(1013, "starting: rebuilding state from the topics")
        return
    session = authenticate(ws)
    if isinstance(session, JSONResponse):
        await ws.close(1008, "log in first")
        return
    if _token(ws)[1] and not same_origin(ws.headers.get("origin"), ws.headers.get("host")):
        # The cookie rides along on a page of another site too; only our page may use it.
        await _audit(ws, session, "websocket", ws.headers.get("origin") or "-", "cross-site origin")
        await ws.close(1008, "cross-site WebSocket refused")
        return
    await ws.accept()

    async def close(code: int, reason: str) -> None:
        with contextlib.suppress(RuntimeError):  # already closed by the peer
            await ws.close(code, reason)

    client = Client(session, ws.send_text, close)
    ui.hub.add(client)
    sender = asyncio.create_task(ui.hub.run_sender(client))
    try:
        while not sender.done():
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
            raw = message.get("text")
            if raw is None:
                raw_bytes = message.get("bytes") or b""
                size = len(raw_bytes)
            else:
                size = len(raw)
            if size > WS_MESSAGE_BYTES_MAX:
                client.push(
                    dumps(
                        {
                            "type": "error",
                            "error": "TOO_LARGE",
                            "reason": f"a message is at most {WS_MESSAGE_BYTES_MAX} bytes; this one was {size}",
                        }
                    )
                )
                continue
            await _on_ws_message(
                ws, ui, client, raw if raw is not None else (message.get("bytes") or b"")
            )
    except WebSocketDisconnect:
        pass
    finally:
        ui.hub.remove(client)
        sender.cancel()
        if sender.done() and not sender.cancelled() and sender.exception() is not None:
            # A send to a socket the peer closed: the connection is over either way.
            log.debug("ui: WebSocket of %s ended: %s", session.username, sender.exception())


async def _on_ws_message(ws: WebSocket, ui: Ui, client: Client, raw: str | bytes) -> None:
    def reply(code: str, reason: str) -> None:
        client.push(dumps({"type": "error", "error": code, "reason": reason}))

    try:
        body = validation.parse_json(raw.encode() if isinstance(raw, str) else raw)
    except BadRequest as bad:
        reply(bad.code, bad.reason)
        return
    op, channel = body.get("op"), body.get("channel")
    if op not in ("subscribe", "unsubscribe"):
        reply("INVALID_FIELD", "op must be subscribe or unsubscribe")
        return
    subscribe = op == "subscribe"
    subscriptions = len(client.depth) // 2 + len(client.accounts)
    if subscribe and subscriptions >= WS_SUBSCRIPTIONS_MAX:
        reply("TOO_MANY", f"at most {WS_SUBSCRIPTIONS_MAX} subscriptions per connection")
        return
    session = client.session
    if channel == "depth":
        security = body.get("security")
        if (
            not isinstance(security, int)
            or isinstance(security, bool)
            or security not in ui.view.instruments
        ):
            reply("UNKNOWN_SECURITY", f"security {security!r} is not listed")
            return
        if subscribe:
            ui.hub.subscribe_depth(client, security)
        else:
            ui.hub.unsubscribe_depth(client, security)
    elif channel == "account":
        name = body.get("account")
        if not isinstance(name, str) or len(name) > 64:
            reply("INVALID_FIELD", "account must be an account id")
            return
        refusal = may_on_account(session, Action.VIEW_ACCOUNT, name, ui.view.member_of(name))
        if refusal is not None:
            await _audit(ws, session, "subscribe account", name, refusal.reason)
            reply(refusal.code, refusal.reason)
            return
        if subscribe:
            ui.hub.subscribe_account(client, name)
        else:
            ui.hub.unsubscribe_account(client, name)
    elif channel == "market":
        if subscribe:
            ui.hub.subscribe_market(client)
        else:
            ui.hub.unsubscribe_market(client)
    elif channel == "recon":
        refusal = may(session, Action.VIEW_RECON)
        if refusal is not None:
            await _audit(ws, session, "subscribe recon", "*", refusal.reason)
            reply(refusal.code, refusal.reason)
            return
        ui.hub.subscribe_recon(client)
    else:
        reply("INVALID_FIELD", "channel must be depth, account, market or recon")


# ---- the page --------------------------------------------------------------------------------
PLACEHOLDER = (
    "<!doctype html><title>sampan</title><h1>sampan</h1>"
    "<p>The page is not installed; the API is at <a href='/api/openapi.json'>/api/openapi.json</a>.</p>"
)


async def index(request: Request) -> Response:
    page = STATIC_DIR / "index.html"
    if page.is_file():
        return FileResponse(page, headers={"Cache-Control": "no-cache"})
    return HTMLResponse(PLACEHOLDER)


SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
]


# Behind HTTPS (`sampan ui --tls`): browsers keep to HTTPS for this host for a year.
HSTS_HEADER = (b"strict-transport-security", b"max-age=31536000")


class SecurityHeaders:
    """Adds headers that keep the page out of frames and other sites' scripts off it, and
    HSTS when the screen is served over HTTPS."""

    def __init__(self, app: ASGIApp, hsts: bool = False) -> None:
        self.app = app
        self.headers = [*SECURITY_HEADERS, HSTS_HEADER] if hsts else SECURITY_HEADERS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.headers]
            await send(message)

        await self.app(scope, receive, with_headers)


def route_table() -> list[BaseRoute]:
    """Every route the screen serves: the REST API, the WebSocket and the page."""
    routes: list[BaseRoute] = [
        Route("/api/login", login, methods=["POST"]),
        Route("/api/logout", api(logout), methods=["POST"]),
        Route("/api/me", api(me)),
        Route("/api/instruments", api(instruments)),
        Route("/api/accounts", api(accounts)),
        Route("/api/accounts/{account}", api(account)),
        Route("/api/accounts/{account}/orders", api(account_orders)),
        Route("/api/accounts/{account}/inventory", api(account_inventory)),
        Route("/api/accounts/{account}/limits", api(set_limits), methods=["PUT"]),
        Route("/api/orders", api(place_order), methods=["POST"]),
        Route("/api/orders/{cl_ord_id}/cancel", api(cancel_order), methods=["POST"]),
        Route("/api/orders/{cl_ord_id}/amend", api(amend_order), methods=["POST"]),
        Route("/api/batches", api(place_batch), methods=["POST"]),
        Route("/api/risk/accounts", api(risk_accounts)),
        Route("/api/risk/accounts/{account}/enable", api(risk_enable), methods=["POST"]),
        Route("/api/recon/breaks", api(recon_breaks)),
        Route("/api/surveillance/alerts", api(surveillance_alerts)),
        Route("/api/access-audit", api(access_audit)),
        Route("/api/users", api(users)),
        Route("/api/openapi.json", openapi),
        Route("/api/health", health),
        WebSocketRoute("/ws", websocket),
        Route("/", index),
    ]
    if STATIC_DIR.is_dir():
        routes.append(Mount("/", StaticFiles(directory=STATIC_DIR), name="static"))
    return routes


def build_app(ui: Ui, lifespan: Any = None) -> Starlette:
    app = Starlette(
        routes=route_table(),
        middleware=[Middleware(SecurityHeaders, hsts=ui.secure_cookies)],
        lifespan=lifespan,
        exception_handlers={404: _not_found, 405: _not_allowed, 500: _internal},
    )
    app.state.ui = ui
    return app


async def _not_found(request: Request, exc: Exception) -> Response:
    return error("NOT_FOUND", f"no such path: {request.url.path}", 404)


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return error(
        "METHOD_NOT_ALLOWED", f"{request.method} is not allowed on {request.url.path}", 405
    )


async def _internal(request: Request, exc: Exception) -> Response:
    log.exception("ui: unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return error("INTERNAL", "the server failed on this request; it is logged", 500)
