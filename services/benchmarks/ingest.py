"""Ingest throughput, pending image -> searchable, against the bare model on the same images.

The real pipeline in its embedded shape (what ``lookalike run`` runs): SQLite catalog, the
serverless SQLite broker, Qdrant Edge, and the in-process Celery consumer with the threads pool.
The demo shop serves the images on 127.0.0.1 from a separate process (its image cache warmed,
so the shop's own rendering does not compete for the cores). Timing starts when the ids are
enqueued and stops when the catalog has no pending or processing image left; every point is
then counted in the index.

Both run the embedding a new catalog starts with (``embedder.model``'s default).
"Bare" is ``Embedder.embed`` on the same JPEG bytes already in memory, same model, same batch
size, decode included: the ceiling the pipeline is compared with. It is measured right before
and right after each pipeline run (the mean is reported), as other load on the machine moves
both figures.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from services.benchmarks import Figures, benchmark
from shared.settings import EmbedderSettings

N_IMAGES = 5000
BARE_IMAGES = 1024
CONCURRENCY = (1, 2)
MODEL = EmbedderSettings().model

_SHOP = """
import sys
from services.demo_shop.catalog import DemoCatalog
from services.demo_shop.server import DemoShop
n = int(sys.argv[1])
shop = DemoShop(DemoCatalog.generate(n, seed=0), port=0, image_cache_size=4 * n)
shop.serve_forever(on_ready=lambda url: print(url, flush=True))
"""


def _start_shop(n_products: int) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", _SHOP, str(n_products)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    if not url:
        process.kill()
        raise RuntimeError("the demo shop did not start")
    return process, url


def _catalog_items(n_images: int, shop_url: str) -> list[object]:
    """Demo products (with their image URLs on the running shop) totalling ``n_images``."""
    from services.demo_shop import pages
    from services.demo_shop.catalog import DemoCatalog
    from shared.db import ImageIn, ProductIn

    items: list[object] = []
    total = 0
    for product in DemoCatalog.generate(n_images, seed=0).products:
        if total >= n_images:
            break
        views = product.views[: n_images - total]
        total += len(views)
        items.append(
            ProductIn(
                canonical_url=shop_url + pages.product_path(product),
                title=product.title,
                brand=product.brand,
                price=product.price,
                currency=product.currency,
                category=product.category,
                images=tuple(
                    ImageIn(url=shop_url + pages.image_path(product, view), view=view)
                    for view in views
                ),
            )
        )
    return items


def _fetch_all(urls: list[str]) -> list[bytes]:
    import httpx

    with httpx.Client(timeout=30, trust_env=False) as client:
        return [client.get(url).content for url in urls]


def _bare(jpegs: list[bytes], models_dir: Path, batch: int) -> float:
    from services.embedder.inference import Embedder

    embedder = Embedder(MODEL, batch_size=batch, onnx_cache=models_dir / "onnx").load()
    embedder.embed(jpegs[:batch])  # warm up
    started = time.perf_counter()
    embedder.embed(jpegs)
    rate = len(jpegs) / (time.perf_counter() - started)
    embedder.close()
    return rate


def _pipeline(
    items: list[object], workdir: Path, models_dir: Path, concurrency: int
) -> tuple[float, int, int]:
    """Images/s from enqueue to the last image done, with the points and crops counted."""
    from services.ingest.tasks import InProcessWorker
    from shared.db import Catalog, ImageState, ProductIn, SourceIn
    from shared.index_layout import ALIAS
    from shared.queue import enqueue_images
    from shared.settings import Settings
    from shared.vectors import open_index

    data = workdir / f"ingest-{concurrency}"
    data.mkdir()
    (data / "models").symlink_to(models_dir)
    settings = Settings(
        data_dir=data,
        worker_concurrency=concurrency,
        embedder=EmbedderSettings(model=MODEL),
    )
    catalog = Catalog.from_settings(settings)
    catalog.migrate()
    shop = items[0]
    assert isinstance(shop, ProductIn)
    base = shop.canonical_url.split("/product/")[0]
    source = catalog.upsert_source(
        SourceIn(
            name="demo-shop",
            base_url=base,
            config={"allow_private_addresses": True, "demo": True},
        )
    )
    ids: list[int] = []
    for start in range(0, len(items), 200):
        chunk = [item for item in items[start : start + 200] if isinstance(item, ProductIn)]
        ids += catalog.upsert_products(source.id, chunk).new_image_ids
    index = open_index(None, settings.qdrant_path)
    worker = InProcessWorker(settings, catalog, index, sweep_every_s=3600).start()
    try:
        if not worker.wait_ready(300):
            raise RuntimeError("the ingest consumer did not start")
        started = time.perf_counter()
        enqueue_images(ids, settings)
        while True:
            counts = catalog.image_state_counts()
            if counts[ImageState.PENDING] + counts[ImageState.PROCESSING] == 0:
                break
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
    finally:
        worker.stop()
    done = catalog.image_state_counts()[ImageState.DONE]
    points = index.count(ALIAS)
    index.close()
    catalog.dispose()
    return done / elapsed, done, points


@benchmark(
    "ingest",
    f"Pending image -> searchable: {N_IMAGES} demo-shop images (400x500 JPEG, served on "
    "127.0.0.1 by a separate process) through the real pipeline in its embedded shape (SQLite "
    "catalog, SQLite broker, Qdrant Edge, in-process Celery consumer, threads pool with 1 or 2 "
    f"tasks at once), the default embedding {MODEL}, batch 32; bare = Embedder.embed on the same "
    f"JPEG bytes in memory ({BARE_IMAGES} images, decode included). Target: ingest >= 75% of bare.",
)
def ingest_throughput() -> Figures:
    from shared.settings import Settings

    batch = Settings().ingest.batch_size
    figures: Figures = {"images": N_IMAGES, "batch_size": batch}
    with tempfile.TemporaryDirectory(prefix="lookalike-bench-ingest-") as tmp:
        workdir = Path(tmp)
        models_dir = workdir / "models"
        models_dir.mkdir()
        shop, url = _start_shop(N_IMAGES)
        try:
            items = _catalog_items(N_IMAGES, url)
            urls = [image.url for item in items for image in getattr(item, "images", ())]
            jpegs = _fetch_all(urls)[:BARE_IMAGES]  # also warms the shop's image cache
            for concurrency in CONCURRENCY:
                # The bare rate right before and after each run: other load on the machine
                # moves both alike.
                before = _bare(jpegs, models_dir, batch)
                rate, done, points = _pipeline(items, workdir, models_dir, concurrency)
                bare = (before + _bare(jpegs, models_dir, batch)) / 2
                key = f"{concurrency}_tasks"
                figures[f"bare_images_per_s_{key}"] = round(bare, 1)
                figures[f"ingest_images_per_s_{key}"] = round(rate, 1)
                figures[f"ingest_vs_bare_{key}"] = round(rate / bare, 2)
                figures[f"points_{key}"] = points
                if done != len(urls) or points != done:
                    figures[f"incomplete_{key}"] = f"{done} done, {points} points"
        finally:
            os.kill(shop.pid, signal.SIGTERM)
            shop.wait(10)
    return figures
