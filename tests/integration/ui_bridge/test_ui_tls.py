"""`sampan ui --tls` on a secured stack: HTTPS only, with the local CA's certificate, Secure and
HttpOnly cookies, HSTS and the content security policy."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from conftest import PASSWORD, UiProc

from sampan.config import settings
from sampan.credentials import LocalSecurity
from sampan.ui_bridge.store import Store

pytestmark = pytest.mark.integration


def test_the_screen_over_tls(start_ui: Callable[..., UiProc], users: Store) -> None:
    if not LocalSecurity.of(settings().state_dir).present():
        pytest.skip("the stack was created without security: no local certificate to serve")
    ui = start_ui(tls=True)
    with httpx.Client(base_url=ui.url, verify=ui.verify, timeout=10) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert page.headers["strict-transport-security"] == "max-age=31536000"
        assert "default-src 'self'" in page.headers["content-security-policy"]
        login = client.post("/api/login", json={"username": "alice", "password": PASSWORD})
        assert login.status_code == 200, login.text
        cookies = login.headers.get_list("set-cookie")
        session = next(c for c in cookies if "httponly" in c.lower())
        assert "secure" in session.lower() and "samesite=strict" in session.lower(), cookies
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{ui.port}/api/health", timeout=5)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(ui.url + "/api/health", timeout=5, verify=True)  # the system CAs do not know it
