"""Downloader middleware: refuse requests into private networks (SSRF protection).

Every request (start URLs, followed links, redirects, robots.txt, sitemaps) passes here
first. Its host is resolved once per crawl and checked with :func:`shared.netsafe.check_url`;
loopback, private, link-local and reserved addresses are refused unless the source names the
``host:port`` in ``allow_private_hosts`` (the demo shop names its own) or sets
``allow_private_addresses``.
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
ALLOW_PRIVATE_HOSTS_SETTING = "LOOKALIKE_ALLOW_PRIVATE_HOSTS"


class RefusedURLError(IgnoreRequest):
    """The request was refused before it left (unsafe address or scheme)."""


class PrivateAddressMiddleware:
    def __init__(
        self, crawler: Crawler, *, allow_private: bool, allow_hosts: frozenset[str] = frozenset()
    ) -> None:
        self.crawler = crawler
        self.allow_private = allow_private
        self.allow_hosts = allow_hosts
        self._verdicts: dict[tuple[str, str, int | None, bool], str | None] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(
            crawler,
            allow_private=crawler.settings.getbool(ALLOW_PRIVATE_SETTING),
            allow_hosts=frozenset(crawler.settings.getlist(ALLOW_PRIVATE_HOSTS_SETTING)),
        )

    def process_request(self, request: Request, spider: Spider | None = None) -> None:
        # With private addresses allowed, schemes and credentials are still checked.
        problem = self._check(request.url)
        if problem is not None:
            # Counted here: robots.txt and sitemap requests have no spider errback.
            self.crawler.stats.inc_value("lookalike/errors/refused_url")
            log.warning("refused %s: %s", request.url, problem)
            raise RefusedURLError(problem)

    def _check(self, url: str) -> str | None:
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
            key = (parts.scheme, host, parts.port, parts.username is not None)
        except ValueError as exc:
            return f"malformed URL: {exc}"
        if key not in self._verdicts:
            self._verdicts[key] = self._verdict(url)
        return self._verdicts[key]

    def _verdict(self, url: str) -> str | None:
        try:
            check_url(
                url,
                allow_private=self.allow_private,
                allow_hosts=self.allow_hosts,
                resolve_host=not self.allow_private,
            )
        except UnresolvableURLError:
            return None  # the download itself reports the DNS failure, with its own stats
        except PrivateAddressError as exc:
            return f"{exc.message} (a source allows it with allow_private_hosts: [HOST:PORT])"
        except UnsafeURLError as exc:
            return exc.message
        return None
