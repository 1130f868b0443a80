"""The demo shop over real HTTP: a threaded stdlib server in front of a :class:`DemoCatalog`.

``ShopApp`` holds routing and HTTP semantics (validators, 304, 404) and knows nothing about
sockets; ``DemoShop`` binds it to an address and runs it in the background or foreground.
Catalog mutations are visible on the next request.
"""

from __future__ import annotations

import hashlib
import logging
import re
import signal
import socket
import sys
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

from services.demo_shop import feeds, pages
from services.demo_shop.catalog import DemoCatalog, DemoProduct
from services.demo_shop.images import render_image
from services.demo_shop.vocabulary import CATEGORIES

logger = logging.getLogger(__name__)

HTML = "text/html; charset=utf-8"
_IMAGE_PATH = re.compile(
    r"/images/(?P<sku>[^/]+)/(?P<view>front|back|detail)-v(?P<version>\d+)\.jpg"
)


@dataclass(frozen=True)
class Response:
    status: HTTPStatus
    body: bytes = b""
    content_type: str | None = HTML
    etag: str | None = None
    last_modified: datetime | None = None
    cache_control: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


def _etag(body: bytes) -> str:
    return f'"{hashlib.blake2b(body, digest_size=12).hexdigest()}"'


def _weak_equal(a: str, b: str) -> bool:
    return a.removeprefix("W/") == b.removeprefix("W/")


def _not_modified(
    response: Response, if_none_match: str | None, if_modified_since: str | None
) -> bool:
    """RFC 9110 §13.2.2: If-None-Match wins over If-Modified-Since when both are sent."""
    if if_none_match is not None:
        if response.etag is None:
            return False
        tags = [tag.strip() for tag in if_none_match.split(",")]
        return "*" in tags or any(_weak_equal(tag, response.etag) for tag in tags)
    if if_modified_since is None or response.last_modified is None:
        return False
    try:
        since = parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError, IndexError):
        return False
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return response.last_modified.replace(microsecond=0) <= since


