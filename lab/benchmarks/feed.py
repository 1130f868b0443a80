"""Feed ingestion: a 5,000-product demo shop read from its Shopify ``products.json`` and from its
Google Merchant ``feed.xml`` into Postgres, before images (target: under 60 s each).

The shop is served from this process; each feed run is a ``python -m services.scraper crawl``
process, as the scheduler starts it, into a scratch Postgres database. Each feed is then read
again unchanged (every request answered ``304``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from lab.benchmarks import Figures, benchmark, scratch_postgres
from lab.benchmarks.crawl import timed_crawl
from services.demo_shop import DemoCatalog, DemoShop
from services.scraper.schemas import SourceDefinition
from shared.db import Catalog
from shared.settings import Settings

N_PRODUCTS = 5_000
TARGET_S = 60.0


def _measure(url: str, data_dir: Path) -> Figures:
    catalog = Catalog(url)
    catalog.migrate()
    settings = Settings(database_url=url, data_dir=data_dir, log_level="WARNING")
    settings.ensure_dirs()
    shop_catalog = DemoCatalog.generate(N_PRODUCTS, seed=0)
    in_stock = sum(product.availability != "OutOfStock" for product in shop_catalog)
    figures: Figures = {
        "products": N_PRODUCTS,
        "in_stock": in_stock,
        "load_average_1min": round(os.getloadavg()[0], 2),  # other work on the machine
    }
    with DemoShop(shop_catalog, image_cache_size=16) as shop:
        for kind, path, extra in (
            ("shopify", "/products.json", {"currency": "EUR"}),
            ("merchant", "/feed.xml", {}),
        ):
            name = f"bench-{kind}"
            definition = SourceDefinition.model_validate(
                {
                    "name": name,
                    "feed_url": shop.url + path,
                    "allow_private_addresses": True,
                    **extra,
                }
            )
            catalog.upsert_source(definition.to_source_in())
            wall, run = timed_crawl(name, settings, catalog, data_dir / f"{name}-1.log")
            report = run.stats.get("feed_report", {})
            if report.get("added") != N_PRODUCTS:
                raise RuntimeError(f"{name} added {report.get('added')}, not {N_PRODUCTS}")
            again_wall, again = timed_crawl(name, settings, catalog, data_dir / f"{name}-2.log")
            if again.stats.get("outcome") != "feed not modified since the last run":
                raise RuntimeError(f"{name}: the unchanged feed was read again: {again.stats}")
            figures.update(
                {
                    f"{kind}_wall_s": round(wall, 2),
                    f"{kind}_in_process_s": round(float(run.stats["duration_s"]), 2),
                    f"{kind}_products_per_s": round(N_PRODUCTS / wall, 1),
                    f"{kind}_requests": run.pages,
                    f"{kind}_unchanged_rerun_wall_s": round(again_wall, 2),
                    f"{kind}_under_{int(TARGET_S)}_s": "yes" if wall < TARGET_S else "no",
                }
            )
    catalog.dispose()
    return figures


@benchmark(
    "feed",
    f"A {N_PRODUCTS:,}-product demo shop read from its Shopify products.json (20 pages of 250) "
    "and from its Merchant feed.xml into Postgres by `python -m services.scraper crawl` "
    "(process start included; images only enqueued), then again unchanged (304). "
    f"Target: < {TARGET_S:.0f} s for 5,000 items before images.",
)
def feed_ingestion() -> Figures:
    with scratch_postgres() as url, tempfile.TemporaryDirectory() as tmp:
        if url is None:
            return {"postgres": "not reachable, skipped"}
        return _measure(url, Path(tmp))
