"""`sampan ui --tls`: HTTPS only, with the local CA's certificate (on a stack created without
security, a certificate made for the test and given with --certfile/--keyfile), Secure and
HttpOnly cookies, HSTS and the content security policy."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from conftest import PASSWORD, UiProc

from sampan import stack_security
from sampan.config import settings
from sampan.credentials import LocalSecurity
from sampan.ui_bridge.store import Store

pytestmark = pytest.mark.integration


def test_the_screen_over_tls(start_ui: Callable[..., UiProc], users: Store, tmp_path: Path) -> None:
    certs = None
    if not LocalSecurity.of(settings().state_dir).present():
        certs = LocalSecurity(tmp_path / "tls")
        certs.root.mkdir(mode=0o700)
        stack_security.make_certificates(certs)
    ui = start_ui(tls=True, certs=certs)
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
