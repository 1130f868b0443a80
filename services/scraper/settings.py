"""The Scrapy settings of one crawl, from a source's config and the scheduler's own settings
(``settings.scraper``, :class:`~shared.settings.ScraperSettings`:
``LOOKALIKE_SCRAPER__POLL_INTERVAL_S=10`` and friends)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from services.scraper.middlewares import ALLOW_PRIVATE_HOSTS_SETTING, ALLOW_PRIVATE_SETTING
from services.scraper.schemas import SourceConfig
from shared.settings import ScraperSettings, Settings

__all__ = ["PIPELINES", "ScraperSettings", "scrapy_settings", "user_agent"]

PROJECT_URL = "https://github.com/lookalike"
BATCH_SIZE_SETTING = "LOOKALIKE_WRITE_BATCH_SIZE"

PIPELINES: dict[str, int] = {
    "services.scraper.pipelines.RequiredFieldsPipeline": 100,
    "services.scraper.pipelines.UrlPipeline": 200,
    "services.scraper.pipelines.PricePipeline": 300,
    "services.scraper.pipelines.CategoryPipeline": 400,
    "services.scraper.pipelines.ImagesPipeline": 500,
    "services.scraper.pipelines.DuplicatesPipeline": 600,
    "services.scraper.pipelines.CatalogWriterPipeline": 900,
}
"""The item pipelines, in the order they run (lowest first)."""


def user_agent() -> str:
    try:
        release = version("lookalike")
    except PackageNotFoundError:
        release = "dev"
    return f"Lookalike/{release} (+{PROJECT_URL})"


def scrapy_settings(config: SourceConfig, settings: Settings) -> dict[str, Any]:
    """The Scrapy settings of one crawl of one source: politeness, limits, cache, pipelines."""
    polite = config.politeness
    scraper = settings.scraper
    feed: dict[str, Any] = {}
    if config.feed_url:
        handler = "services.scraper.feedhandler.FeedDownloadHandler"
        # The shop hands us its feed: robots.txt (for crawlers finding pages) does not apply,
        # and the feed's own validators replace the page cache.
        feed = {
            "ROBOTSTXT_OBEY": False,
            "HTTPCACHE_ENABLED": False,
            "DOWNLOAD_HANDLERS": {"http": handler, "https": handler},
        }
    return {
        "BOT_NAME": "lookalike",
        "USER_AGENT": user_agent(),
        "ROBOTSTXT_OBEY": True,
        "ROBOTSTXT_USER_AGENT": "Lookalike",
        "CONCURRENT_REQUESTS": max(16, polite.concurrency),
        "CONCURRENT_REQUESTS_PER_DOMAIN": polite.concurrency,
        # Items are processed synchronously; Scrapy starts this many tasks per response.
        "CONCURRENT_ITEMS": 8,
        "DOWNLOAD_DELAY": polite.download_delay,
        "AUTOTHROTTLE_ENABLED": polite.autothrottle,
        "AUTOTHROTTLE_START_DELAY": max(polite.download_delay, 1.0),
        "AUTOTHROTTLE_MAX_DELAY": 30.0,
        "AUTOTHROTTLE_TARGET_CONCURRENCY": polite.autothrottle_target_concurrency,
        "DOWNLOAD_TIMEOUT": polite.timeout_s,
        "DNS_TIMEOUT": min(polite.timeout_s, 20.0),
        "DOWNLOAD_MAXSIZE": polite.max_page_bytes,
        "DOWNLOAD_WARNSIZE": min(polite.max_page_bytes, 2 * 1024 * 1024),
        "REDIRECT_MAX_TIMES": polite.max_redirects,
        "REDIRECT_ENABLED": polite.max_redirects > 0,
        "RETRY_TIMES": polite.retries,
        "CLOSESPIDER_PAGECOUNT": config.max_pages,
        "CLOSESPIDER_TIMEOUT": scraper.crawl_timeout_s,
        "COOKIES_ENABLED": False,
        "TELNETCONSOLE_ENABLED": False,
        "REMOTE_CONTROL_ENABLED": False,
        "LOGSTATS_INTERVAL": scraper.log_stats_interval_s,
        "DEFAULT_DROPITEM_LOG_LEVEL": "INFO",
        "HTTPCACHE_ENABLED": scraper.http_cache,
        "HTTPCACHE_POLICY": "services.scraper.httpcache.RevalidatingPolicy",
        "HTTPCACHE_STORAGE": "services.scraper.httpcache.SqliteCacheStorage",
        "HTTPCACHE_DIR": str(settings.data_dir / "httpcache"),
        "DOWNLOADER_MIDDLEWARES": {
            "services.scraper.middlewares.PrivateAddressMiddleware": 40,
            "scrapy.downloadermiddlewares.httpcache.HttpCacheMiddleware": None,
            "services.scraper.httpcache.StaleMarkingCacheMiddleware": 900,
        },
        "ITEM_PIPELINES": PIPELINES,
        ALLOW_PRIVATE_SETTING: config.allow_private_addresses,
        ALLOW_PRIVATE_HOSTS_SETTING: config.allow_private_hosts,
        BATCH_SIZE_SETTING: scraper.write_batch_size,
        **feed,
    }
