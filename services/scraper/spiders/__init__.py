"""Product spiders: one base per kind of site, and the config-driven :class:`SourceSpider`."""

from services.scraper.spiders.base import ProductSpider
from services.scraper.spiders.selector import SelectorSpider
from services.scraper.spiders.sitemap import ProductSitemapSpider
from services.scraper.spiders.source import SourceSpider
from services.scraper.spiders.structured import StructuredDataSpider

__all__ = [
    "ProductSitemapSpider",
    "ProductSpider",
    "SelectorSpider",
    "SourceSpider",
    "StructuredDataSpider",
]
