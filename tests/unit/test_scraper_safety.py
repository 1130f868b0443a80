"""Private-address refusal, error classification and conditional revalidation, offline."""

from __future__ import annotations

import pytest
from scrapy.exceptions import DownloadCancelledError, IgnoreRequest
from scrapy.http import HtmlResponse, Request, Response
from scrapy.settings import Settings as ScrapySettings
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.utils.test import get_crawler

from services.scraper.httpcache import RevalidatingPolicy
from services.scraper.middlewares import (
    ALLOW_PRIVATE_SETTING,
    PrivateAddressMiddleware,
    RefusedURLError,
)
from services.scraper.spiders.base import error_kind

pytestmark = pytest.mark.unit


def middleware(allow_private: bool) -> PrivateAddressMiddleware:
    return PrivateAddressMiddleware.from_crawler(
        get_crawler(settings_dict={ALLOW_PRIVATE_SETTING: allow_private})
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8001/",
        "http://10.0.0.7/p",
        "http://169.254.169.254/latest",
        "http://[::1]/",
    ],
)
def test_private_addresses_are_refused_by_default(url: str) -> None:
    refusing = middleware(allow_private=False)
    with pytest.raises(RefusedURLError, match="private, loopback or reserved"):
        refusing.process_request(Request(url))
    assert refusing.crawler.stats.get_value("lookalike/errors/refused_url") == 1
    assert middleware(allow_private=True).process_request(Request(url)) is None


def test_public_addresses_pass_and_credentials_never_do() -> None:
    refusing = middleware(allow_private=False)
    assert refusing.process_request(Request("http://93.184.215.14/p")) is None
    with pytest.raises(RefusedURLError, match="credentials"):
        middleware(allow_private=True).process_request(Request("http://u:p@127.0.0.1/"))


def test_error_kinds() -> None:
    response = HtmlResponse("https://s.example/x", status=404, body=b"")
    assert error_kind(HttpError(response, "404")) == ("http_404", True)
    assert error_kind(IgnoreRequest("Forbidden by robots.txt")) == ("robots_txt", False)
    assert error_kind(IgnoreRequest("Filtered offsite request to 'x'")) == ("offsite", False)
    assert error_kind(IgnoreRequest("max redirections reached")) == ("redirect_loop", True)
    too_large = DownloadCancelledError("larger than download max size (1024)")
    assert error_kind(too_large) == ("too_large", True)
    assert error_kind(TimeoutError()) == ("timeout", True)


def test_no_cache_pages_are_revalidated_with_their_validators() -> None:
    policy = RevalidatingPolicy(ScrapySettings())
    cached = Response(
        "https://s.example/p",
        headers={
            "Cache-Control": "no-cache",
            "ETag": '"abc"',
            "Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT",
        },
    )
    request = Request("https://s.example/p")
    assert policy.is_cached_response_fresh(cached, request) is False
    assert request.headers[b"If-None-Match"] == b'"abc"'
    assert request.headers[b"If-Modified-Since"] == b"Mon, 01 Jan 2024 00:00:00 GMT"
    not_modified = Response("https://s.example/p", status=304)
    assert policy.is_cached_response_valid(cached, not_modified, request)
