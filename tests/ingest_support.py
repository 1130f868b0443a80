"""Helpers shared by the ingest tests: demo-shop catalogs, a server of hostile images, a real
``lookalike worker`` process, and waiting for the catalog."""

from __future__ import annotations

import io
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
from PIL import Image

from services.demo_shop.server import DemoShop
from shared.db import Catalog, ImageIn, ProductIn, SourceIn, SourceOut
from shared.db.models import ImageState
from shared.settings import Settings

LOOKALIKE = str(Path(sys.executable).with_name("lookalike"))
SERVICE_VARIABLES = {
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "QDRANT_URL",
}


def demo_source(catalog: Catalog, url: str, name: str = "demo-shop", **config: Any) -> SourceOut:
    """The demo shop as a source; it lives on 127.0.0.1, so private addresses are allowed
    unless ``config`` says otherwise."""
    settings = {"allow_private_addresses": True, "demo": True, **config}
    return catalog.upsert_source(SourceIn(name=name, base_url=url, config=settings))


def demo_items(shop: DemoShop, count: int | None = None) -> list[ProductIn]:
    """Product rows for the shop's products (all their views), as a crawl would write them."""
    products = shop.catalog.products[:count]
    return [
        ProductIn(
            canonical_url=shop.product_url(product),
            title=product.title,
            brand=product.brand,
            price=product.price,
            currency=product.currency,
            category=product.category,
            images=tuple(
                ImageIn(url=shop.image_url(product, view), view=view) for view in product.views
            ),
        )
        for product in products
    ]


def link_models(data_dir: Path, models_dir: Path) -> None:
    """Share one models folder (the exported ONNX model) between data dirs."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "models").symlink_to(models_dir, target_is_directory=True)


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def settled(catalog: Catalog) -> bool:
    """No image pending or processing."""
    counts = catalog.image_state_counts()
    return counts[ImageState.PENDING] + counts[ImageState.PROCESSING] == 0


# --------------------------------------------------------------------------- hostile images


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def bomb_png(side: int = 100_000) -> bytes:
    """A tiny PNG whose header claims ``side`` x ``side`` pixels (a decompression bomb)."""
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _png_chunk(b"IEND", b"")
    )


def jpeg(size: tuple[int, int] = (64, 48), colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "JPEG")
    return buffer.getvalue()


HOSTILE: Mapping[str, tuple[int, bytes, str]] = {
    "/missing.jpg": (404, b"not here", "text/plain"),
    "/page.jpg": (200, b"<html><body>a product page</body></html>", "image/jpeg"),
    "/corrupt.jpg": (200, jpeg()[:200] + b"\x00" * 50, "image/jpeg"),
    "/bomb.png": (200, bomb_png(), "image/png"),
    "/huge.jpg": (200, jpeg()[:-2] + b"\x00" * 300_000 + b"\xff\xd9", "image/jpeg"),
    "/busy.jpg": (503, b"try later", "text/plain"),
    "/ok.jpg": (200, jpeg((120, 160), (30, 30, 200)), "image/jpeg"),
}
"""Path -> (status, body, content type). ``/huge.jpg`` is larger than the tests' byte limit;
``/flaky.jpg`` fails once (503), then serves ``/ok.jpg``."""


class _Hostile(BaseHTTPRequestHandler):
    flaky_requests = 0  # /flaky.jpg answers 503 the first time, then the image

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        status, body, kind = HOSTILE.get(self.path, (404, b"", "text/plain"))
        if self.path == "/flaky.jpg":
            _Hostile.flaky_requests += 1
            status, body, kind = HOSTILE["/busy.jpg" if _Hostile.flaky_requests == 1 else "/ok.jpg"]
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def hostile_server() -> Iterator[str]:
    """Serve :data:`HOSTILE` on 127.0.0.1; yields the base URL."""
    _Hostile.flaky_requests = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.daemon = True
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# ------------------------------------------------------------------------------ processes


def service_env(**values: str) -> dict[str, str]:
    """The test process's environment without Lookalike's variables, plus ``values``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("LOOKALIKE_") and key not in SERVICE_VARIABLES
    }
    env.update(values)
    return env


def server_mode_env(
    settings: Settings,
    postgres_url: str,
    redis_db_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    **values: str,
) -> dict[str, str]:
    """The compose shape's environment for subprocesses: this test's Postgres database, an
    emptied Redis db as the broker, its data dir with the shared exported models, ``values``."""
    redis.Redis.from_url(redis_db_url).flushdb()
    link_models(settings.data_dir, shared_models_dir(tmp_path_factory))
    return service_env(
        DATABASE_URL=postgres_url,
        CELERY_BROKER_URL=redis_db_url,
        LOOKALIKE_DATA_DIR=str(settings.data_dir),
        **values,
    )


class Process:
    """A ``lookalike`` subcommand running in the background, its output in a log file."""

    def __init__(self, args: list[str], env: Mapping[str, str], log: Path) -> None:
        self.log = log
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                [LOOKALIKE, *args],
                env=dict(env),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM (Celery's warm shutdown: running tasks finish), SIGKILL after timeout."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """SIGKILL the process and any children it has (its own session)."""
        if self.alive():
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)


def shared_models_dir(tmp_path_factory: Any) -> Path:
    """One models folder per test session (the ONNX export happens once)."""
    path = Path(tmp_path_factory.getbasetemp()) / "ingest-models"
    path.mkdir(exist_ok=True)
    return path
