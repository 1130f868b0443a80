"""The scraper's logic: registering sources, running one crawl, judging how it went.

:func:`run_crawl` runs one crawl of one source in this process with Scrapy's
``CrawlerProcess``. A Twisted reactor cannot be restarted, so this is once per process: the
scheduler (:mod:`services.scraper.scheduler`) starts a fresh ``python -m services.scraper
crawl NAME`` for every crawl.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from services.scraper.schemas import SourceConfig, SourceDefinition
from services.scraper.settings import scrapy_settings
from services.scraper.writer import IndexSync
from shared.db import Catalog, CrawlStatus, SourceOut
from shared.db.schemas import CrawlRunOut
from shared.db.sources import this_process
from shared.errors import ConfigurationError, ConflictError, LookalikeError, NotFoundError
from shared.queue import enqueue_images, request_index_sync
from shared.settings import Settings

log = logging.getLogger(__name__)

STATS_PREFIXES = (
    "lookalike/",
    "downloader/response_status_count/",
    "httpcache/",
    "item_dropped_reasons_count/",
)
STATS_KEYS = (
    "finish_reason",
    "elapsed_time_seconds",
    "downloader/request_count",
    "downloader/response_count",
    "downloader/response_bytes",
    "response_received_count",
    "item_scraped_count",
    "item_dropped_count",
    "retry/count",
    "retry/max_reached",
    "robotstxt/forbidden",
    "offsite/filtered",
)


def add_sources(
    catalog: Catalog, definitions: Sequence[SourceDefinition], sync: IndexSync | None = None
) -> list[SourceOut]:
    """Create or update sources by name (a YAML file is applied as a whole); the products of
    a source added with ``enabled: false`` become inactive and ``sync`` takes them out of the
    index."""
    added = [catalog.upsert_source(definition.to_source_in()) for definition in definitions]
    for source in added:
        if not source.enabled and sync is not None:
            sync(catalog.source_product_ids(source.id), [])
    return added


def disable_source(catalog: Catalog, name: str, sync: IndexSync) -> tuple[SourceOut, int]:
    """Stop crawling and serving ``name``; returns it and how many products went inactive.
    Searches stop answering with them at once (the gateway checks the catalog); ``sync``
    updates their points in the index."""
    source, ids = catalog.disable_source(name)
    sync(ids, [])
    return source, len(ids)


def enable_source(catalog: Catalog, name: str, sync: IndexSync) -> tuple[SourceOut, int]:
    """Crawl and serve ``name`` again; returns it and how many products came back at once."""
    config = SourceConfig.of(catalog.get_source(name))
    source, ids = catalog.enable_source(name, max_missed_runs=config.deactivate_after_missed_runs)
    sync(ids, [])
    return source, len(ids)


def remove_source(catalog: Catalog, name: str, sync: IndexSync) -> int:
    """Delete ``name`` and its products; ``sync`` drops their points from the index. Returns
    how many products it had."""
    ids = catalog.remove_source(name)
    sync(ids, [])
    return len(ids)


@dataclass(frozen=True)
class Verdict:
    status: CrawlStatus
    complete: bool
    """True only for a finished crawl with no seed or write failures that wrote products:
    the only kind after which products not seen may be counted as missed."""
    reason: str


@dataclass(frozen=True)
class FeedOutcome:
    """What a feed spider knows beyond the stats."""

    failure: str | None = None
    """Why the feed could not be read (naming the source, the URL, the line)."""
    not_modified: bool = False
    """Every page of the feed answered ``304``: nothing to do."""
    validators: Mapping[str, Any] | None = None
    """``ETag``/``Last-Modified`` per feed URL, for the next run's conditional requests."""


