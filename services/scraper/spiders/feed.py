"""The spider of a feed source: reads the shop's product feed instead of its pages.

The feed is downloaded through Scrapy (its middlewares: address checks, redirects, retries,
HTTP errors) but streamed into its parser by :mod:`services.scraper.feedhandler`. Shopify's
``products.json`` is read page by page (``?limit=250&page=N``) until an empty page; a Merchant
feed is one document. Every request is conditional on the validators (``ETag``,
``Last-Modified``) of the last run: when every page answers ``304`` the run changes nothing;
when only some do, those are fetched again unconditionally. Items are yielded only once the
whole feed has parsed, so a malformed feed fails its run with its line and reason and writes
nothing; they then go through the same pipelines and catalog writer as crawled products.
"""

from __future__ import annotations

import logging
import resource
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from scrapy import Request
from scrapy.http import Response
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.python.failure import Failure

from services.scraper.feedhandler import SINK_META
from services.scraper.feeds import (
    FeedContext,
    FeedError,
    FeedFormat,
    FeedSink,
    FeedSpool,
    merchant_products,
    shopify_page_url,
    shopify_products,
    with_variant,
)
from services.scraper.items import ProductItem
from services.scraper.normalize import canonical_url
from services.scraper.schemas import SourceConfig
from services.scraper.spiders.base import ProductSpider

log = logging.getLogger(__name__)

SKIP_REASONS = frozenset({"no id", "no image", "no link", "duplicate id"})
"""Items left out of the catalog; other problems keep the item (without the bad field)."""
MAX_EXAMPLES = 20

Validators = dict[str, dict[str, Any]]
"""Per feed URL: ``etag``, ``last_modified`` and ``items`` (how many the page had)."""


