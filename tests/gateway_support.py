"""A live gateway for tests that need a real HTTP server: uvicorn on a free 127.0.0.1 port,
served as ``python -m services.gateway`` serves it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from services.gateway.app import create_app
from shared.db import Catalog
from shared.settings import GatewaySettings, ImageSettings, Settings
from tests.stack import free_port

LIMIT = 100_000
"""The tests' upload limit; the gateway allows this plus 256 KiB of multipart framing."""


NO_SERVICE = "http://127.0.0.1:9"
"""The detector and embedder as services that do not answer: nothing here needs a model (a
photo would get a 503), and no model loads."""


def gateway_settings(data_dir: Path, **gateway: object) -> Settings:
    return Settings(
        _env_file=None,
        data_dir=data_dir,
        detector_url=NO_SERVICE,
        embedder_url=NO_SERVICE,
        images=ImageSettings(max_upload_bytes=LIMIT),
        gateway=GatewaySettings(**gateway),  # type: ignore[arg-type]
    )


@contextmanager
def serve(settings: Settings, catalog: Catalog) -> Iterator[str]:
    """The gateway's base URL while it runs."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings, catalog=catalog),
        host="127.0.0.1",
        port=port,
        log_config=None,
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the gateway did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
