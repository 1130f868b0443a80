"""Sites configured with CSS/XPath selectors (``selectors`` in the source config).

Link selectors say where product pages (``product_links``) and further listing pages
(``pagination``) are; when either is set, only those links are followed. Field selectors
say what to read from a product page; a field whose selector finds nothing falls back to the
page's structured data (unless ``structured_data`` is off).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from scrapy.http import Response, TextResponse

from services.scraper.extract import select
from services.scraper.items import ProductItem
from services.scraper.normalize import absolute_url, normalize_availability, split_labels
from services.scraper.schemas import Selector
from services.scraper.spiders.structured import StructuredDataSpider, page_canonical

_SINGLE_FIELDS = ("title", "price", "currency", "brand", "sku")


class SelectorSpider(StructuredDataSpider):
    name = "selectors"

    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        selectors = self.config.selectors
        if not selectors.any_links:
            yield from super().parse(response, **kwargs)
            return
        if not self.usable(response):
            return
        assert isinstance(response, TextResponse)
        for url in self.select_links(response, selectors.product_links):
            yield self.request(url, self.parse_product)
        for url in self.select_links(response, selectors.pagination):
            yield self.request(url, self.parse)

    def select_links(self, response: TextResponse, selector: Selector | None) -> list[str]:
        if selector is None:
            return []
        urls: list[str] = []
        for value in select(response.selector, selector, element_attribute="href"):
            url = absolute_url(value, response.urljoin(""))
            if url is not None and self.wanted(url) and self.first_visit(url):
                urls.append(url)
        return urls

    def extract_product(
        self, response: TextResponse, *, expected: bool = False
    ) -> tuple[ProductItem | None, Mapping[str, Any]]:
        selectors = self.config.selectors
        structured, node = super().extract_product(response, expected=expected)
        if not selectors.any_fields:
            return structured, node
        fields = self.selected_fields(response)
        is_product = (
            structured is not None
            or expected
            or self.is_product_url(response.url)
            or (fields.get("title") is not None and fields.get("price") is not None)
        )
        if not is_product:
            return None, {}
        item = structured or ProductItem(url=response.url, canonical_url=page_canonical(response))
        for name, value in fields.items():
            setattr(item, name, value)
        item.extracted_from = (
            "selectors" if structured is None else f"selectors+{structured.extracted_from}"
        )
        return item, node

    def selected_fields(self, response: TextResponse) -> dict[str, Any]:
        """The fields the configured selectors found (absent when they found nothing)."""
        selectors = self.config.selectors
        fields: dict[str, Any] = {}
        for name in _SINGLE_FIELDS:
            selector = getattr(selectors, name)
            if selector is not None and (values := select(response.selector, selector)):
                fields[name] = values[0]
        if selectors.category is not None and (
            values := select(response.selector, selectors.category)
        ):
            fields["category_labels"] = split_labels(values)
        if selectors.images is not None:
            images = select(response.selector, selectors.images, element_attribute="src")
            if images:
                fields["image_urls"] = images
        if selectors.availability is not None:
            values = select(response.selector, selectors.availability)
            if values and (availability := normalize_availability(values[0])):
                fields["availability"] = availability
        return fields