def judge(
    stats: Mapping[str, Any], seed_failures: Sequence[str], feed: FeedOutcome | None = None
) -> Verdict:
    """How a crawl went, from its stats (and, for a feed, what its spider says)."""
    finish = str(stats.get("finish_reason") or "unknown")
    written = int(stats.get("lookalike/products/written", 0))
    if finish == "catalog_unavailable" or stats.get("lookalike/catalog_unavailable"):
        return Verdict(CrawlStatus.FAILED, False, "the catalog database was unavailable")
    if stats.get("lookalike/errors/write_failed"):
        return Verdict(CrawlStatus.FAILED, False, "some products could not be written")
    if feed is not None and feed.failure:
        return Verdict(CrawlStatus.FAILED, False, feed.failure)
    if feed is not None and feed.not_modified and finish == "finished":
        return Verdict(CrawlStatus.SUCCEEDED, False, "feed not modified since the last run")
    if seed_failures:
        return Verdict(
            CrawlStatus.FAILED, False, f"{len(seed_failures)} start URL(s) or sitemap(s) failed"
        )
    if finish == "closespider_pagecount":
        return Verdict(CrawlStatus.SUCCEEDED, False, "stopped at max_pages: partial crawl")
    if finish != "finished":
        return Verdict(CrawlStatus.FAILED, False, f"crawl ended early ({finish})")
    if written == 0:
        return Verdict(CrawlStatus.SUCCEEDED, False, "no products found")
    if stats.get("lookalike/errors/stale_from_cache"):
        return Verdict(CrawlStatus.SUCCEEDED, False, "some pages came from the cache after errors")
    return Verdict(CrawlStatus.SUCCEEDED, True, "complete")


def error_count(stats: Mapping[str, Any]) -> int:
    return sum(
        int(value)
        for key, value in stats.items()
        if key.startswith("lookalike/errors/") and isinstance(value, int | float)
    )


def summarize_stats(stats: Mapping[str, Any]) -> dict[str, Any]:
    """The crawl's stats worth keeping in ``crawl_runs.stats`` (JSON-able)."""
    kept: dict[str, Any] = {}
    for key, value in stats.items():
        if key in STATS_KEYS or key.startswith(STATS_PREFIXES):
            kept[key] = value.isoformat() if isinstance(value, datetime) else value
    return dict(sorted(kept.items()))


def finish_run(
    catalog: Catalog,
    source: SourceOut,
    config: SourceConfig,
    run: CrawlRunOut,
    stats: Mapping[str, Any],
    seed_failures: Sequence[str],
    duration_s: float,
    sync: IndexSync | None = None,
    feed: FeedOutcome | None = None,
) -> CrawlRunOut:
    """Record the crawl's outcome; after a complete crawl, count a miss for every product of
    the source it did not see (deactivating those that missed too many in a row, and asking
    ``sync`` to take them out of search results). A feed run also records its report (added,
    changed, removed, unchanged) and the feed's validators."""
    verdict = judge(stats, seed_failures, feed)
    summary = summarize_stats(stats)
    summary.update(
        complete=verdict.complete,
        outcome=verdict.reason,
        duration_s=round(duration_s, 3),
        seed_failures=list(seed_failures)[:20],
    )
    deactivated: list[int] = []
    if verdict.complete:
        deactivated = catalog.mark_unseen(
            source.id,
            seen_before=run.started_at,
            max_missed_runs=config.deactivate_after_missed_runs,
        )
        summary["deactivated_products"] = len(deactivated)
        if deactivated and sync is not None:
            summary["index_sync_requested"] = sync(deactivated, [])
        if deactivated:
            log.info(
                "%s: %d products missed %d crawls in a row and are now inactive",
                source.name,
                len(deactivated),
                config.deactivate_after_missed_runs,
            )
    elif not (feed is not None and feed.not_modified):
        log.warning(
            "%s: crawl not complete (%s): no product counted as missed", source.name, verdict.reason
        )
    if feed is not None:
        summary["feed_report"] = feed_report(catalog, source, stats, verdict, feed, deactivated)
        if verdict.status is CrawlStatus.SUCCEEDED and feed.validators:
            summary["feed_validators"] = dict(feed.validators)
        log.info("%s: feed report %s", source.name, summary["feed_report"])
    finished = catalog.finish_crawl_run(
        run.id,
        status=verdict.status,
        pages=int(stats.get("response_received_count", 0)),
        items=int(stats.get("lookalike/products/written", 0)),
        errors=error_count(stats),
        stats=summary,
    )
    log.info(
        "%s: crawl %d %s in %.1fs: %d pages, %d products (%d new, %d changed), %d errors; %s",
        source.name,
        run.id,
        verdict.status.value,
        duration_s,
        finished.pages,
        finished.items,
        int(stats.get("lookalike/products/created", 0)),
        int(stats.get("lookalike/products/updated", 0)),
        finished.errors,
        verdict.reason,
    )
    return finished


