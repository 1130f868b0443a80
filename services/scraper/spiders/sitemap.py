"""Sites with XML sitemaps: product pages found from ``sitemap_urls`` and from the
``Sitemap:`` lines of robots.txt, sitemap indexes and gzipped sitemaps included.

Sitemap entries are leaves: a page whose URL matches ``product_url_pattern`` (or, without a
pattern, whose structured data names a product) becomes an item; nothing is followed from it.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin, urlsplit

from scrapy import Request
from scrapy.http import Response
from scrapy.utils.sitemap import Sitemap

from services.scraper.spiders.structured import StructuredDataSpider

log = logging.getLogger(__name__)

MAX_SITEMAP_DEPTH = 3
"""Sitemap index -> sitemap index -> sitemap -> pages, at most."""


class ProductSitemapSpider(StructuredDataSpider):
    name = "sitemap"

    def seed_requests(self) -> Iterator[Request]:
        if self.config.sitemaps != "only":
            yield from super().seed_requests()
        if self.config.sitemaps == "off":
            return
        for url in self.config.sitemap_urls:
            if self.first_visit(url):
                yield self.request(url, self.parse_sitemap, seed=True)
        if not self.config.sitemap_urls:
            for root in self.site_roots():
                yield self.request(urljoin(root, "/robots.txt"), self.parse_robots, optional=True)

    def site_roots(self) -> list[str]:
        roots = []
        for url in [*self.config.start_urls, *self.config.sitemap_urls]:
            parts = urlsplit(url)
            root = f"{parts.scheme}://{parts.netloc}/"
            if root not in roots:
                roots.append(root)
        return roots

    def parse_robots(self, response: Response) -> Iterator[Request]:
        """The sitemaps a site announces in robots.txt (``Sitemap: <url>`` lines), else the
        conventional ``/sitemap.xml`` if there is one."""
        announced = False
        for line in response.body.splitlines():
            key, _, value = line.partition(b":")
            if key.strip().lower() != b"sitemap" or not value.strip():
                continue
            announced = True
            url = urljoin(response.url, value.strip().decode("utf-8", "replace"))
            if self.wanted(url) and self.first_visit(url):
                self.crawler.stats.inc_value("lookalike/sitemaps/from_robots_txt")
                yield self.request(url, self.parse_sitemap)
        fallback = urljoin(response.url, "/sitemap.xml")
        if not announced and self.first_visit(fallback):
            yield self.request(fallback, self.parse_sitemap, optional=True)

    def parse_sitemap(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        body = self.sitemap_body(response)
        if body is None and response.meta.get("lookalike_optional"):
            self.crawler.stats.inc_value("lookalike/skipped/no_sitemap")
            return
        if body is None:
            self.crawler.stats.inc_value("lookalike/errors/invalid_sitemap")
            log.warning("%s is not a readable sitemap", response.url)
            return
        try:
            sitemap = Sitemap(body)
            entries = list(sitemap)
        except (ValueError, SyntaxError, StopIteration) as exc:
            self.crawler.stats.inc_value("lookalike/errors/invalid_sitemap")
            log.warning("%s is not a valid sitemap: %s", response.url, exc)
            return
        depth = int(response.meta.get("lookalike_sitemap_depth", 0))
        stats = self.crawler.stats
        for entry in entries:
            loc = entry.get("loc")
            if not isinstance(loc, str):
                continue
            url = urljoin(response.url, loc.strip())
            if not self.wanted(url):
                stats.inc_value("lookalike/skipped/sitemap_url_unwanted")
                continue
            if sitemap.type == "sitemapindex":
                if depth < MAX_SITEMAP_DEPTH and self.first_visit(url):
                    meta = {"lookalike_sitemap_depth": depth + 1}
                    yield self.request(url, self.parse_sitemap, meta=meta)
                continue
            stats.inc_value("lookalike/sitemaps/urls")
            wanted = self._product_pattern is None or self.is_product_url(url)
            if wanted and self.first_visit(url):
                yield self.request(url, self.parse_product)

    def sitemap_body(self, response: Response) -> bytes | None:
        """The XML of a sitemap response, gunzipped (within the page size limit) if needed."""
        body = response.body
        if body[:2] == b"\x1f\x8b":
            limit = self.crawler.settings.getint("DOWNLOAD_MAXSIZE") or 50 * 1024 * 1024
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                body = inflater.decompress(body, limit)
            except zlib.error:
                return None
            if inflater.unconsumed_tail:
                return None
        head = body[:512].lstrip().lower()
        return (
            body
            if head.startswith(b"<?xml") or b"<urlset" in head or b"<sitemapindex" in head
            else None
        )
