"""Sites that describe their products with schema.org ``Product`` JSON-LD or microdata.

The spider starts at the start URLs and follows the site's own links; any page whose
structured data names one product is a product page. Product pages are leaves unless the
source sets ``follow_links_from_products``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

from scrapy import Request
from scrapy.http import Response, TextResponse
from scrapy.linkextractors import LinkExtractor

from services.scraper.extract import main_product, product_fields, read_structured_data
from services.scraper.items import ProductItem
from services.scraper.normalize import absolute_url
from services.scraper.spiders.base import ProductSpider

log = logging.getLogger(__name__)

_CANONICAL_XPATH = "//link[contains(concat(' ', normalize-space(@rel), ' '), ' canonical ')]/@href"


class StructuredDataSpider(ProductSpider):
    name = "structured-data"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Domains and deny patterns are checked by self.wanted(): LinkExtractor's
        # allow_domains compares host:port, which misses every site on a non-default port.
        self.links = LinkExtractor(canonicalize=False, unique=True)

    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        """Any crawled page: a product page, a listing, or something else with links."""
        if not self.usable(response):
            return
        assert isinstance(response, TextResponse)
        item, data = self.extract_product(response)
        if item is not None:
            self.crawler.stats.inc_value(f"lookalike/pages/product/{item.extracted_from}")
            yield from self.parse_item(item, response, data)
        if item is None or self.config.follow_links_from_products:
            yield from self.follow(response)

    def follow(self, response: TextResponse) -> Iterator[Request]:
        """Requests for the page's links on the site: product pages (by the source's
        ``product_url_pattern``) straight to :meth:`parse_product`, others to :meth:`parse`."""
        for url in self.link_urls(response):
            if self.is_product_url(url):
                yield self.request(url, self.parse_product)
            else:
                yield self.request(url, self.parse)

    def link_urls(self, response: TextResponse) -> Iterator[str]:
        for link in self.links.extract_links(response):
            if self.wanted(link.url) and self.first_visit(link.url):
                yield link.url

    def extract_product(
        self, response: TextResponse, *, expected: bool = False
    ) -> tuple[ProductItem | None, Mapping[str, Any]]:
        if not self.config.structured_data:
            return None, {}
        data = read_structured_data(response.selector)
        for error in data.errors:
            self.crawler.stats.inc_value("lookalike/errors/invalid_json_ld")
            log.warning("%s: %s", response.url, error)
        canonical = page_canonical(response)
        node = main_product(data.products, [response.url, *([canonical] if canonical else [])])
        if node is None:
            if len(data.products) > 1:
                self.crawler.stats.inc_value("lookalike/pages/several_products")
            return None, {}
        fields = product_fields(node)
        labels = fields["category_labels"] or [
            label for label in data.breadcrumbs if label != fields["title"]
        ]
        item = ProductItem(
            url=response.url,
            **{**fields, "canonical_url": canonical or fields["canonical_url"]},
        )
        item.category_labels = labels
        item.extracted_from = data.sources.get(id(node), "json-ld")
        return item, node


def page_canonical(response: TextResponse) -> str | None:
    """The page's ``rel=canonical`` URL (absolute), unless it points at the home page (a
    common misconfiguration that would merge every product into one)."""
    href = response.xpath(_CANONICAL_XPATH).get()
    url = absolute_url(href, response.url) if href else None
    if url is None or url.split("?", 1)[0].rstrip("/").count("/") <= 2:
        return None
    return url
