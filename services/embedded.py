"""The embedded stack: every service of Lookalike in one process, with no servers to install.

``lookalike run`` migrates the SQLite catalog in the data dir, serves the generated demo shop
(on a first run, and on every start while its source is enabled) and registers it as a
source, runs the crawl scheduler
(each due source is crawled in a child process), and serves the gateway.
Setting DATABASE_URL / REDIS_URL / QDRANT_URL points the same code at real servers.

The embedded vector index (Qdrant Edge) can be opened by one process only, so this process
owns it: the ingest consumer (a Celery worker with the threads pool, on a background thread)
and the sweeper run here too, and the gateway gets the same index object
(``app.state.index``) and the consumer (``app.state.ingest``, for ``/readyz``).

It talks like a product: a short line per step (catalog, demo shop, models, crawl and
indexing progress) and one ``ready`` line with the URL and the counts; Scrapy and Celery keep
their own chatter to warnings unless ``--verbose``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from contextlib import ExitStack
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

from fastapi import FastAPI

from services.demo_shop.catalog import DemoCatalog
from services.demo_shop.server import DemoShop
from services.gateway.app import create_app
from services.ingest.reindex import ReindexJobs
from services.ingest.tasks import InProcessWorker
from services.scraper.scheduler import Scheduler
from shared import index_holder
from shared.db import Catalog, SourceIn
from shared.netsafe import host_port
from shared.settings import Settings
from shared.vectors import open_index
from shared.web import ensure_port_free, serve

log = logging.getLogger("lookalike")

DEMO_SOURCE = "demo-shop"
PORT_SETTING = "LOOKALIKE_PORT (or --port)"
DEMO_PORT_SETTING = "LOOKALIKE_DEMO_PORT (or --demo-port)"
CHATTY_LOGGERS = ("celery", "kombu", "uvicorn.error", "services.demo_shop")
"""Loggers kept to warnings unless ``--verbose``: their INFO lines are for debugging."""


def wants_demo_shop(catalog: Catalog) -> bool:
    """True on a first run (no source yet) and, on every start after it, while the demo-shop
    source is enabled: its products' pictures are served by this process. A disabled or
    removed demo (with another shop registered) is not served."""
    sources = catalog.list_sources()
    return not sources or any(s.name == DEMO_SOURCE and s.enabled for s in sources)


def register_demo_source(catalog: Catalog, shop_url: str) -> None:
    catalog.upsert_source(
        SourceIn(
            name=DEMO_SOURCE,
            base_url=shop_url,
            config={
                "start_urls": [shop_url],
                # The demo shop lives on 127.0.0.1: exactly its address may be crawled.
                "allow_private_hosts": [_host_port(shop_url)],
                "demo": True,
            },
        )
    )


def demo_gateway_settings(settings: Settings, shop_url: str) -> Settings:
    """Let ``image_url`` reach the demo shop's own pictures (exactly its ``host:port``)."""
    gateway = settings.gateway
    hosts = [*gateway.allow_private_image_hosts, _host_port(shop_url)]
    allowed = gateway.model_copy(update={"allow_private_image_hosts": hosts})
    return settings.model_copy(update={"gateway": allowed})


def _host_port(url: str) -> str:
    parts = urlsplit(url)
    return host_port(f"{parts.hostname}:{parts.port}")


def quiet_logs(verbose: bool) -> None:
    """Keep third-party chatter (and the crawl processes' Scrapy) to warnings unless verbose."""
    if verbose:
        os.environ.setdefault("LOOKALIKE_SCRAPER__SCRAPY_LOG_LEVEL", "INFO")
        return
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


