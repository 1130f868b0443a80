"""A live gateway for tests that need a real HTTP server: uvicorn on a free 127.0.0.1 port,
served as ``python -m services.gateway`` serves it."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from services.gateway.app import create_app
from shared import index_layout
from shared.db import Catalog, ImageResult, ProductOut, UpsertReport
from shared.settings import GatewaySettings, ImageSettings, Settings
from shared.taxonomy import GarmentClass
from shared.vectors import Point
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


def indexed_without_models(catalog: Catalog, report: UpsertReport) -> dict[int, ProductOut]:
    """The products of an upsert as ingest leaves them, without running a model: every new
    image marked done (no crops), the products read back by id."""
    done = ImageResult(content_hash="h", width=10, height=10, n_bytes=1, crops=())
    assert catalog.record_images_done(dict.fromkeys(report.new_image_ids, done)) == []
    return catalog.get_products(report.created)


def crop_point(
    product: ProductOut,
    source: str,
    version: str,
    vectors: dict[str, list[float]],
    *,
    garment: GarmentClass | None,
    colour: tuple[str | None, float | None] = (None, None),
) -> Point:
    """A point for a product's first image, framed whole, with its full payload as ingest
    writes it (:func:`shared.index_layout.crop_payload`)."""
    image = product.images[0]
    payload = index_layout.crop_payload(
        product,
        image_id=image.id,
        image_url=image.url,
        box=(0.0, 0.0, 10.0, 10.0),
        category=None,
        score=None,
        model_version=version,
        source=source,
        garment=garment,
        colour=colour,
    )
    return Point(str(uuid.uuid4()), vectors, payload)
