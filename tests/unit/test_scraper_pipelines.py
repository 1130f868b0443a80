"""The item pipelines, offline, with a real Scrapy crawler and its stats (no database)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem
from scrapy.http import HtmlResponse, Request
from scrapy.utils.test import get_crawler

from services.scraper.items import ProductItem
from services.scraper.pipelines import (
    CatalogWriterPipeline,
    CategoryPipeline,
    DuplicatesPipeline,
    ImagesPipeline,
    PricePipeline,
    RequiredFieldsPipeline,
    UrlPipeline,
)
from services.scraper.schemas import SourceConfig
from services.scraper.spiders import SourceSpider

pytestmark = pytest.mark.unit

PAGE = "https://shop.example/women/p/1?utm_source=mail"
ORDER = (
    RequiredFieldsPipeline,
    UrlPipeline,
    PricePipeline,
    CategoryPipeline,
    ImagesPipeline,
    DuplicatesPipeline,
    CatalogWriterPipeline,
)


@pytest.fixture
def crawler() -> Iterator[Crawler]:
    crawler = get_crawler(SourceSpider)
    config = SourceConfig.model_validate(
        {
            "start_urls": ["https://shop.example/"],
            "category_map": {"T-Shirts": "tops"},
            "default_currency": "eur",
            "max_images_per_product": 3,
        }
    )
    crawler.spider = SourceSpider.from_crawler(crawler, config, source_name="shop")
    yield crawler


def run(crawler: Crawler, item: ProductItem) -> ProductItem:
    """The item through every pipeline, in the configured order (the writer has no catalog)."""
    for pipeline_class in ORDER:
        item = pipeline_class.from_crawler(crawler).process_item(item)
    return item


def stats(crawler: Crawler) -> dict[str, Any]:
    return {k: v for k, v in crawler.stats.get_stats().items() if k.startswith("lookalike/")}


def item(**fields: Any) -> ProductItem:
    return ProductItem(**{"url": PAGE, "title": "Tee", **fields})


def test_a_full_item_is_normalised(crawler: Crawler) -> None:
    result = run(
        crawler,
        item(
            canonical_url="/women/p/1?utm_source=mail&size=m",
            price="1.299,00 €",
            category_labels=["Women", "T-Shirts"],
            image_urls=["/a.jpg", "//cdn.shop.example/b.jpg", "/a.jpg", "data:image/gif;x", "c"],
        ),
    )
    assert result.canonical_url == "https://shop.example/women/p/1?size=m"
    assert (result.price, result.currency) == (Decimal("1299.00"), "EUR")
    assert result.category == "tops"
    assert result.image_urls == [
        "https://shop.example/a.jpg",
        "https://cdn.shop.example/b.jpg",
        "https://shop.example/women/p/c",
    ]
    assert stats(crawler) == {"lookalike/skipped/image_url_invalid": 1}


def test_missing_title_is_dropped_with_a_reason(crawler: Crawler) -> None:
    with pytest.raises(DropItem, match="no product title"):
        run(crawler, item(title=None))
    assert stats(crawler)["lookalike/dropped/missing_title"] == 1


def test_missing_and_non_numeric_prices_are_skipped_fields(crawler: Crawler) -> None:
    no_price = run(crawler, item(currency="USD"))
    assert (no_price.price, no_price.currency) == (None, None)
    text_price = run(crawler, item(price="Call for price", canonical_url="/p/2"))
    assert text_price.price is None
    defaulted = run(crawler, item(price="10", canonical_url="/p/3"))
    assert (defaulted.price, defaulted.currency) == (Decimal("10.00"), "EUR")
    counts = stats(crawler)
    assert counts["lookalike/skipped/price_missing"] == 1
    assert counts["lookalike/skipped/price_invalid"] == 1


def test_offsite_canonical_falls_back_to_the_page_url(crawler: Crawler) -> None:
    result = run(crawler, item(canonical_url="https://evil.example/p/1"))
    assert result.canonical_url == "https://shop.example/women/p/1"
    assert stats(crawler)["lookalike/skipped/canonical_url_offsite"] == 1


def test_unmapped_category_and_image_limit(crawler: Crawler) -> None:
    result = run(
        crawler,
        item(category_labels=["Hats"], image_urls=[f"/{n}.jpg" for n in range(5)]),
    )
    assert result.category is None
    assert len(result.image_urls) == 3
    counts = stats(crawler)
    assert counts["lookalike/skipped/category_unmapped"] == 1
    assert counts["lookalike/skipped/images_over_limit"] == 1


def test_duplicates_across_url_variants_are_dropped(crawler: Crawler) -> None:
    duplicates = DuplicatesPipeline.from_crawler(crawler)
    first = run(crawler, item())
    duplicates.process_item(first)
    again = run(crawler, item(url="https://shop.example/women/p/1?utm_campaign=x"))
    with pytest.raises(DropItem, match="already scraped"):
        duplicates.process_item(again)
    assert stats(crawler)["lookalike/dropped/duplicate"] == 1


def test_out_of_bounds_fields_are_dropped_by_the_writer_not_written(crawler: Crawler) -> None:
    with pytest.raises(DropItem, match="invalid"):
        run(crawler, item(sku="x" * 500))
    assert stats(crawler)["lookalike/dropped/invalid"] == 1


def test_spider_turns_a_saved_page_into_an_item(crawler: Crawler) -> None:
    spider = crawler.spider
    assert isinstance(spider, SourceSpider)
    body = (
        '<html><head><link rel="canonical" href="/p/9">'
        '<script type="application/ld+json">{"@type": "Product", "name": "Cap",'
        ' "offers": {"price": "15", "priceCurrency": "EUR"}, "image": "//cdn.x/cap.jpg"}'
        "</script></head><body></body></html>"
    )
    url = "https://shop.example/p/9?ref=home"
    response = HtmlResponse(url, body=body.encode(), request=Request(url), encoding="utf-8")
    items = list(spider.parse_product(response))
    assert len(items) == 1
    result = run(crawler, items[0])
    assert result.canonical_url == "https://shop.example/p/9"
    assert result.image_urls == ["https://cdn.x/cap.jpg"]
    assert stats(crawler)["lookalike/pages/product/json-ld"] == 1
