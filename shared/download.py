"""Fetch an untrusted image URL safely.

Used by the ingest workers (product images) and the gateway (a shopper's ``image_url``). Every
hop of a redirect chain is checked with :mod:`shared.netsafe` and the connection goes to the
exact address that was checked (no DNS rebinding between check and connect). Bodies are read
as a stream and cut off at ``max_bytes``; the type is sniffed from the bytes, not taken from
the header. Errors say whether trying again later can help (:attr:`DownloadError.retryable`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from shared.errors import LookalikeError
from shared.images import sniff_image_format
from shared.netsafe import CheckedURL, UnresolvableURLError, check_url

USER_AGENT = "Lookalike/0.1 (+https://github.com/lookalike/lookalike; image fetcher)"
_REDIRECTS = {301, 302, 303, 307, 308}
_RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}


class DownloadError(LookalikeError):
    """A URL could not be fetched as an image; ``retryable`` says whether a retry may help."""

    code = "download_failed"
    status_code = 422

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class Downloaded:
    url: str
    final_url: str
    content: bytes
    image_format: str
    content_type: str | None


def _pinned_request_url(checked: CheckedURL) -> tuple[str, str]:
    """The URL with its host replaced by the checked address, and the Host header to send."""
    parts = urlsplit(checked.url)
    address = checked.addresses[0] if checked.addresses else checked.host
    if isinstance(ipaddress.ip_address(address.split("%", 1)[0]), ipaddress.IPv6Address):
        address = f"[{address}]"
    default_port = 443 if checked.scheme == "https" else 80
    netloc = address if checked.port == default_port else f"{address}:{checked.port}"
    host_header = checked.host if checked.port == default_port else f"{checked.host}:{checked.port}"
    return urlunsplit((checked.scheme, netloc, parts.path or "/", parts.query, "")), host_header


def fetch_image(
    url: str,
    *,
    client: httpx.Client,
    allow_private: bool = False,
    allow_hosts: Collection[str] = (),
    max_bytes: int = 20 * 1024 * 1024,
    max_redirects: int = 5,
) -> Downloaded:
    """Download ``url`` and make sure the body is an image of a supported format.

    Raises :class:`DownloadError`: retryable for timeouts, connection failures, HTTP 408/429/5xx
    and unresolvable hosts; permanent for 4xx, private addresses, redirect loops, bodies over
    ``max_bytes`` and bodies that are not an image. Private addresses are refused unless
    ``allow_private``, or the hop's ``host:port`` is in ``allow_hosts`` (see
    :func:`shared.netsafe.check_url`; a redirect elsewhere is checked on its own).
    """
    current = url
    seen: set[str] = set()
    for _ in range(max_redirects + 1):
        if current in seen:
            raise DownloadError(f"redirect loop at {current}", retryable=False)
        seen.add(current)
        try:
            checked = check_url(current, allow_private=allow_private, allow_hosts=allow_hosts)
        except UnresolvableURLError as exc:
            raise DownloadError(exc.message, retryable=True) from exc
        except LookalikeError as exc:
            raise DownloadError(exc.message, retryable=False) from exc
        request_url, host = _pinned_request_url(checked)
        extensions = {"sni_hostname": checked.host} if checked.scheme == "https" else {}
        request = client.build_request(
            "GET",
            request_url,
            headers={"Host": host, "User-Agent": USER_AGENT, "Accept": "image/*"},
            extensions=extensions,
        )
        try:
            response = client.send(request, stream=True, follow_redirects=False)
        except httpx.TimeoutException as exc:
            raise DownloadError(f"timed out fetching {current}", retryable=True) from exc
        except httpx.TransportError as exc:
            raise DownloadError(
                f"could not connect to {checked.host}: {exc}", retryable=True
            ) from exc
        try:
            if response.status_code in _REDIRECTS:
                location = response.headers.get("location")
                if not location:
                    raise DownloadError(
                        f"redirect without Location from {current}", retryable=False
                    )
                current = urljoin(current, location)
                continue
            if response.status_code != 200:
                raise DownloadError(
                    f"HTTP {response.status_code} for {current}",
                    retryable=response.status_code in _RETRYABLE_STATUS,
                )
            content = _read_limited(response, current, max_bytes)
        finally:
            response.close()
        image_format = sniff_image_format(content)
        if image_format is None:
            declared = response.headers.get("content-type", "no content type")
            raise DownloadError(
                f"{current} is not an image (declared {declared!r}, content is not JPEG, PNG, "
                "GIF, WebP, BMP or TIFF)",
                retryable=False,
            )
        return Downloaded(
            url=url,
            final_url=current,
            content=content,
            image_format=image_format,
            content_type=response.headers.get("content-type"),
        )
    raise DownloadError(f"more than {max_redirects} redirects from {url}", retryable=False)


def _read_limited(response: httpx.Response, url: str, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise DownloadError(
            f"{url} is {int(declared)} bytes, the limit is {max_bytes}", retryable=False
        )
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise DownloadError(
                    f"{url} is larger than the limit of {max_bytes} bytes", retryable=False
                )
            chunks.append(chunk)
    except httpx.TimeoutException as exc:
        raise DownloadError(f"timed out reading {url}", retryable=True) from exc
    except httpx.TransportError as exc:
        raise DownloadError(f"connection broke while reading {url}: {exc}", retryable=True) from exc
    return b"".join(chunks)


def make_client(*, timeout_s: float = 15.0) -> httpx.Client:
    """An HTTP client for :func:`fetch_image` (connection pooling; no environment proxies)."""
    return httpx.Client(
        timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)), trust_env=False
    )
