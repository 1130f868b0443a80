"""Item pipelines, each doing one thing, in the order of ``settings.PIPELINES``:

1. :class:`RequiredFieldsPipeline` drops items without a title.
2. :class:`UrlPipeline` makes the canonical URL absolute, same-site and stable.
3. :class:`PricePipeline` turns the price into a ``Decimal`` with a currency (or no price).
4. :class:`CategoryPipeline` maps the shop's labels to the catalog's category.
5. :class:`ImagesPipeline` makes image URLs absolute, drops unusable ones, deduplicates.
6. :class:`DuplicatesPipeline` drops a product already scraped in this crawl.
7. :class:`CatalogWriterPipeline` writes products in batches through :class:`shared.db.Catalog`
   (one transaction per batch, one per product when a batch fails) and hands new images to
   the ingest queue after each commit, from a writer process (:mod:`services.scraper.writer`).

A pipeline drops an item with :class:`~scrapy.exceptions.DropItem` and a reason, and counts
it in the crawl's stats under ``lookalike/dropped/<reason>``; a field it cannot use is left
empty and counted under ``lookalike/skipped/<field>``.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Self

from pydantic import ValidationError
from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem
from scrapy.utils.defer import deferred_from_coro

from services.scraper.items import ProductItem
from services.scraper.normalize import (
    canonical_url,
    map_category,
    normalize_currency,
    parse_price,
    same_site,
)
from services.scraper.schemas import SourceConfig
from services.scraper.settings import BATCH_SIZE_SETTING
from services.scraper.writer import Message, WriterProcess, WriterSpec
from shared.db import Catalog, ImageIn, ProductIn

if TYPE_CHECKING:
    from scrapy.statscollectors import StatsCollector

log = logging.getLogger(__name__)


class _Pipeline:
    """Base: keeps the crawler; the spider carries the source's config."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    @property
    def stats(self) -> StatsCollector:
        return self.crawler.stats

    @property
    def config(self) -> SourceConfig:
        config = getattr(self.crawler.spider, "config", None)
        return config if isinstance(config, SourceConfig) else SourceConfig()

    def drop(self, reason_key: str, message: str) -> DropItem:
        self.stats.inc_value(f"lookalike/dropped/{reason_key}")
        return DropItem(message)

    def skipped(self, field: str) -> None:
        self.stats.inc_value(f"lookalike/skipped/{field}")


def _product(item: Any) -> ProductItem:
    if not isinstance(item, ProductItem):
        raise DropItem(f"not a product item: {type(item).__name__}")
    return item


class RequiredFieldsPipeline(_Pipeline):
    def process_item(self, item: Any) -> ProductItem:
        product = _product(item)
        if not product.title:
            raise self.drop("missing_title", f"no product title on {product.url}")
        return product


class UrlPipeline(_Pipeline):
    """The product's identity: the page's canonical URL when it is on the shop's own site,
    else the URL the page was fetched from."""

    def process_item(self, item: Any) -> ProductItem:
        product = _product(item)
        domains = getattr(self.crawler.spider, "domains", None) or []
        page_url = canonical_url(product.url, product.url)
        claimed = (
            canonical_url(product.canonical_url, product.url) if product.canonical_url else None
        )
        if claimed is not None and domains and not same_site(claimed, domains):
            self.skipped("canonical_url_offsite")
            claimed = None
        url = claimed or page_url
        if url is None:
            raise self.drop("invalid_url", f"no usable URL for product on {product.url!r}")
        product.canonical_url = url
        return product


class PricePipeline(_Pipeline):
    def process_item(self, item: Any) -> ProductItem:
        product = _product(item)
        raw = product.price
        amount, currency_in_text = (
            (raw, None) if isinstance(raw, Decimal) and raw.is_finite() else parse_price(raw)
        )
        if amount is None:
            self.skipped("price_missing" if raw in (None, "") else "price_invalid")
            if raw not in (None, ""):
                log.debug("unusable price %r on %s", raw, product.url)
        currency = (
            normalize_currency(product.currency) or currency_in_text or self.config.default_currency
        )
        if amount is not None and currency is None:
            self.skipped("currency_missing")
        product.price = amount
        product.currency = currency if amount is not None else None
        return product


class CategoryPipeline(_Pipeline):
    def process_item(self, item: Any) -> ProductItem:
        product = _product(item)
        product.category = map_category(product.category_labels, self.config.category_map)
        if product.category is None:
            self.skipped("category_unmapped" if product.category_labels else "category_missing")
        return product