class ShopStats:
    """Thread-safe request counters, for tests that check how a crawler behaved."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_status: Counter[int] = Counter()
        self._by_path: Counter[str] = Counter()

    def record(self, path: str, status: int) -> None:
        with self._lock:
            self._by_status[int(status)] += 1
            self._by_path[path] += 1

    @property
    def requests(self) -> int:
        with self._lock:
            return sum(self._by_status.values())

    def by_status(self) -> dict[int, int]:
        with self._lock:
            return dict(self._by_status)

    def by_path(self) -> dict[str, int]:
        """Requests per path (query string excluded)."""
        with self._lock:
            return dict(self._by_path)

    def reset(self) -> None:
        with self._lock:
            self._by_status.clear()
            self._by_path.clear()


class _ImageCache:
    """Bounded LRU of rendered JPEGs; rendering happens outside the lock."""

    def __init__(self, max_entries: int) -> None:
        self._max_entries = max_entries
        self._entries: OrderedDict[tuple[object, ...], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, product: DemoProduct, view: str) -> bytes:
        key = (
            product.sku,
            view,
            product.image_version,
            product.category,
            product.colour,
            product.pattern,
            product.variant,
        )
        with self._lock:
            cached = self._entries.get(key)
            if cached is not None:
                self._entries.move_to_end(key)
                return cached
        jpeg = render_image(product, view)
        with self._lock:
            self._entries[key] = jpeg
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return jpeg


class ShopApp:
    """Routes a request to a response; ``base_url`` prefixes every absolute URL."""

    def __init__(
        self, catalog: DemoCatalog, base_url: str, *, image_cache_size: int = 2048
    ) -> None:
        self.catalog = catalog
        self.base_url = base_url.rstrip("/")
        self._images = _ImageCache(image_cache_size)

    def handle(
        self,
        target: str,
        *,
        if_none_match: str | None = None,
        if_modified_since: str | None = None,
    ) -> Response:
        """The response to ``GET target``, or ``304`` when the client's copy is current."""
        parts = urlsplit(target)
        response = self._route(parts.path, parse_qs(parts.query))
        if response.status == HTTPStatus.OK and _not_modified(
            response, if_none_match, if_modified_since
        ):
            return replace(response, status=HTTPStatus.NOT_MODIFIED, body=b"", content_type=None)
        return response

    def _route(self, path: str, query: dict[str, list[str]]) -> Response:
        if path == "/":
            products, modified = self.catalog.snapshot()
            return self._page(pages.home_page(self.base_url, products), modified)
        if path == "/products":
            return self._listing(None, query)
        if path.startswith("/category/"):
            category = unquote(path.removeprefix("/category/"))
            return self._listing(category, query) if category in CATEGORIES else self._not_found()
        if path == "/products.json":
            return self._shopify_feed(query)
        if path == "/feed.xml":
            products, modified = self.catalog.snapshot()
            body = feeds.merchant_feed_xml(self.base_url, products).encode()
            return self._cacheable(body, "application/xml; charset=utf-8", modified, "no-cache")
        if path.startswith(("/product/", "/products/")):
            slug = path.removeprefix("/products/").removeprefix("/product/")
            product = self.catalog.find_by_slug(unquote(slug))
            if product is None:
                return self._not_found()
            return self._page(pages.product_page(self.base_url, product), product.last_modified)
        image = _IMAGE_PATH.fullmatch(path)
        if image is not None:
            return self._image(unquote(image["sku"]), image["view"], int(image["version"]))
        if path == "/robots.txt":
            body = pages.robots_txt(self.base_url).encode()
            return self._cacheable(body, "text/plain; charset=utf-8", None, "max-age=3600")
        if path == "/sitemap.xml":
            products, modified = self.catalog.snapshot()
            body = pages.sitemap_xml(self.base_url, products).encode()
            return self._cacheable(body, "application/xml; charset=utf-8", modified, "no-cache")
        if path == "/cart":
            return self._private_page("Your cart", "Your cart is empty.")
        if path == "/account":
            return self._private_page("Sign in", "Sign in to see your orders.")
        return self._not_found()

    def _cacheable(
        self, body: bytes, content_type: str, modified: datetime | None, cache_control: str
    ) -> Response:
        return Response(
            HTTPStatus.OK,
            body,
            content_type,
            etag=_etag(body),
            last_modified=modified,
            cache_control=cache_control,
        )

    def _page(self, html: str, modified: datetime) -> Response:
        return self._cacheable(html.encode(), HTML, modified, "no-cache")

    def _private_page(self, title: str, message: str) -> Response:
        body = pages.simple_page(self.base_url, title, message).encode()
        return Response(HTTPStatus.OK, body, cache_control="private, no-store")

    def _not_found(self) -> Response:
        body = pages.simple_page(self.base_url, "Not found", "There is no such page.").encode()
        return Response(HTTPStatus.NOT_FOUND, body, cache_control="no-store")

    def _listing(self, category: str | None, query: dict[str, list[str]]) -> Response:
        raw_page = query.get("page", ["1"])[-1]
        if not raw_page.isdigit():
            return self._not_found()
        page = int(raw_page)
        products, modified = self.catalog.snapshot()
        if category is not None:
            products = tuple(product for product in products if product.category == category)
        if not 1 <= page <= pages.page_count(len(products)):
            return self._not_found()
        return self._page(pages.listing_page(self.base_url, category, products, page), modified)

    def _shopify_feed(self, query: dict[str, list[str]]) -> Response:
        raw_page = query.get("page", ["1"])[-1]
        raw_limit = query.get("limit", [str(feeds.SHOPIFY_DEFAULT_LIMIT)])[-1]
        if not raw_page.isdigit() or not raw_limit.isdigit() or int(raw_page) < 1:
            return self._not_found()
        limit = min(max(int(raw_limit), 1), feeds.SHOPIFY_MAX_LIMIT)
        products, modified = self.catalog.snapshot()
        body = feeds.shopify_page(self.base_url, products, int(raw_page), limit).encode()
        return self._cacheable(body, "application/json; charset=utf-8", modified, "no-cache")

    def _image(self, sku: str, view: str, version: int) -> Response:
        """Only the current version of a product's pictures exists; older URLs are 404."""
        try:
            product = self.catalog.get(sku)
        except KeyError:
            return self._not_found()
        if view not in product.views or version != product.image_version:
            return self._not_found()
        jpeg = self._images.get(product, view)
        return self._cacheable(
            jpeg, "image/jpeg", product.image_modified, "public, max-age=31536000, immutable"
        )


