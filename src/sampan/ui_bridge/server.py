"""`sampan ui`: the server's life. Rebuild the state from the topics, then listen; stop cleanly.

Guarantees: the listening socket opens only after the follower has read every followed topic to
the end the broker reported (uvicorn binds after the lifespan's startup, which waits for it, at
most `READY_TIMEOUT_S`, else the server exits with the reason); users' disabled flags and
sessions ended by logout are re-read every `REFRESH_S`, so `sampan users disable` takes effect
on a running server within that time; the access audit trail is relayed to `ui.access`
(`access_relay`: at start, every `RELAY_S`, and a last pass on the way out); the producer is
flushed on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sampan.config import Settings
from sampan.errors import SampanError
from sampan.ui_bridge import access_relay
from sampan.ui_bridge.app import Ui, build_app
from sampan.ui_bridge.auth import SessionCodec
from sampan.ui_bridge.hub import Hub
from sampan.ui_bridge.kafka_io import Follower, Sender, hk_day_start_ns
from sampan.ui_bridge.state import View
from sampan.ui_bridge.store import Store, migrate

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 120.0
REFRESH_S = 5.0
WS_FRAME_BYTES_MAX = (
    16 * 1024 * 1024
)  # larger frames close the socket (1009); the app caps at 64 KiB


def session_secret() -> str:
    """SAMPAN_UI_SECRET, or a random secret (sessions then end when the server restarts)."""
    configured = os.environ.get("SAMPAN_UI_SECRET", "")
    if configured:
        if len(configured) < 32:
            raise SampanError("SAMPAN_UI_SECRET must have at least 32 characters")
        return configured
    return secrets.token_urlsafe(32)


def make_ui(settings: Settings, schema: str, secure_cookies: bool = False) -> tuple[Ui, Sender]:
    migrate(settings, schema)
    view = View(day_start_ns=hk_day_start_ns(time.time_ns()))
    sender = Sender(settings)
    ui = Ui(
        view=view,
        hub=Hub(view),
        store=Store(settings, schema),
        codec=SessionCodec(session_secret()),
        sink=sender,
        secure_cookies=secure_cookies,
    )
    return ui, sender


async def _refresh(ui: Ui) -> None:
    while True:
        try:
            ui.disabled = await asyncio.to_thread(ui.store.disabled_users)
            ui.revoked |= await asyncio.to_thread(ui.store.revoked, int(time.time()))
        except Exception as failure:  # keep serving on the last known sets; say so
            log.warning("ui: re-reading users and sessions failed: %s", failure)
        await asyncio.sleep(REFRESH_S)


def relay_of(ui: Ui, sender: Sender, settings: Settings) -> access_relay.Relay:
    """The access audit relay: the store's rows to `ui.access` through the server's producer."""

    async def read_tail() -> int:
        return await asyncio.to_thread(access_relay.highest_published, settings)

    async def rows(after_id: int, limit: int) -> list[dict[str, Any]]:
        return await asyncio.to_thread(ui.store.audit_after, after_id, limit)

    async def send(key: str, record: dict[str, Any]) -> None:
        await sender.send(access_relay.TOPIC, key, access_relay.SCHEMA, record)

    return access_relay.Relay(read_tail, rows, send)


def lifespan_of(ui: Ui, sender: Sender, settings: Settings) -> Any:
    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        follower = Follower(settings, loop, ui.hub.on_batch, ui.view.day_start_ns)
        ui.failure = lambda: follower.failed
        follower.start()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not ui.hub.ready:
            if follower.failed:
                raise SampanError(follower.failed)
            if time.monotonic() > deadline:
                raise SampanError(
                    f"the state was not rebuilt from the topics within {READY_TIMEOUT_S:.0f} s"
                )
            await asyncio.sleep(0.05)
        ui.disabled = await asyncio.to_thread(ui.store.disabled_users)
        ui.revoked = await asyncio.to_thread(ui.store.revoked, int(time.time()))
        relay = relay_of(ui, sender, settings)
        relay_stopping = asyncio.Event()
        relaying = asyncio.create_task(access_relay.run(relay, relay_stopping))
        tasks = [asyncio.create_task(_refresh(ui))]
        log.info(
            "ui: ready: %d instruments, %d accounts, %d depth books",
            len(ui.view.instruments),
            len(ui.view.accounts),
            len(ui.view.depth),
        )
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            relay_stopping.set()
            try:
                await asyncio.wait_for(relaying, access_relay.FINAL_PASS_S)
            except TimeoutError:
                log.warning("ui: the access audit relay did not stop within its bound")
            await access_relay.final_pass(relay)
            await asyncio.to_thread(follower.stop)
            await asyncio.to_thread(sender.close)

    return lifespan


def serve(
    settings: Settings,
    schema: str,
    host: str,
    port: int,
    secure_cookies: bool = False,
    tls: tuple[Path, Path] | None = None,
) -> int:
    """Serve the screen; with `tls` (certificate and key files) over HTTPS and WSS only, with
    Secure cookies and HSTS."""
    import uvicorn

    ui, sender = make_ui(settings, schema, secure_cookies or tls is not None)
    app = build_app(ui, lifespan_of(ui, sender, settings))
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        ws_max_size=WS_FRAME_BYTES_MAX,
        # Compression would deflate every message once per client (each has its own context):
        # the fan-out would cost a deflate per client per update.
        ws_per_message_deflate=False,
        log_level="info",
        lifespan="on",
        access_log=False,
        timeout_graceful_shutdown=5,
        ssl_certfile=str(tls[0]) if tls else None,
        ssl_keyfile=str(tls[1]) if tls else None,
    )
    server = uvicorn.Server(config)
    print(f"sampan ui: {'https' if tls else 'http'}://{host}:{port}/", flush=True)
    server.run()
    return 0 if server.started else 2
