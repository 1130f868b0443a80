"""HTTP cache for conditional re-crawls: Scrapy's ``HttpCacheMiddleware`` with the RFC 2616
policy (:class:`RevalidatingPolicy`), stored in one SQLite file per source under the data dir.

The policy revalidates every stored page with ``If-None-Match``/``If-Modified-Since``, so an
unchanged page costs a ``304`` and is parsed again from the stored body (its product counts as
seen). Why SQLite rather than Scrapy's storages: the filesystem storage writes six files per
page (tens of thousands per shop) and the DBM storage needs ``gdbm``/``ndbm``, which Python
builds often lack (``dbm.dumb`` rewrites its index on every write).
"""

from __future__ import annotations

import logging
import pickle
import sqlite3
import time
from pathlib import Path
from typing import Any

from scrapy import Request, Spider
from scrapy.downloadermiddlewares.httpcache import HttpCacheMiddleware
from scrapy.extensions.httpcache import RFC2616Policy
from scrapy.http import Headers, Response
from scrapy.responsetypes import responsetypes
from scrapy.settings import BaseSettings

log = logging.getLogger(__name__)

STALE_FLAG = "stale"
"""Flag of a stored response served because the site failed (error or 5xx on revalidation)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    fingerprint BLOB PRIMARY KEY,
    url TEXT NOT NULL,
    status INTEGER NOT NULL,
    headers BLOB NOT NULL,
    body BLOB NOT NULL,
    stored_at REAL NOT NULL
)
"""
_COMMIT_EVERY = 200
PRUNE_AFTER_S = 30 * 24 * 3600


class SqliteCacheStorage:
    """``HTTPCACHE_STORAGE``: ``HTTPCACHE_DIR/<spider name>.sqlite3``, WAL, batched commits.

    A crash loses at most the last uncommitted entries, which only costs a full download.
    """

    def __init__(self, settings: BaseSettings) -> None:
        self.directory = Path(settings["HTTPCACHE_DIR"])
        self.expiration_secs = settings.getint("HTTPCACHE_EXPIRATION_SECS")
        self._db: sqlite3.Connection | None = None
        self._pending = 0
        self._fingerprinter: Any = None

    def open_spider(self, spider: Spider) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{spider.name}.sqlite3"
        self._db = sqlite3.connect(path, isolation_level="DEFERRED", check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)
        self._db.commit()
        self._fingerprinter = spider.crawler.request_fingerprinter
        log.debug("HTTP cache at %s", path)

    def close_spider(self, spider: Spider) -> None:
        if self._db is not None:
            # Pages nobody asked for in a month (removed products) go; live ones are
            # re-stored on every revalidation.
            self._db.execute(
                "DELETE FROM responses WHERE stored_at < ?", (time.time() - PRUNE_AFTER_S,)
            )
            self._db.commit()
            self._db.close()
            self._db = None

    def retrieve_response(self, spider: Spider, request: Request) -> Response | None:
        if self._db is None:
            return None
        row = self._db.execute(
            "SELECT url, status, headers, body, stored_at FROM responses WHERE fingerprint = ?",
            (self._fingerprinter.fingerprint(request),),
        ).fetchone()
        if row is None:
            return None
        url, status, headers, body, stored_at = row
        if 0 < self.expiration_secs < time.time() - stored_at:
            return None
        request.meta["cache_timestamp"] = stored_at
        response_headers = Headers(_loads_headers(headers))
        response_class = responsetypes.from_args(headers=response_headers, url=url, body=body)
        return response_class(url=url, status=status, headers=response_headers, body=body)

    def store_response(self, spider: Spider, request: Request, response: Response) -> None:
        if self._db is None:
            return
        headers = pickle.dumps(
            {bytes(key): list(values) for key, values in response.headers.items()}, protocol=4
        )
        self._db.execute(
            "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?)",
            (
                self._fingerprinter.fingerprint(request),
                response.url,
                response.status,
                headers,
                response.body,
                time.time(),
            ),
        )
        self._pending += 1
        if self._pending >= _COMMIT_EVERY:
            self._db.commit()
            self._pending = 0


def _loads_headers(blob: bytes) -> dict[bytes, list[bytes]]:
    # Our own pickles of a dict of bytes, written by store_response above.
    headers = pickle.loads(blob)  # noqa: S301
    return headers if isinstance(headers, dict) else {}


class RevalidatingPolicy(RFC2616Policy):
    """The RFC 2616 policy, revalidating ``Cache-Control: no-cache`` pages too.

    Scrapy's policy answers "not fresh" for ``no-cache`` before it sets ``If-None-Match`` /
    ``If-Modified-Since``, so such pages (the HTML of most shops) were downloaded in full on
    every crawl. ``no-cache`` means "revalidate before use", which is what this does.
    """

    def is_cached_response_fresh(self, cachedresponse: Response, request: Request) -> bool:
        if super().is_cached_response_fresh(cachedresponse, request):
            return True
        self._set_conditional_validators(request, cachedresponse)
        return False


class StaleMarkingCacheMiddleware(HttpCacheMiddleware):
    """``HttpCacheMiddleware`` that flags responses it serves because the site failed.

    The RFC 2616 policy answers from the cache when a revalidation errors or gets a 5xx
    (stale-if-error). That keeps a flaky page's product "seen", but the crawl must know: a
    crawl that leaned on stale copies is not complete, and never deactivates products.
    """

    def process_response(
        self, request: Request, response: Response, spider: Spider | None = None
    ) -> Request | Response:
        network_status = response.status
        revalidating = "cached_response" in request.meta
        result = super().process_response(request, response)
        stale = revalidating and result is not response and network_status >= 500
        if stale and isinstance(result, Response):
            self._mark_stale(result)
        return result

    def process_exception(
        self, request: Request, exception: Exception, spider: Spider | None = None
    ) -> Request | Response | None:
        result = super().process_exception(request, exception)
        if isinstance(result, Response):
            self._mark_stale(result)
        return result

    def _mark_stale(self, response: Response) -> None:
        response.flags.append(STALE_FLAG)
        self.stats.inc_value("lookalike/errors/stale_from_cache")
