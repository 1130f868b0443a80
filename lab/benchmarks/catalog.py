"""Catalog DB API throughput: product upserts (the scraper's write path) and image claims
(the ingest workers' queue), on SQLite and, when reachable, Postgres."""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from lab.benchmarks import Figures, benchmark, scratch_postgres
from shared.db import Catalog, ImageIn, ProductIn, SourceIn

N_PRODUCTS = 5_000
BATCH = 100


def _items(offset: int, count: int) -> list[ProductIn]:
    return [
        ProductIn(
            canonical_url=f"https://bench.example/p/{n}",
            title=f"Product {n}",
            brand=f"Brand {n % 40}",
            price=Decimal(n % 200) + Decimal("0.99"),
            currency="EUR",
            category=("tops", "pants", "dresses", "bags")[n % 4],
            images=(
                ImageIn(url=f"https://bench.example/i/{n}-0.jpg", view="front"),
                ImageIn(url=f"https://bench.example/i/{n}-1.jpg", view="back"),
            ),
        )
        for n in range(offset, offset + count)
    ]


def _claim_worker(url: str, start: Any, out: Any) -> None:
    catalog = Catalog(url)
    catalog.stats()
    start.wait()
    claimed = 0
    while batch := catalog.claim_images(f"bench-{os.getpid()}", limit=32):
        claimed += len(batch)
    out.put(claimed)


def _measure(url: str, prefix: str) -> Figures:
    catalog = Catalog(url)
    catalog.migrate()
    source = catalog.upsert_source(SourceIn(name="bench", base_url="https://bench.example"))
    batches = [_items(i, BATCH) for i in range(0, N_PRODUCTS, BATCH)]

    started = time.perf_counter()
    for batch in batches:
        catalog.upsert_products(source.id, batch)
    insert_s = time.perf_counter() - started

    started = time.perf_counter()
    for batch in batches:
        catalog.upsert_products(source.id, batch)
    unchanged_s = time.perf_counter() - started

    context = multiprocessing.get_context("spawn")
    start, out = context.Barrier(3), context.Queue()
    workers = [context.Process(target=_claim_worker, args=(url, start, out)) for _ in range(2)]
    for worker in workers:
        worker.start()
    start.wait()
    started = time.perf_counter()
    claimed = sum(out.get(timeout=600) for _ in workers)
    claim_s = time.perf_counter() - started
    for worker in workers:
        worker.join()
    catalog.dispose()
    return {
        f"{prefix}_new_products_per_s": round(N_PRODUCTS / insert_s),
        f"{prefix}_unchanged_products_per_s": round(N_PRODUCTS / unchanged_s),
        f"{prefix}_claims_per_s_2_workers_batch_32": round(claimed / claim_s),
    }


@benchmark(
    "catalog",
    f"{N_PRODUCTS:,} products x 2 images: upserts in batches of {BATCH}, "
    "then 2 processes claiming every image in batches of 32.",
)
def catalog_throughput() -> Figures:
    figures: Figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        figures.update(_measure(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}", "sqlite"))
    with scratch_postgres() as url:
        if url is None:
            figures["postgres"] = "not reachable, skipped"
        else:
            figures.update(_measure(url, "postgres"))
    return figures
