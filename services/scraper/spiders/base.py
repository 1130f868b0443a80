"""The base of every product spider: a source's config, seed requests, error accounting and
the ``parse_item`` hook.

Kinds of sites get their own subclass (:mod:`.structured`, :mod:`.sitemap`, :mod:`.selector`)
and :class:`~services.scraper.spiders.source.SourceSpider` combines them for sources stored
in the catalog. A shop that needs code, not just configuration, subclasses one of them and
overrides :meth:`ProductSpider.parse_item`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import Any, Self

from scrapy import Request, Spider, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response, TextResponse
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.python.failure import Failure

from services.scraper.httpcache import STALE_FLAG
from services.scraper.items import ProductItem
from services.scraper.middlewares import RefusedURLError
from services.scraper.normalize import same_site
from services.scraper.schemas import SourceConfig
from services.scraper.writer import Enqueue, IndexSync
from shared.db import Catalog

log = logging.getLogger(__name__)

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
_HTML_TYPES = re.compile(r"html|xml", re.IGNORECASE)


class ProductSpider(Spider):
    """Crawls one source and yields :class:`ProductItem`; subclasses decide how pages are
    found (:meth:`seed_requests`, :meth:`parse`) and read (:meth:`extract_product`)."""

    name = "products"

    def __init__(
        self,
        config: SourceConfig | None = None,
        *,
        source_name: str | None = None,
        source_id: int = 0,
        base_url: str | None = None,
        catalog: Catalog | None = None,
        enqueue: Enqueue | None = None,
        sync: IndexSync | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=source_name or self.name, **kwargs)
        self.config = config or SourceConfig()
        self.source_id = source_id
        self.catalog = catalog
        self.enqueue = enqueue
        self.sync = sync
        self.domains: list[str] = self.config.domains(base_url)
        self.allowed_domains = list(self.domains)
        self.start_urls = list(self.config.start_urls)
        self.seed_failures: list[str] = []
        self._requested: set[str] = set()
        self._deny = [re.compile(pattern) for pattern in self.config.deny_url_patterns]
        pattern = self.config.product_url_pattern
        self._product_pattern = re.compile(pattern) if pattern else None

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> Self:
        spider = super().from_crawler(crawler, *args, **kwargs)
        crawler.signals.connect(spider.on_request_dropped, signal=signals.request_dropped)
        return spider

    # -- discovery --------------------------------------------------------------------------

    async def start(self) -> AsyncIterator[Any]:
        for request in self.seed_requests():
            yield request

    def seed_requests(self) -> Iterator[Request]:
        """The crawl's first requests; a seed that fails makes the crawl incomplete."""
        for url in self.start_urls:
            if self.first_visit(url):
                yield self.request(url, self.parse, seed=True)

    def request(
        self,
        url: str,
        callback: Any,
        *,
        seed: bool = False,
        optional: bool = False,
        meta: Mapping[str, Any] | None = None,
    ) -> Request:
        """A request with the spider's errback. ``seed``: its failure makes the crawl
        incomplete; ``optional``: its failure is not an error (robots.txt for sitemaps)."""
        return Request(
            url,
            callback=callback,
            errback=self.on_error,
            meta={**(meta or {}), "lookalike_seed": seed, "lookalike_optional": optional},
        )

    def first_visit(self, url: str) -> bool:
        """True the first time ``url`` is asked for: listings link each product many times,
        and not building those requests at all is cheaper than Scrapy's dupefilter."""
        if url in self._requested:
            return False
        self._requested.add(url)
        return True

    def wanted(self, url: str) -> bool:
        """On the source's domains and not denied by its config."""
        return same_site(url, self.domains) and not any(d.search(url) for d in self._deny)

    def is_product_url(self, url: str) -> bool:
        return self._product_pattern is not None and bool(self._product_pattern.search(url))

    def parse(self, response: Response, **kwargs: Any) -> Iterable[Any]:
        """A page reached by crawling; the default treats it as a product page."""
        return self.parse_product(response)

    # -- products ---------------------------------------------------------------------------

    def parse_product(self, response: Response) -> Iterator[ProductItem]:
        """A page that should hold a product."""
        if not self.usable(response):
            return
        assert isinstance(response, TextResponse)
        item, data = self.extract_product(response, expected=True)
        if item is None:
            self.crawler.stats.inc_value("lookalike/pages/without_product")
            log.debug("no product found on %s", response.url)
            return
        self.crawler.stats.inc_value(f"lookalike/pages/product/{item.extracted_from}")
        yield from self.parse_item(item, response, data)

    def extract_product(
        self, response: TextResponse, *, expected: bool = False
    ) -> tuple[ProductItem | None, Mapping[str, Any]]:
        """The product on ``response`` (or ``None``) and the schema.org node it came from.
        ``expected``: the page was linked as a product page (not merely crawled)."""
        raise NotImplementedError

    def parse_item(
        self, item: ProductItem, response: Response, data: Mapping[str, Any]
    ) -> Iterable[ProductItem]:
        """Hook: adjust or skip an extracted product before the pipelines see it.

        ``data`` is the schema.org ``Product`` node the item was read from (empty when it came
        from selectors only). Yield the item (or nothing, to skip it).
        """
        yield item

    # -- accounting ---------------------------------------------------------------------------

    def usable(self, response: Response) -> bool:
        """Counts stale and non-HTML responses; False when there is nothing to parse."""
        if STALE_FLAG in response.flags and response.meta.get("lookalike_seed"):
            self.seed_failures.append(response.url)
        content_type = _content_type(response)
        declared_other = content_type != "unknown type" and not _HTML_TYPES.search(content_type)
        if not isinstance(response, TextResponse) or declared_other:
            self.crawler.stats.inc_value("lookalike/pages/not_text")
            log.info("skipping %s: not an HTML page (%s)", response.url, content_type)
            return False
        return True

    def on_error(self, failure: Failure) -> None:
        """Errback of every request: count the failure by kind, remember failed seeds."""
        request: Request | None = getattr(failure, "request", None)
        if isinstance(failure.value, HttpError):
            request = failure.value.response.request
        url = request.url if request is not None else "?"
        kind, is_error = error_kind(failure.value or Exception(failure.getErrorMessage()))
        if request is not None and request.meta.get("lookalike_optional"):
            is_error = False
        stats = self.crawler.stats
        if not is_error:
            stats.inc_value(f"lookalike/skipped/{kind}")
            log.debug("skipped %s (%s)", url, kind)
            return
        if kind != "refused_url":  # the middleware counted it (it sees robots.txt too)
            stats.inc_value(f"lookalike/errors/{kind}")
        if request is not None and request.meta.get("lookalike_seed"):
            self.seed_failures.append(url)
        log.warning("%s failed: %s", url, failure.getErrorMessage()[:300])

    def on_request_dropped(self, request: Request, **kwargs: Any) -> None:
        """A redirect back to a URL of its own chain is dropped by the dupefilter without a
        word: record it as the redirect loop it is."""
        chain = request.meta.get("redirect_urls") or []
        if request.url in chain:
            self.crawler.stats.inc_value("lookalike/errors/redirect_loop")
            if request.meta.get("lookalike_seed"):
                self.seed_failures.append(chain[0])
            log.warning("redirect loop: %s", " -> ".join([*chain, request.url]))


def error_kind(error: BaseException) -> tuple[str, bool]:
    """``(stats key, is_error)``: robots.txt and offsite filtering are policy, not errors."""
    if isinstance(error, HttpError):
        return f"http_{error.response.status}", True
    if isinstance(error, RefusedURLError):
        return "refused_url", True
    if isinstance(error, IgnoreRequest):
        message = str(error).lower()
        if "robots.txt" in message:
            return "robots_txt", False
        if "offsite" in message:
            return "offsite", False
        if "redirect" in message:
            return "redirect_loop", True
        return "ignored", True
    name = type(error).__name__.removesuffix("Error").removesuffix("Exception")
    name = name.removeprefix("Download") or name  # Scrapy's DownloadTimeoutError etc.
    message = str(error).lower()
    if name == "Cancelled" and ("max size" in message or "maxsize" in message):
        return "too_large", True
    return _CAMEL.sub("_", name).lower() or "unknown", True


def _content_type(response: Response) -> str:
    value = response.headers.get(b"Content-Type") or b"unknown type"
    return value.decode("latin-1", "replace")