def feed_report(
    catalog: Catalog,
    source: SourceOut,
    stats: Mapping[str, Any],
    verdict: Verdict,
    feed: FeedOutcome,
    removed: Sequence[int],
) -> dict[str, int]:
    """What a feed run did to the catalog: products added, changed (price, images, stock ...),
    removed (gone from the feed), unchanged; and how many are out of stock (inactive)."""
    if verdict.status is not CrawlStatus.SUCCEEDED:
        return {"added": 0, "changed": 0, "removed": 0, "unchanged": 0, "out_of_stock": 0}
    if feed.not_modified:
        active = catalog.active_product_ids(catalog.source_product_ids(source.id))
        return {"added": 0, "changed": 0, "removed": 0, "unchanged": len(active), "out_of_stock": 0}
    return {
        "added": int(stats.get("lookalike/products/created", 0)),
        "changed": int(stats.get("lookalike/products/updated", 0)),
        "removed": len(removed),
        "unchanged": int(stats.get("lookalike/products/unchanged", 0)),
        "out_of_stock": int(stats.get("lookalike/feed/out_of_stock", 0)),
    }


def last_feed_validators(catalog: Catalog, source: SourceOut) -> dict[str, Any]:
    """The validators the last successful run of a feed source recorded (none after a failed
    run: a feed that failed is read whole again)."""
    for run in catalog.crawl_runs(source.id, limit=10):
        if run.status is CrawlStatus.RUNNING:
            continue
        validators = run.stats.get("feed_validators")
        if run.status is CrawlStatus.SUCCEEDED and isinstance(validators, dict):
            return validators
        return {}
    return {}


