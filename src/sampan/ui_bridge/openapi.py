"""The OpenAPI 3.1 description of the REST API, served at `/api/openapi.json`.

Written by hand from the routes in `app.py` (a unit test checks every route is described), so
it says what the handlers accept, in the units the records use: `price_e3` in HK$0.001,
`*_cents` in HK$0.01, `qty` in shares, times in integer nanoseconds.
"""

from __future__ import annotations

from typing import Any

_ERROR = {
    "type": "object",
    "required": ["error", "reason"],
    "properties": {"error": {"type": "string"}, "reason": {"type": "string"}},
}
_ORDER = {
    "type": "object",
    "required": ["account", "security", "side", "qty", "price_e3"],
    "properties": {
        "account": {"type": "string"},
        "security": {"type": "integer", "minimum": 1, "maximum": 99999},
        "side": {"enum": ["BUY", "SELL"]},
        "qty": {"type": "integer", "minimum": 1, "maximum": 10**12, "description": "shares"},
        "price_e3": {"type": "integer", "minimum": 1, "description": "HK$0.001"},
        "route": {"enum": ["INTERNAL", "HKEX", "SMART"], "default": "INTERNAL"},
        "time_in_force": {"enum": ["DAY", "IOC", "FOK"], "default": "DAY"},
        "cl_ord_id": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,40}$"},
    },
}
_ACCEPTED = {
    "type": "object",
    "properties": {"command_id": {"type": "string"}, "cl_ord_id": {"type": "string"}},
}


def _op(summary: str, body: Any = None, ok: str = "200", ok_schema: Any = None) -> dict[str, Any]:
    responses: dict[str, Any] = {
        ok: {
            "description": "done",
            "content": {"application/json": {"schema": ok_schema or {"type": "object"}}},
        },
        "4XX": {"description": "refused", "content": {"application/json": {"schema": _ERROR}}},
    }
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


def _account_param() -> list[dict[str, Any]]:
    return [{"name": "account", "in": "path", "required": True, "schema": {"type": "string"}}]


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "sampan ui",
        "version": "1",
        "description": (
            "The trader's screen API. Authenticate with POST /api/login; then send the token as "
            "`Authorization: Bearer <token>`, or use the session cookie with the "
            "`X-CSRF-Token` header on POST and PUT. The WebSocket is at /ws (see API.md)."
        ),
    },
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "cookie": {"type": "apiKey", "in": "cookie", "name": "sampan_session"},
        }
    },
    "security": [{"bearer": []}, {"cookie": []}],
    "paths": {
        "/api/login": {
            "post": {
                **_op(
                    "log in; sets the session and CSRF cookies",
                    {
                        "type": "object",
                        "required": ["username", "password"],
                        "properties": {
                            "username": {"type": "string"},
                            "password": {"type": "string"},
                        },
                    },
                ),
                "security": [],
            }
        },
        "/api/logout": {"post": _op("end this session", ok="204")},
        "/api/me": {"get": _op("the logged-in user and the accounts they may see")},
        "/api/instruments": {"get": _op("listed securities with board lot and tick table")},
        "/api/accounts": {"get": _op("accounts the user may see, with limits and balances")},
        "/api/accounts/{account}": {"get": {**_op("one account"), "parameters": _account_param()}},
        "/api/accounts/{account}/orders": {
            "get": {**_op("today's orders with their fills"), "parameters": _account_param()}
        },
        "/api/accounts/{account}/inventory": {
            "get": {
                **_op("positions: qty, available, average cost"),
                "parameters": _account_param(),
            }
        },
        "/api/accounts/{account}/limits": {
            "put": {
                **_op(
                    "risk officers: set limits, halt (enabled=false) or re-enable",
                    {
                        "type": "object",
                        "properties": {
                            "credit_line_cents": {"type": "integer"},
                            "cut_loss_cents": {"type": "integer"},
                            "max_order_notional_cents": {"type": "integer"},
                            "enabled": {"type": "boolean"},
                        },
                    },
                    ok="202",
                ),
                "parameters": _account_param(),
            }
        },
        "/api/orders": {"post": _op("place an order", _ORDER, "202", _ACCEPTED)},
        "/api/orders/{cl_ord_id}/cancel": {
            "post": {
                **_op(
                    "cancel an order",
                    {
                        "type": "object",
                        "required": ["account"],
                        "properties": {"account": {"type": "string"}},
                    },
                    "202",
                    _ACCEPTED,
                ),
                "parameters": [
                    {
                        "name": "cl_ord_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
            }
        },
        "/api/orders/{cl_ord_id}/amend": {
            "post": {
                **_op(
                    "amend an order's quantity and price",
                    {
                        "type": "object",
                        "required": ["account", "qty", "price_e3"],
                        "properties": {
                            "account": {"type": "string"},
                            "qty": {"type": "integer"},
                            "price_e3": {"type": "integer"},
                        },
                    },
                    "202",
                    _ACCEPTED,
                ),
                "parameters": [
                    {
                        "name": "cl_ord_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
            }
        },
        "/api/batches": {
            "post": _op(
                "submit a staged batch of orders for one account, processed in sequence",
                {
                    "type": "object",
                    "required": ["account", "orders"],
                    "properties": {
                        "account": {"type": "string"},
                        "orders": {"type": "array", "maxItems": 200, "items": _ORDER},
                    },
                },
                "202",
            )
        },
        "/api/risk/accounts": {"get": _op("risk: every account's exposure and cut-loss distance")},
        "/api/risk/accounts/{account}/enable": {
            "post": _op("risk officers: re-enable an account a cut-loss breach blocked")
        },
        "/api/recon/breaks": {"get": _op("risk and auditors: reconciliation breaks, newest first")},
        "/api/surveillance/alerts": {
            "get": _op("risk and auditors: surveillance alerts (latest per alert id), newest first")
        },
        "/api/access-audit": {
            "get": {
                **_op("risk and auditors: refused attempts, newest first"),
                "parameters": [
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 1000}}
                ],
            }
        },
        "/api/users": {"get": _op("admins: the users, their roles, firms and state")},
        "/api/openapi.json": {"get": {**_op("this description"), "security": []}},
        "/api/health": {"get": {**_op("readiness: 200 once the state is rebuilt"), "security": []}},
    },
}
