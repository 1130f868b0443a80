"""The spider the scraper runs for a source stored in the catalog: every kind at once.

Which behaviour applies comes from the source's config alone: start URLs are crawled
(:class:`~services.scraper.spiders.structured.StructuredDataSpider`), sitemaps read
(:class:`~services.scraper.spiders.sitemap.ProductSitemapSpider`) and selectors used
(:class:`~services.scraper.spiders.selector.SelectorSpider`) when configured. Each of those
behaves like its parent when its part of the config is empty, so they combine by inheritance.
"""

from __future__ import annotations

from services.scraper.spiders.selector import SelectorSpider
from services.scraper.spiders.sitemap import ProductSitemapSpider


class SourceSpider(ProductSitemapSpider, SelectorSpider):
    name = "source"
