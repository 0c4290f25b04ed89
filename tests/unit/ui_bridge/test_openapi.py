"""The OpenAPI description names every API route the app serves."""

from __future__ import annotations

from starlette.routing import Route

from sampan.ui_bridge.app import route_table
from sampan.ui_bridge.openapi import OPENAPI


def test_every_api_route_is_described() -> None:
    routes = route_table()
    served = {r.path for r in routes if isinstance(r, Route) and r.path.startswith("/api/")}
    assert served == set(OPENAPI["paths"])
    for path, route in ((r.path, r) for r in routes if isinstance(r, Route)):
        if path in OPENAPI["paths"]:
            methods = {m.lower() for m in route.methods or ()} - {"head"}
            assert methods == set(OPENAPI["paths"][path]), path
