"""Fixtures for the screen's integration tests: a private users schema, users, and `sampan ui`
as a process on a free port, with the simulated HKEX, the matcher and the router of the
router's harness."""

from __future__ import annotations

import json
import socket
import ssl
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "router"))

from router_harness import Proc, state_dir

from sampan.config import Settings, settings
from sampan.credentials import LocalSecurity
from sampan.ui_bridge.auth import Role
from sampan.ui_bridge.store import Store, drop_schema, migrate

PASSWORD = "a long test password"
READY_S = 90.0


@pytest.fixture
def ui_schema(env_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"ui_t{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("SAMPAN_UI_SCHEMA", name)
    migrate(env_settings, name)
    yield name
    drop_schema(env_settings, name)


@pytest.fixture
def users(env_settings: Settings, ui_schema: str) -> Store:
    store = Store(env_settings, ui_schema)
    store.add_user("alice", PASSWORD, Role.TRADER, "M1")
    store.add_user("bob", PASSWORD, Role.TRADER, "M2")
    store.add_user("rita", PASSWORD, Role.RISK, None)
    store.add_user("audrey", PASSWORD, Role.AUDITOR, None)
    return store


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class UiProc:
    def __init__(
        self, directory: Path, tls: bool = False, certs: LocalSecurity | None = None
    ) -> None:
        """`tls`: `sampan ui --tls` with the certificate of `certs` (default: the stack's)."""
        self.port = free_port()
        self.tls = tls
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        local = certs or LocalSecurity.of(settings().state_dir)
        self.verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(local.ca_file)) if tls else True
        )
        args = ["sampan.cli", "ui", "--port", str(self.port)]
        if tls:
            args.append("--tls")
        if tls and certs is not None:
            args += ["--certfile", str(certs.server_cert), "--keyfile", str(certs.server_key)]
        self.proc = Proc("ui", args, directory)
        self.clients: list[httpx.Client] = []

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_S
        while time.monotonic() < deadline:
            assert self.proc.proc is not None
            if self.proc.proc.poll() is not None:
                raise AssertionError(f"sampan ui exited:\n{self.proc.tail()}")
            try:
                health = httpx.get(self.url + "/api/health", timeout=2, verify=self.verify)
                if health.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"sampan ui not ready within {READY_S} s:\n{self.proc.tail()}")

    def login(self, username: str) -> httpx.Client:
        client = httpx.Client(base_url=self.url, timeout=10, verify=self.verify)
        self.clients.append(client)
        response = client.post("/api/login", json={"username": username, "password": PASSWORD})
        assert response.status_code == 200, response.text
        body = response.json()
        client.headers["Authorization"] = f"Bearer {body['token']}"
        client.token = body["token"]  # type: ignore[attr-defined]
        return client

    def ws_url(self, token: str) -> str:
        return f"{'wss' if self.tls else 'ws'}://127.0.0.1:{self.port}/ws?token={token}"


@pytest.fixture
def start_ui(ui_schema: str) -> Iterator[Callable[..., UiProc]]:
    started: list[UiProc] = []
    directory = state_dir()

    def start(tls: bool = False, certs: LocalSecurity | None = None) -> UiProc:
        ui = UiProc(directory, tls, certs)
        started.append(ui)
        ui.wait_ready()
        return ui

    yield start
    for ui in started:
        for client in ui.clients:
            client.close()
        ui.proc.stop()


def ws_messages(
    ws: Any, until: Callable[[dict[str, Any]], bool], timeout_s: float
) -> list[dict[str, Any]]:
    """Messages received until one satisfies `until` (included); fails after `timeout_s`."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            message = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        except TimeoutError:
            break
        got.append(message)
        if until(message):
            return got
    raise AssertionError(f"no matching WebSocket message within {timeout_s} s; got {got[-20:]}")