class Progress:
    """Reports the start-up on a background thread: models loaded, crawl and indexing counts
    as they change, and one ``ready`` line once searches are answered and the catalog is
    indexed."""

    def __init__(
        self,
        catalog: Catalog,
        app: FastAPI,
        worker: InProcessWorker,
        scheduler: Scheduler,
        url: str,
        *,
        every_s: float = 3.0,
    ) -> None:
        self.catalog, self.app, self.worker, self.scheduler = catalog, app, worker, scheduler
        self.url = url
        self.every_s = every_s
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
        self._said: tuple[int, ...] = ()
        self._models_said = False
        self.ready_said = False

    def _run(self) -> None:
        # Every few seconds while the stack comes up; once it said ready, only now and then
        # (later crawls), so an idle stack does not keep reading the catalog.
        while not self._stop.wait(self.every_s * (10 if self.ready_said else 1)):
            try:
                self.report()
            except Exception as exc:  # noqa: BLE001 - progress lines must never stop the stack
                log.debug("progress report failed: %s", exc)

    def report(self) -> None:
        warmup = getattr(self.app.state, "warmup", None)
        if warmup is not None and warmup.ready and not self._models_said:
            self._models_said = True
            log.info("models loaded in %.1f s", warmup.seconds or 0.0)
        stats = self.catalog.stats()
        progress = self.catalog.ingest_progress()
        crawling = self.scheduler.crawling()
        counts = (stats.products_active, progress.total, progress.done, len(crawling))
        if counts != self._said and stats.products_active:
            self._said = counts
            failed = progress.total - progress.done - progress.waiting
            line = f"catalog: {stats.products_active} products; indexed {progress.done}"
            line += f" of {progress.total} images"
            if failed:
                line += f" ({failed} failed)"
            if crawling:
                line += f"; crawling {', '.join(crawling)}"
            log.info("%s", line)
        settled = not crawling and progress.total > 0 and progress.waiting == 0
        searching = warmup is not None and warmup.ready and self.worker.alive
        if settled and searching and not self.ready_said:
            self.ready_said = True
            log.info(
                "ready: %s  (%d products, %d of %d images indexed, %.0f s after start)",
                self.url,
                stats.products_active,
                progress.done,
                progress.total,
                time.monotonic() - self.started,
            )

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()


def run(settings: Settings, *, demo_products: int, seed: int, verbose: bool = False) -> None:
    """Run until interrupted (Ctrl-C). Busy ports are reported before any work starts."""
    quiet_logs(verbose)
    ensure_port_free(settings.host, settings.port, PORT_SETTING)
    settings.ensure_dirs()
    catalog = Catalog.from_settings(settings)
    catalog.migrate()
    log.info("catalog: %s (%s mode)", catalog.engine.url.render_as_string(), settings.mode)
    url = f"http://{settings.host}:{settings.port}/"
    with ExitStack() as stack:
        if wants_demo_shop(catalog):
            ensure_port_free("127.0.0.1", settings.demo_port, DEMO_PORT_SETTING)
            demo = DemoCatalog.generate(demo_products, seed=seed)
            shop = stack.enter_context(DemoShop(demo, host="127.0.0.1", port=settings.demo_port))
            register_demo_source(catalog, shop.url)
            log.info("demo shop: %d products at %s/", demo_products, shop.url)
            settings = demo_gateway_settings(settings, shop.url)
        index = open_index(
            settings.qdrant_url,
            settings.qdrant_path,
            settings.qdrant_api_key,
            role=index_holder.RUN,
            url=index_holder.reachable_url(settings.host, settings.port),
        )
        stack.callback(index.close)
        worker = stack.enter_context(InProcessWorker(settings, catalog, index))
        scheduler = Scheduler(settings, catalog)
        scheduler.run_in_background()
        stack.callback(scheduler.stop)
        app = create_app(settings, catalog=catalog)
        app.state.index = index  # one index object for ingest and search in this process
        app.state.ingest = worker
        # This process owns the index, so it reindexes: `lookalike reindex` asks it over HTTP.
        app.state.reindex = ReindexJobs(worker.runtime.pipeline)
        stack.enter_context(Progress(catalog, app, worker, scheduler, url))
        log.info("serving %s  (loading models, crawling and indexing the shop)", url)
        serve(
            app,
            settings.host,
            settings.port,
            setting=PORT_SETTING,
            access_log=verbose or settings.logs_requests,
            header_timeout_s=settings.header_timeout_s,
        )
    catalog.dispose()