class _ShopServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    app: ShopApp
    stats: ShopStats

    def __init__(self, address: tuple[str, int]) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        """Wake handler threads parked on idle keep-alive connections so they exit."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                logger.debug("connection already closed")

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            logger.debug("client %s went away: %s", client_address, error)
        else:
            logger.exception("demo shop failed to answer %s", client_address)


class _ShopServer6(_ShopServer):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LookalikeDemoShop/1.0"
    timeout = 30
    # Headers and body go out in two writes; with Nagle on, keep-alive clients wait ~40 ms.
    disable_nagle_algorithm = True
    server: _ShopServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def _refuse(self) -> None:
        self.close_connection = True
        self._send(
            Response(HTTPStatus.METHOD_NOT_ALLOWED, b"", None, headers=(("Allow", "GET, HEAD"),)),
            head=False,
        )

    do_POST = do_PUT = do_PATCH = do_DELETE = _refuse

    def _answer(self, *, head: bool) -> None:
        response = self.server.app.handle(
            self.path,
            if_none_match=self.headers.get("If-None-Match"),
            if_modified_since=self.headers.get("If-Modified-Since"),
        )
        self._send(response, head=head)

    def _send(self, response: Response, *, head: bool) -> None:
        self.send_response(response.status)
        if response.content_type is not None:
            self.send_header("Content-Type", response.content_type)
        if response.status != HTTPStatus.NOT_MODIFIED:
            self.send_header("Content-Length", str(len(response.body)))
        if response.etag is not None:
            self.send_header("ETag", response.etag)
        if response.last_modified is not None:
            self.send_header("Last-Modified", pages.http_date(response.last_modified))
        if response.cache_control is not None:
            self.send_header("Cache-Control", response.cache_control)
        for name, value in response.headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not head and response.status != HTTPStatus.NOT_MODIFIED:
            self.wfile.write(response.body)
        self.server.stats.record(urlsplit(self.path).path, response.status)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)


def _url_host(host: str) -> str:
    """A host for URLs: wildcard binds are reached through loopback; IPv6 gets brackets."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - comparing, not binding
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class DemoShop:
    """The demo shop served on ``host:port`` (port 0 picks a free one).

    ``with DemoShop(catalog) as shop:`` serves from a background thread until the block ends;
    ``shop.url`` is the base URL without a trailing slash. ``serve_forever`` runs in the
    foreground instead.
    """

    def __init__(
        self,
        catalog: DemoCatalog | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        image_cache_size: int = 2048,
    ) -> None:
        self.catalog = catalog if catalog is not None else DemoCatalog.generate(48)
        self.host = host
        self.stats = ShopStats()
        self._requested_port = port
        self._image_cache_size = image_cache_size
        self._server: _ShopServer | None = None
        self._thread: threading.Thread | None = None

    def _bind(self) -> _ShopServer:
        if self._server is not None:
            raise RuntimeError("the demo shop is already running")
        server_class = _ShopServer6 if ":" in self.host else _ShopServer
        server = server_class((self.host, self._requested_port))
        port = server.server_address[1]
        server.app = ShopApp(
            self.catalog,
            f"http://{_url_host(self.host)}:{port}",
            image_cache_size=self._image_cache_size,
        )
        server.stats = self.stats
        self._server = server
        return server

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the demo shop is not running; use start() or a with block")
        return self._server.app.base_url

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the demo shop is not running")
        return int(self._server.server_address[1])

    def product_url(self, product: DemoProduct | str) -> str:
        if isinstance(product, str):
            product = self.catalog.get(product)
        return self.url + pages.product_path(product)

    def image_url(self, product: DemoProduct | str, view: str = "front") -> str:
        if isinstance(product, str):
            product = self.catalog.get(product)
        return self.url + pages.image_path(product, view)

    def start(self) -> Self:
        server = self._bind()
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="demo-shop",
            daemon=True,
        )
        self._thread.start()
        logger.info("demo shop serving %d products at %s", len(self.catalog), self.url)
        return self

    def stop(self) -> None:
        """Stop serving and close the socket and open connections; a no-op when stopped."""
        server, thread = self._server, self._thread
        if server is None:
            return
        if thread is not None:
            server.shutdown()
            thread.join(timeout=5)
        server.close_connections()
        server.server_close()
        self._server = None
        self._thread = None

    def serve_forever(self, on_ready: Callable[[str], None] | None = None) -> None:
        """Serve in the calling thread until interrupted (Ctrl-C); ``on_ready(url)`` once bound."""
        server = self._bind()
        try:
            if on_ready is not None:
                on_ready(self.url)
            server.serve_forever(poll_interval=0.5)
        except KeyboardInterrupt:
            logger.info("demo shop interrupted")
        finally:
            self.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def serve(
    products: int = 200,
    port: int = 8001,
    seed: int = 0,
    host: str = "127.0.0.1",
    *,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Generate a catalog and serve it in the foreground until Ctrl-C or SIGTERM (for CLIs).

    ``on_ready(url)`` is called once the port is bound (the CLI prints the URL there).
    """
    catalog = DemoCatalog.generate(products, seed=seed)
    shop = DemoShop(catalog, host, port)
    if threading.current_thread() is not threading.main_thread():
        shop.serve_forever(on_ready)
        return
    # Containers and process managers stop us with SIGTERM: shut down as on Ctrl-C.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        shop.serve_forever(on_ready)
    finally:
        signal.signal(signal.SIGTERM, previous)