class ImagesPipeline(_Pipeline):
    """Absolute http(s) image URLs, first occurrence kept, at most the configured number.

    URLs are kept even when they do not look like images: ingest downloads them and records
    a failure for the ones that are not.
    """

    def process_item(self, item: Any) -> ProductItem:
        product = _product(item)
        urls: list[str] = []
        for raw in product.image_urls:
            url = canonical_url(raw, product.url)
            if url is None:
                self.skipped("image_url_invalid")
            elif url not in urls:
                urls.append(url)
        limit = self.config.max_images_per_product
        if len(urls) > limit:
            self.skipped("images_over_limit")
        product.image_urls = urls[:limit]
        if not product.image_urls:
            self.skipped("images_missing")
        return product


class DuplicatesPipeline(_Pipeline):
    """The same product reached through several listing pages or URL variants."""

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        self.seen: set[str] = set()

    def process_item(self, item: Any) -> ProductItem:
        product = _product(item)
        url = product.canonical_url or product.url
        if url in self.seen:
            raise self.drop("duplicate", f"{url} was already scraped in this crawl")
        self.seen.add(url)
        return product


def to_product_in(product: ProductItem) -> ProductIn:
    """The catalog's input model; ``ValidationError`` if a field is out of bounds."""
    attributes = dict(product.attributes)
    if product.availability:
        attributes["availability"] = product.availability
    price = product.price if isinstance(product.price, Decimal) else None
    return ProductIn(
        canonical_url=product.canonical_url or product.url,
        title=(product.title or "")[:1000],
        external_id=product.sku,
        brand=product.brand,
        price=price,
        currency=product.currency if price is not None else None,
        category=product.category,
        category_labels=tuple(product.category_labels),
        attributes=attributes,
        images=tuple(ImageIn(url=url) for url in product.image_urls),
        available=product.available,
    )


class CatalogWriterPipeline(_Pipeline):
    """Collects valid products into batches for a :class:`~services.scraper.writer.CatalogWriter`
    running in its own process (see :mod:`services.scraper.writer` for why), and folds the
    writer's counts into the crawl's stats. If the catalog becomes unreachable the crawl
    stops: it cannot be complete."""

    def __init__(self, crawler: Crawler, batch_size: int) -> None:
        super().__init__(crawler)
        self.batch_size = batch_size
        self.batch: list[ProductIn] = []
        self.writer: WriterProcess | None = None
        self.failed = False

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler, crawler.settings.getint(BATCH_SIZE_SETTING, 100))

    def open_spider(self) -> None:
        spider = self.crawler.spider
        catalog: Catalog | None = getattr(spider, "catalog", None)
        if catalog is None:
            return
        spec = WriterSpec(
            database_url=catalog.engine.url.render_as_string(hide_password=False),
            source_id=int(getattr(spider, "source_id", 0)),
            name=getattr(spider, "name", "crawl"),
            enqueue=getattr(spider, "enqueue", None),
            sync=getattr(spider, "sync", None),
            log_level=logging.getLevelName(logging.getLogger().getEffectiveLevel()),
        )
        self.writer = WriterProcess(spec)
        self.writer.start()

    def process_item(self, item: Any) -> ProductItem:
        product = _product(item)
        try:
            row = to_product_in(product)
        except ValidationError as exc:
            fields = ", ".join(str(error["loc"][0]) for error in exc.errors() if error["loc"])
            raise self.drop("invalid", f"invalid {fields} on {product.url}: {exc}") from exc
        if self.writer is None or self.failed:
            return product
        self.batch.append(row)
        if len(self.batch) >= self.batch_size:
            batch, self.batch = self.batch, []
            if not self.writer.submit(batch):
                self._writer_died(len(batch))
            self._absorb(self.writer.poll())
        return product

    def close_spider(self) -> None:
        if self.writer is None:
            return
        batch, self.batch = self.batch, []
        if batch and not self.failed and not self.writer.submit(batch):
            self._writer_died(len(batch))
        self._absorb(self.writer.close())
        if not self.writer.done and not self.failed:
            self._writer_died(0)

    def _absorb(self, messages: list[Message]) -> None:
        for kind, values in messages:
            # The writer's counters are cumulative and its keys are its own.
            for key, value in values.items():
                self.stats.set_value(key, value)
            if kind == "fatal" and not self.failed:
                self.failed = True
                engine = self.crawler.engine
                deferred_from_coro(engine.close_spider_async(reason="catalog_unavailable"))

    def _writer_died(self, lost: int) -> None:
        log.error("the catalog writer process died; %d products were not written", lost)
        self.stats.inc_value("lookalike/errors/write_failed", max(lost, 1))
        self.failed = True