def run_crawl(
    source_name: str,
    settings: Settings,
    *,
    run_id: int | None = None,
    max_pages: int | None = None,
) -> CrawlRunOut:
    """Crawl one source now, in this process (once per process: see the module docstring).

    Records the crawl run (``run_id``: one the scheduler already started) and returns it.
    """
    from scrapy.crawler import CrawlerProcess

    from services.scraper.spiders import ProductSpider, SourceSpider
    from services.scraper.spiders.feed import FeedSpider

    settings.ensure_dirs()
    catalog = Catalog.from_settings(settings)
    source = catalog.get_source(source_name)
    if not source.enabled:
        catalog.dispose()
        raise ConfigurationError(
            f"{source.name} is disabled: `lookalike sources enable {source.name}` first"
        )
    config = SourceConfig.of(source)
    if max_pages is not None:
        config = config.model_copy(update={"max_pages": max_pages})
    try:
        run = _claim_run(catalog, source, run_id, settings.scraper.crawl_lease_s)
    except LookalikeError:
        catalog.dispose()
        raise
    heartbeat = LeaseHeartbeat(catalog, run.id, every_s=settings.scraper.crawl_lease_s / 3)
    log.info(
        "%s: crawl %d starting (%s)",
        source.name,
        run.id,
        config.feed_url or ", ".join(config.start_urls or config.sitemap_urls),
    )
    started = time.perf_counter()
    finished: CrawlRunOut | None = None
    heartbeat.start()
    try:
        quiet_scrapy(settings.scraper.scrapy_log_level)
        process = CrawlerProcess(
            {**scrapy_settings(config, settings), "LOG_INSTALL_ROOT_HANDLER": False}
        )
        logging.getLogger("scrapy").setLevel(settings.scraper.scrapy_log_level)
        extra: dict[str, Any] = {}
        if config.feed_url:
            spider_class: type[ProductSpider] = FeedSpider
            extra = {
                "validators": last_feed_validators(catalog, source),
                "spool_dir": settings.data_dir,
            }
        else:
            spider_class = SourceSpider
        crawler = process.create_crawler(spider_class)
        process.crawl(
            crawler,
            config,
            source_name=source.name,
            source_id=source.id,
            base_url=source.base_url,
            catalog=catalog,
            enqueue=partial(enqueue_images, settings=settings),
            sync=partial(request_sync, settings),
            **extra,
        )
        process.start()
        spider = crawler.spider
        seed_failures = list(getattr(spider, "seed_failures", []))
        feed = None
        if isinstance(spider, FeedSpider):
            seed_failures = []  # the spider's failure says what went wrong, more precisely
            feed = FeedOutcome(spider.failure, spider.not_modified, spider.validators)
        finished = finish_run(
            catalog,
            source,
            config,
            run,
            crawler.stats.get_stats(),
            seed_failures,
            time.perf_counter() - started,
            sync=partial(request_sync, settings),
            feed=feed,
        )
        return finished
    finally:
        heartbeat.stop()
        if finished is None:  # the crawl itself blew up: never leave the run "running"
            catalog.finish_crawl_run(
                run.id,
                status=CrawlStatus.FAILED,
                pages=0,
                items=0,
                errors=1,
                stats={"outcome": "the crawl raised an error (see its log)", "complete": False},
            )
        catalog.dispose()


class _ScrapyBelow(logging.Filter):
    """Drops Scrapy's records under a level (its loggers are reset to DEBUG on start)."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.level or not record.name.startswith("scrapy")


def quiet_scrapy(level: str) -> None:
    """Keep Scrapy's own lines (versions, settings and stats at INFO, a line per page at
    DEBUG) under ``level`` on this process's handlers; Scrapy's start resets its loggers to
    DEBUG, so a logger level alone does not hold."""
    for handler in logging.getLogger().handlers:
        handler.filters = [f for f in handler.filters if not isinstance(f, _ScrapyBelow)]
        handler.addFilter(_ScrapyBelow(logging.getLevelName(level)))


def request_sync(settings: Settings, product_ids: Sequence[int], image_ids: Sequence[int]) -> bool:
    return request_index_sync(settings, product_ids=product_ids, image_ids=image_ids)


def _claim_run(
    catalog: Catalog, source: SourceOut, run_id: int | None, lease_s: float
) -> CrawlRunOut:
    """Take the source's crawl lock (:class:`~shared.db.sources.CrawlInProgressError` when
    another process holds it), or hold the one the scheduler took for this process."""
    if run_id is None:
        return catalog.start_crawl_run(source.id, lease_s=lease_s)
    for run in catalog.crawl_runs(source.id, limit=50):
        if run.id == run_id:
            if not catalog.renew_crawl_lease(run.id, holder=this_process()):
                raise ConflictError(f"crawl run {run_id} of {source.name} is no longer running")
            return run
    raise NotFoundError(f"no crawl run {run_id} for source {source.name!r}")


class LeaseHeartbeat:
    """Renews a crawl's lease every ``every_s`` on a daemon thread until :meth:`stop`."""

    def __init__(self, catalog: Catalog, run_id: int, *, every_s: float) -> None:
        self.catalog, self.run_id, self.every_s = catalog, run_id, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="crawl-lease", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                held = self.catalog.renew_crawl_lease(self.run_id)
            except SQLAlchemyError as exc:
                log.warning("crawl %d: lease not renewed (%s)", self.run_id, exc)
                continue
            if not held:
                log.error("crawl %d: lost its crawl lock (taken over or ended)", self.run_id)
                return
