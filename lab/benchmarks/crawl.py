"""Crawl throughput: a 5,000-product demo shop on 127.0.0.1 crawled into Postgres, end to end.

The shop is served from this process; the crawl runs as the scheduler runs it, in its own
``python -m services.scraper crawl`` process, into a scratch Postgres database. A second
crawl of the unchanged shop measures a re-crawl (every page revalidated, answered ``304``).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from lab.benchmarks import Figures, benchmark, scratch_postgres
from services.demo_shop import DemoCatalog, DemoShop
from shared.db import Catalog, SourceIn
from shared.db.schemas import CrawlRunOut
from shared.settings import Settings

N_PRODUCTS = 5_000


def timed_crawl(
    name: str, settings: Settings, catalog: Catalog, log: Path
) -> tuple[float, CrawlRunOut]:
    """One crawl as the scheduler runs it; its wall time (process start included) and run."""
    from services.scraper.scheduler import crawl_in_subprocess

    started = time.perf_counter()
    result = crawl_in_subprocess(name, settings, log_path=log, timeout_s=1800)
    wall_s = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"crawl failed (exit {result.returncode}): {log.read_text()[-3000:]}")
    return wall_s, catalog.crawl_runs(catalog.get_source(name).id, limit=1)[0]


def _measure(url: str, data_dir: Path) -> Figures:
    catalog = Catalog(url)
    catalog.migrate()
    settings = Settings(database_url=url, data_dir=data_dir, log_level="WARNING")
    settings.ensure_dirs()
    shop_catalog = DemoCatalog.generate(N_PRODUCTS, seed=0)
    n_images = sum(len(product.views) for product in shop_catalog)
    with DemoShop(shop_catalog, image_cache_size=16) as shop:
        catalog.upsert_source(
            SourceIn(
                name="bench-shop",
                base_url=shop.url,
                config={
                    "start_urls": [shop.url + "/"],
                    "allow_private_addresses": True,
                    "demo": True,
                    "politeness": {"concurrency": 16},
                },
            )
        )
        first_wall, first = timed_crawl("bench-shop", settings, catalog, data_dir / "crawl-1.log")
        shop.stats.reset()
        second_wall, second = timed_crawl("bench-shop", settings, catalog, data_dir / "crawl-2.log")
        if second.stats.get("lookalike/products/unchanged") != N_PRODUCTS:
            raise RuntimeError(f"the re-crawl changed products: {second.stats}")
        not_modified = shop.stats.by_status().get(304, 0)
    stats = catalog.stats()
    catalog.dispose()
    if stats.products_active != N_PRODUCTS:
        raise RuntimeError(f"crawl stored {stats.products_active} products, not {N_PRODUCTS}")
    rows = N_PRODUCTS + n_images
    return {
        "products": N_PRODUCTS,
        "image_rows": n_images,
        "pages_first_crawl": first.pages,
        "product_pages_per_s": round(N_PRODUCTS / first_wall, 1),
        "rows_per_s": round(rows / first_wall, 1),
        "first_crawl_wall_s": round(first_wall, 2),
        "first_crawl_in_process_s": round(float(first.stats["duration_s"]), 2),
        "recrawl_product_pages_per_s": round(N_PRODUCTS / second_wall, 1),
        "recrawl_wall_s": round(second_wall, 2),
        "recrawl_304_responses": not_modified,
    }


@benchmark(
    "crawl",
    f"A {N_PRODUCTS:,}-product demo shop on 127.0.0.1 crawled into Postgres by "
    "`python -m services.scraper crawl` (process start included), then re-crawled unchanged "
    "(304s). Target: >= 150 product pages/s on 2 cores.",
)
def crawl_throughput() -> Figures:
    with scratch_postgres() as url, tempfile.TemporaryDirectory() as tmp:
        if url is None:
            return {"postgres": "not reachable, skipped"}
        return _measure(url, Path(tmp))