class FeedSpider(ProductSpider):
    name = "feed"

    def __init__(
        self,
        config: SourceConfig | None = None,
        *,
        base_url: str | None = None,
        validators: Mapping[str, Mapping[str, Any]] | None = None,
        spool_dir: Path | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(config, base_url=base_url, **kwargs)
        if not self.config.feed_url:
            raise ValueError("a feed spider needs a config with feed_url")
        self.feed_url = self.config.feed_url
        self.base_url = base_url or _origin(self.feed_url)
        self.expected = None if self.config.format == "auto" else FeedFormat(self.config.format)
        self.paged = self.expected is FeedFormat.SHOPIFY or (
            self.expected is None and urlsplit(self.feed_url).path.endswith("/products.json")
        )
        self.previous: Validators = {url: dict(v) for url, v in (validators or {}).items()}
        self.validators: Validators = {}
        """What the next run sends (filled as pages answer)."""
        self.failure: str | None = None
        self.not_modified = False
        self.format: FeedFormat | None = self.expected
        self.spool = FeedSpool(spool_dir)
        self.problems: Counter[str] = Counter()
        self.examples: list[str] = []
        self._unmodified: dict[int, str] = {}
        self._changed = False
        self._refetching = 0
        self._emitted = False

    # -- requests -----------------------------------------------------------------------------

    async def start(self) -> AsyncIterator[Any]:
        self.crawler.stats.set_value("lookalike/feed/rss_at_start_mb", _peak_rss_mb())
        yield self.page_request(1)

    def page_url(self, page: int) -> str:
        return shopify_page_url(self.feed_url, page) if self.paged else self.feed_url

    def page_request(self, page: int, *, conditional: bool = True) -> Request:
        url = self.page_url(page)
        sink = FeedSink(
            self.spool,
            page,
            self.report,
            expected=self.format,
            max_bytes=self.config.max_feed_bytes,
        )
        headers: dict[str, str] = {}
        known = self.previous.get(url, {})
        if conditional and known.get("etag"):
            headers["If-None-Match"] = str(known["etag"])
        if conditional and known.get("last_modified"):
            headers["If-Modified-Since"] = str(known["last_modified"])
        return Request(
            url,
            callback=self.parse_feed,
            errback=self.on_error,
            headers=headers,
            dont_filter=True,
            meta={
                SINK_META: sink,
                "lookalike_page": page,
                "lookalike_seed": True,
                "lookalike_refetch": not conditional,
                "dont_cache": True,
                "handle_httpstatus_list": [304],
            },
        )

    # -- responses ----------------------------------------------------------------------------

    def parse_feed(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        if self.failure is not None:
            return
        page = int(response.meta["lookalike_page"])
        refetch = bool(response.meta.get("lookalike_refetch"))
        sink: FeedSink = response.meta[SINK_META]
        url = self.page_url(page)  # validators go by the URL asked for, whatever redirects
        if response.status == 304:
            self.crawler.stats.inc_value("lookalike/feed/not_modified_pages")
            self._unmodified[page] = url
            self.validators[url] = self.previous.get(url, {})
            more = int(self.validators[url].get("items", 1)) > 0
        else:
            if sink.error is not None:
                self.fail(response.url, sink.error)
                return
            if not self._accept_format(sink, response.url):
                if self.failure is None:  # an unpaged URL that is Shopify: page it from 1
                    yield self.page_request(1, conditional=False)
                return
            self._changed = True
            self._unmodified.pop(page, None)
            self.crawler.stats.inc_value("lookalike/feed/pages")
            self.crawler.stats.inc_value("lookalike/feed/items_read", sink.seen)
            self.validators[url] = _validators(response, sink.seen)
            more = sink.seen > 0
        if refetch:
            self._refetching -= 1
            if self._refetching == 0:
                yield from self.emit()
            return
        if self.paged and more:
            if page < self.config.max_pages:
                yield self.page_request(page + 1)
                return
            self.crawler.stats.inc_value("lookalike/feed/stopped_at_max_pages")
        if not self._changed:
            self.not_modified = True
            log.info("%s: feed %s not modified since the last run", self.name, self.feed_url)
            return
        if self._unmodified:
            # Some pages changed and some did not: the unchanged ones are needed too.
            self._refetching = len(self._unmodified)
            for stale in sorted(self._unmodified):
                yield self.page_request(stale, conditional=False)
            return
        yield from self.emit()

    def _accept_format(self, sink: FeedSink, url: str) -> bool:
        detected = sink.format
        if detected is FeedFormat.SHOPIFY and self.config.currency is None:
            self.fail(
                url,
                FeedError(
                    "a Shopify feed carries no currency: name the shop's currency "
                    "(currency: EUR) in the source's config"
                ),
            )
            return False
        if detected is FeedFormat.SHOPIFY and not self.paged:
            self.paged = True
            self.format = detected
            self.spool.discard_page(sink.page)
            log.info("%s: %s is a Shopify feed: reading it page by page", self.name, url)
            return False
        self.format = detected
        return True

    def emit(self) -> Iterator[ProductItem]:
        """Every product of the fully parsed feed, group by group."""
        if self._emitted:
            return
        self._emitted = True
        context = FeedContext(self.base_url, self.config.currency, self.report)
        stats = self.crawler.stats
        used: set[str] = set()
        for group in self.spool.groups():
            if self.format is FeedFormat.SHOPIFY:
                items = shopify_products(group[0], context)
            else:
                items = merchant_products(group, context)
            for item in items:
                url = canonical_url(item.url, item.url) or item.url
                if url in used:  # two products of the feed at one address
                    variants = item.attributes.get("variant_ids") or [item.sku or ""]
                    item.url = with_variant(item.url, str(variants[0]))
                    url = canonical_url(item.url, item.url) or item.url
                    stats.inc_value("lookalike/feed/url_disambiguated")
                used.add(url)
                if not item.available:
                    stats.inc_value("lookalike/feed/out_of_stock")
                stats.inc_value("lookalike/feed/products")
                yield item

    # -- problems -----------------------------------------------------------------------------

    def report(self, reason: str, record_id: str | None, line: int | None) -> None:
        """An item skipped or a field unusable: counted, the first few kept as examples."""
        kind = "skipped" if reason in SKIP_REASONS else "warnings"
        self.crawler.stats.inc_value(f"lookalike/feed/{kind}/{reason.replace(' ', '_')}")
        self.problems[reason] += 1
        if len(self.examples) < MAX_EXAMPLES:
            where = " ".join(
                part
                for part in (
                    f"id {record_id!r}" if record_id else "",
                    f"line {line}" if line else "",
                )
                if part
            )
            example = f"{reason}: {where or 'unknown item'}"
            self.examples.append(example)
            log.warning("%s: feed item %s", self.name, example)

    def fail(self, url: str, error: FeedError) -> None:
        self.failure = f"{self.name}: feed {url}: {error}"
        self.crawler.stats.inc_value("lookalike/errors/invalid_feed")
        log.error("%s", self.failure)

    def on_error(self, failure: Failure) -> None:
        super().on_error(failure)
        if self.failure is not None:
            return
        request = getattr(failure, "request", None)
        if isinstance(failure.value, HttpError):
            status = failure.value.response.status
            request = failure.value.response.request
            reason = f"answered HTTP {status}"
        else:
            reason = f"could not be fetched: {failure.getErrorMessage()[:300]}"
        url = request.url if request is not None else self.feed_url
        self.failure = f"{self.name}: feed {url} {reason}"
        log.error("%s", self.failure)

    def closed(self, reason: str) -> None:
        stats = self.crawler.stats
        stats.set_value("lookalike/feed/peak_rss_mb", _peak_rss_mb())
        if self.examples:
            stats.set_value("lookalike/feed/examples", list(self.examples))
        if self.problems:
            summary = ", ".join(
                f"{count} {reason}" for reason, count in self.problems.most_common()
            )
            log.warning("%s: feed problems: %s", self.name, summary)
        self.spool.close()


def _validators(response: Response, items: int) -> dict[str, Any]:
    found: dict[str, Any] = {"items": items}
    for header, key in ((b"ETag", "etag"), (b"Last-Modified", "last_modified")):
        value = response.headers.get(header)
        if value:
            found[key] = value.decode("latin-1")
    return found


def _peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports kilobytes)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
