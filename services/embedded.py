"""The embedded stack: every service of Lookalike in one process, with no servers to install.

``lookalike run`` migrates the SQLite catalog in the data dir, serves the generated demo shop
(when no real shop is configured) and registers it as a source, runs the crawl scheduler
(each due source is crawled in a child process), and serves the gateway.
Setting DATABASE_URL / REDIS_URL / QDRANT_URL points the same code at real servers.

The embedded vector index (Qdrant Edge) can be opened by one process only, so this process
owns it: the ingest consumer (a Celery worker with the solo pool, on a background thread) and
the sweeper run here too, and the gateway gets the same index object (``app.state.index``).
"""

from __future__ import annotations

import logging
from contextlib import ExitStack

import uvicorn

from services.demo_shop.catalog import DemoCatalog
from services.demo_shop.server import DemoShop
from services.embedder.tasks import InProcessWorker
from services.gateway.app import create_app
from services.scraper.scheduler import Scheduler
from services.scraper.settings import get_scraper_settings
from shared.db import Catalog, SourceIn
from shared.settings import Settings
from shared.vectors import open_index

log = logging.getLogger(__name__)

DEMO_SOURCE = "demo-shop"


def wants_demo_shop(catalog: Catalog) -> bool:
    """True when the only sources (if any) are the demo shop itself."""
    return all(source.name == DEMO_SOURCE for source in catalog.list_sources())


def register_demo_source(catalog: Catalog, shop_url: str) -> None:
    catalog.upsert_source(
        SourceIn(
            name=DEMO_SOURCE,
            base_url=shop_url,
            config={
                "start_urls": [shop_url],
                # The demo shop lives on 127.0.0.1; real sources never get this by default.
                "allow_private_addresses": True,
                "demo": True,
            },
        )
    )


def run(settings: Settings, *, demo_products: int, demo_port: int, seed: int) -> None:
    """Run until interrupted (Ctrl-C)."""
    settings.ensure_dirs()
    catalog = Catalog.from_settings(settings)
    catalog.migrate()
    log.info("catalog: %s (%s mode)", catalog.engine.url.render_as_string(), settings.mode)
    with ExitStack() as stack:
        if wants_demo_shop(catalog):
            demo = DemoCatalog.generate(demo_products, seed=seed)
            shop = stack.enter_context(DemoShop(demo, host="127.0.0.1", port=demo_port))
            register_demo_source(catalog, shop.url)
            log.info("demo shop with %d products at %s", demo_products, shop.url)
        index = open_index(settings.qdrant_url, settings.qdrant_path, settings.qdrant_api_key)
        stack.callback(index.close)
        stack.enter_context(InProcessWorker(settings, catalog, index))
        scheduler = Scheduler(settings, get_scraper_settings(), catalog)
        scheduler.run_in_background()
        stack.callback(scheduler.stop)
        app = create_app(settings, catalog=catalog)
        app.state.index = index  # one index object for ingest and search in this process
        log.info("Lookalike at http://%s:%d/", settings.host, settings.port)
        uvicorn.run(
            app, host=settings.host, port=settings.port, log_config=None, proxy_headers=False
        )
    catalog.dispose()
