"""``lookalike run`` on embedded defaults ingests what is enqueued: its in-process consumer
reads the SQLite broker and writes the Qdrant Edge index that the process owns."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from services.demo_shop import pages
from services.demo_shop.catalog import DemoCatalog
from shared import index_layout
from shared.db import Catalog, ImageIn, ProductIn
from shared.db.models import ImageState
from shared.queue import enqueue_images
from shared.settings import Settings
from shared.vectors import EdgeIndex
from tests.ingest_support import (
    LOOKALIKE,
    Process,
    link_models,
    service_env,
    settled,
    shared_models_dir,
    wait_for,
)
from tests.stack import free_port

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning"),
]

PRODUCTS = 6


def test_run_ingests_enqueued_images(
    settings: Settings, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    data = settings.data_dir
    link_models(data, shared_models_dir(tmp_path_factory))
    port, shop_port = free_port(), free_port()
    env = service_env(LOOKALIKE_DATA_DIR=str(data))
    run = Process(
        [
            "run",
            "--port",
            str(port),
            "--demo-port",
            str(shop_port),
            "--demo-products",
            str(PRODUCTS),
        ],
        env,
        tmp_path / "run.log",
    )
    try:

        def healthy() -> bool:
            assert run.alive(), run.output()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).is_success
            except httpx.HTTPError:
                return False

        wait_for(healthy, 90, "lookalike run to start")
        catalog = Catalog.from_settings(settings)
        source = catalog.list_sources()[0]  # the demo shop, registered by `run`
        shop = f"http://127.0.0.1:{shop_port}"
        items = [
            ProductIn(
                canonical_url=shop + pages.product_path(product),
                title=product.title,
                brand=product.brand,
                price=product.price,
                currency=product.currency,
                category=product.category,
                images=tuple(
                    ImageIn(url=shop + pages.image_path(product, view), view=view)
                    for view in product.views
                ),
            )
            for product in DemoCatalog.generate(PRODUCTS, seed=0).products
        ]
        ids = catalog.upsert_products(source.id, items).new_image_ids
        assert enqueue_images(ids, settings)  # the serverless SQLite broker in the data dir
        wait_for(lambda: settled(catalog), 180, f"ingest:\n{run.output()}")
        status = subprocess.run(
            [LOOKALIKE, "ingest-status", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        body = json.loads(status.stdout)
        assert body["images"]["done"] == len(ids)
        assert body["queues"]["ingest"] == 0
    finally:
        run.stop()
    assert catalog.image_state_counts()[ImageState.DONE] == len(ids)
    catalog.dispose()
    assert settings.qdrant_path is not None
    index = EdgeIndex(settings.qdrant_path)  # free again now that `run` has exited
    try:
        assert index.count(index_layout.ALIAS) == len(ids)
    finally:
        index.close()
