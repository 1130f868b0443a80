"""Downloader middleware: refuse requests into private networks (SSRF protection).

Every request (start URLs, followed links, redirects, robots.txt, sitemaps) passes here
first. Its host is resolved once per crawl and checked with :func:`shared.netsafe.check_url`;
loopback, private, link-local and reserved addresses are refused unless the source sets
``allow_private_addresses`` (the demo shop on 127.0.0.1 does).
"""

from __future__ import annotations

import logging
from typing import Self
from urllib.parse import urlsplit

from scrapy import Request, Spider
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest

from shared.netsafe import PrivateAddressError, UnresolvableURLError, UnsafeURLError, check_url

log = logging.getLogger(__name__)

ALLOW_PRIVATE_SETTING = "LOOKALIKE_ALLOW_PRIVATE_ADDRESSES"


class RefusedURLError(IgnoreRequest):
    """The request was refused before it left (unsafe address or scheme)."""


class PrivateAddressMiddleware:
    def __init__(self, crawler: Crawler, *, allow_private: bool) -> None:
        self.crawler = crawler
        self.allow_private = allow_private
        self._verdicts: dict[tuple[str, str, int | None, bool], str | None] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler, allow_private=crawler.settings.getbool(ALLOW_PRIVATE_SETTING))

    def process_request(self, request: Request, spider: Spider | None = None) -> None:
        # With private addresses allowed, schemes and credentials are still checked.
        problem = self._check(request.url, allow_private=self.allow_private)
        if problem is not None:
            # Counted here: robots.txt and sitemap requests have no spider errback.
            self.crawler.stats.inc_value("lookalike/errors/refused_url")
            log.warning("refused %s: %s", request.url, problem)
            raise RefusedURLError(problem)

    def _check(self, url: str, *, allow_private: bool) -> str | None:
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
            key = (parts.scheme, host, parts.port, parts.username is not None)
        except ValueError as exc:
            return f"malformed URL: {exc}"
        if key not in self._verdicts:
            self._verdicts[key] = self._verdict(url, allow_private=allow_private)
        return self._verdicts[key]

    @staticmethod
    def _verdict(url: str, *, allow_private: bool) -> str | None:
        try:
            check_url(url, allow_private=allow_private, resolve_host=not allow_private)
        except UnresolvableURLError:
            return None  # the download itself reports the DNS failure, with its own stats
        except PrivateAddressError as exc:
            return f"{exc.message} (a source allows it with allow_private_addresses: true)"
        except UnsafeURLError as exc:
            return exc.message
        return None
