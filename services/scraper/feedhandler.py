"""The download handler of feed crawls: a feed's body is streamed into its parser, never held.

Scrapy's HTTP handlers keep a response's whole body in memory, which a 200 MB Merchant feed
should not cost. A request whose ``meta`` carries a :class:`~services.scraper.feeds.FeedSink`
(under :data:`SINK_META`) is downloaded here with httpx: a ``200`` body goes chunk by chunk into
the sink, and the response the spider gets has an empty body (the sink holds the result). Any
other answer (redirect, ``304``, ``404``, ``5xx``) comes back as a normal Scrapy response, so
the downloader middlewares (address checks, redirects, retries, HTTP errors) treat feed
requests as they treat pages. Requests without a sink go to Scrapy's own HTTP/1.1 handler.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import httpx
from scrapy.core.downloader.handlers.base import BaseDownloadHandler
from scrapy.core.downloader.handlers.http11 import HTTP11DownloadHandler
from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadConnectionRefusedError,
    DownloadFailedError,
    DownloadTimeoutError,
)
from scrapy.http import Headers, Response
from scrapy.responsetypes import responsetypes

from services.scraper.feeds import FeedError, FeedSink

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler

log = logging.getLogger(__name__)

SINK_META = "lookalike_feed_sink"
STREAMED_FLAG = "streamed"
"""Flag of a response whose body went into its sink."""
MAX_OTHER_BODY = 1024 * 1024
"""An error page or a redirect is read up to this many bytes."""
_GZIP_TYPES = ("application/gzip", "application/x-gzip")


class FeedDownloadHandler(BaseDownloadHandler):
    """``DOWNLOAD_HANDLERS`` for ``http`` and ``https`` in a feed crawl."""

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        self._pages = HTTP11DownloadHandler.from_crawler(crawler)
        self._client: httpx.AsyncClient | None = None

    async def download_request(self, request: Request) -> Response:
        sink = request.meta.get(SINK_META)
        if not isinstance(sink, FeedSink):
            return await self._pages.download_request(request)
        timeout = float(request.meta.get("download_timeout", 180))
        try:
            return await self._stream(request, sink, timeout)
        except httpx.TimeoutException as exc:
            raise DownloadTimeoutError(f"{request.url}: timed out after {timeout:g}s") from exc
        except httpx.ConnectError as exc:
            message = str(exc).lower()
            if "name or service" in message or "resolve" in message or "nodename" in message:
                raise CannotResolveHostError(f"{request.url}: {exc}") from exc
            raise DownloadConnectionRefusedError(f"{request.url}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise DownloadFailedError(f"{request.url}: {type(exc).__name__}: {exc}") from exc

    async def _stream(self, request: Request, sink: FeedSink, timeout: float) -> Response:
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False)
        headers = {
            key.decode("latin-1"): b", ".join(values).decode("latin-1")
            for key, values in request.headers.items()
        }
        # The sink gunzips (and says so when a "gzip" body is not); nothing else is asked for.
        headers["Accept-Encoding"] = "gzip"
        async with self._client.stream(
            request.method, request.url, headers=headers, timeout=timeout
        ) as answer:
            response_headers = Headers(
                [(key, value) for key, value in answer.headers.multi_items()]
            )
            if answer.status_code != 200:
                body = bytearray()
                async for chunk in answer.aiter_raw():
                    body += chunk
                    if len(body) > MAX_OTHER_BODY:
                        break
                return _response(request, answer.status_code, response_headers, bytes(body))
            content_type = answer.headers.get("content-type", "")
            encoding = answer.headers.get("content-encoding", "").strip().lower()
            media_type = content_type.split(";")[0].strip().lower()
            sink.start(
                content_type=content_type,
                gzip_declared=encoding in ("gzip", "x-gzip") or media_type in _GZIP_TYPES,
            )
            if encoding not in ("", "identity", "gzip", "x-gzip"):
                sink.error = FeedError(f"answers in Content-Encoding {encoding!r}; only gzip")
            async for chunk in answer.aiter_raw():
                if sink.failed:
                    break
                sink.feed(chunk)
            sink.finish()
            response_headers.pop(b"Content-Encoding", None)
            return Response(
                request.url,
                status=200,
                headers=response_headers,
                body=b"",
                request=request,
                flags=[STREAMED_FLAG],
            )

    async def close(self) -> None:
        await self._pages.close()
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _response(request: Request, status: int, headers: Headers, body: bytes) -> Response:
    cls = responsetypes.from_args(headers=headers, url=request.url, body=body)
    return cls(request.url, status=status, headers=headers, body=body, request=request)
