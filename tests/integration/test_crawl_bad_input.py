"""A crawl of a deliberately broken shop on 127.0.0.1: every kind of bad page gives a recorded
error or a skipped field, never a crash, and no product is ever half-written."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from services.scraper.scheduler import crawl_in_subprocess
from shared.db import Catalog, CrawlStatus, ImageState, SourceIn
from shared.settings import Settings

pytestmark = pytest.mark.integration

Page = tuple[int, dict[str, str], bytes]


def product(name: str | None, path: str, **extra: Any) -> dict[str, Any]:
    node: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "Product",
        "url": path,
        "offers": {"@type": "Offer", "price": "10.00", "priceCurrency": "EUR"},
        "image": f"{path}.jpg",
        **extra,
    }
    if name is not None:
        node["name"] = name
    return node


def html(*json_ld: str, head: str = "", body: str = "") -> bytes:
    scripts = "".join(f'<script type="application/ld+json">{s}</script>' for s in json_ld)
    return f"<!DOCTYPE html><html><head>{head}{scripts}</head><body>{body}</body></html>".encode()


def site(port_holder: list[int]) -> dict[str, Callable[[str], Page]]:
    """path -> page; pages are built per request so they can name the server's own port."""

    def ok(body: bytes, content_type: str = "text/html; charset=utf-8") -> Page:
        return 200, {"Content-Type": content_type}, body

    def root() -> str:
        return f"http://127.0.0.1:{port_holder[0]}"

    links = [
        "/p/good",
        "/p/malformed",
        "/p/no-price",
        "/p/text-price",
        "/p/invalid-json",
        "/p/invalid-json-microdata",
        "/p/graph",
        "/p/list",
        "/p/dup?ref=a",
        "/p/no-title",
        "/p/missing",
        "/p/broken",
        "/p/loop",
        "/p/endless?n=0",
        "/p/huge",
        "/p/binary",
        "/private/secret",
        "/listing2",
    ]
    listing = "".join(f'<a href="{link}">x</a>' for link in links)
    microdata = (
        '<div itemscope itemtype="https://schema.org/Product"><h1 itemprop="name">Micro</h1>'
        '<meta itemprop="image" content="/micro.jpg"><div itemprop="offers" itemscope '
        'itemtype="https://schema.org/Offer"><span itemprop="price">7,50</span>'
        '<meta itemprop="priceCurrency" content="EUR"></div></div>'
    )
    good = product(
        "Good",
        "/p/good",
        image=[
            "/img/a.jpg",
            "//127.0.0.1:{port}/img/b.jpg",
            "/img/a.jpg",
            "/not-an-image.html",
            "data:image/gif;base64,R0lGOD",
        ],
    )
    routes: dict[str, Callable[[str], Page]] = {
        "/robots.txt": lambda q: ok(b"User-agent: *\nDisallow: /private\n", "text/plain"),
        "/": lambda q: ok(html(body=listing)),
        "/listing2": lambda q: ok(html(body='<a href="/p/good">again</a><a href="/p/dup?ref=b">')),
        "/p/good": lambda q: ok(html(json.dumps(good).replace("{port}", str(port_holder[0])))),
        "/p/malformed": lambda q: ok(
            b"<html><head><script type='application/ld+json'>"
            + json.dumps(product("Mal\x00formed", "/p/malformed")).encode()
            + b"</script></head><body><div><p>unclosed <b>tags</div></span>\x00\xff\xfe<img src=x"
        ),
        "/p/no-price": lambda q: ok(
            html(json.dumps(product("No price", "/p/no-price", offers=None)))
        ),
        "/p/text-price": lambda q: ok(
            html(json.dumps(product("Text price", "/p/text-price", offers={"price": "call us"})))
        ),
        "/p/invalid-json": lambda q: ok(html('{"@type": "Product", "name": "Broken",')),
        "/p/invalid-json-microdata": lambda q: ok(html("{oops", body=microdata)),
        "/p/graph": lambda q: ok(
            html(
                json.dumps(
                    {
                        "@context": "https://schema.org",
                        "@graph": [
                            {"@type": "WebSite", "name": "Broken shop"},
                            product("Graph", "/p/graph", category=None),
                            {
                                "@type": "BreadcrumbList",
                                "itemListElement": [
                                    {"position": 1, "name": "Home"},
                                    {"position": 2, "name": "Hats"},
                                ],
                            },
                        ],
                    }
                )
            )
        ),
        "/p/list": lambda q: ok(
            html(json.dumps([{"@type": "Organization"}, product("Listed", "/p/list")]))
        ),
        "/p/dup": lambda q: ok(
            html(
                json.dumps(product("Dup", "/p/dup")),
                head=f'<link rel="canonical" href="{root()}/p/dup">',
            )
        ),
        "/p/no-title": lambda q: ok(html(json.dumps(product(None, "/p/no-title")))),
        "/p/broken": lambda q: (500, {"Content-Type": "text/html"}, b"<h1>oops</h1>"),
        "/p/loop": lambda q: (302, {"Location": "/p/loop2"}, b""),
        "/p/loop2": lambda q: (302, {"Location": "/p/loop"}, b""),
        "/p/endless": lambda q: (
            302,
            {"Location": f"/p/endless?n={int(q.split('=')[-1] or 0) + 1}"},
            b"",
        ),
        "/p/huge": lambda q: ok(
            html(json.dumps(product("Huge", "/p/huge")), body="x" * (3 * 1024 * 1024))
        ),
        "/p/binary": lambda q: ok(b"\xff\xd8\xff\xe0" + bytes(2000), "image/jpeg"),
    }
    return routes


@pytest.fixture
def broken_shop() -> Iterator[tuple[str, list[str]]]:
    """The broken shop's base URL and the paths it was asked for."""
    port_holder: list[int] = []
    routes = site(port_holder)
    requested: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            requested.append(parts.path)
            route = routes.get(parts.path)
            status, headers, body = (
                route(parts.query) if route else (404, {"Content-Type": "text/html"}, b"gone")
            )
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            # The crawler hangs up on a page too large for it.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            """The crawler hangs up on pages it will not read: expected, not an error."""

    server = Server(("127.0.0.1", 0), Handler)
    port_holder.append(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port_holder[0]}", requested
    finally:
        server.shutdown()
        server.server_close()


def test_every_bad_page_is_an_error_or_a_skipped_field(
    pg_catalog: Catalog, postgres_url: str, tmp_path: Path, broken_shop: tuple[str, list[str]]
) -> None:
    url, requested = broken_shop
    config = {
        "start_urls": [url + "/"],
        "allow_private_addresses": True,
        "sitemaps": "off",
        "default_currency": "EUR",
        "politeness": {
            "concurrency": 4,
            "download_delay": 0,
            "autothrottle": False,
            "max_page_bytes": 1024 * 1024,
            "retries": 1,
            "timeout_s": 10,
        },
    }
    source = pg_catalog.upsert_source(SourceIn(name="broken", base_url=url, config=config))
    settings = Settings(
        database_url=postgres_url,
        celery_broker_url="redis://127.0.0.1:1/0",
        data_dir=tmp_path / "data",
    )
    settings.ensure_dirs()
    log = tmp_path / "crawl.log"
    result = crawl_in_subprocess("broken", settings, timeout_s=120, log_path=log)
    output = log.read_text()
    assert "Traceback" not in output, output
    run = pg_catalog.crawl_runs(source.id, limit=1)[0]
    assert result.returncode == 0, output
    assert run.status is CrawlStatus.SUCCEEDED, run.stats
    stats = run.stats

    rows = {
        row.canonical_url.removeprefix(url): row
        for row in pg_catalog.list_products(source_id=source.id, active=None)
    }
    assert set(rows) == {
        "/p/good",
        "/p/malformed",
        "/p/no-price",
        "/p/text-price",
        "/p/invalid-json-microdata",
        "/p/graph",
        "/p/list",
        "/p/dup",
    }
    # Relative and protocol-relative image URLs made absolute, duplicates and data: dropped,
    # a page that is not an image kept as a URL for ingest to fail later.
    assert [image.url.removeprefix(url) for image in rows["/p/good"].images] == [
        "/img/a.jpg",
        "/img/b.jpg",
        "/not-an-image.html",
    ]
    assert rows["/p/malformed"].title == "Malformed"
    assert rows["/p/no-price"].price is None
    assert rows["/p/text-price"].price is None
    assert rows["/p/invalid-json-microdata"].title == "Micro"
    assert str(rows["/p/invalid-json-microdata"].price) == "7.50"
    assert rows["/p/graph"].category == "hats"
    # Never half-written: every product has its image rows, all pending.
    for row in rows.values():
        assert row.images, row.canonical_url
        assert all(image.state is ImageState.PENDING for image in row.images)

    assert stats["lookalike/errors/http_404"] == 1
    assert stats["lookalike/errors/http_500"] == 1
    assert stats["lookalike/errors/redirect_loop"] == 2  # a cycle, and an endless chain
    assert stats["lookalike/errors/too_large"] == 1
    assert stats["lookalike/errors/invalid_json_ld"] == 2
    assert stats["lookalike/dropped/missing_title"] == 1
    assert stats["lookalike/dropped/duplicate"] == 1
    assert stats["lookalike/skipped/robots_txt"] == 1
    assert stats["lookalike/skipped/price_missing"] == 1
    assert stats["lookalike/skipped/price_invalid"] == 1
    assert stats["lookalike/skipped/image_url_invalid"] == 1
    assert stats["lookalike/pages/not_text"] == 1
    assert run.errors == sum(v for k, v in stats.items() if k.startswith("lookalike/errors/"))
    assert run.items == 8
    assert "/private/secret" not in requested
    assert requested.count("/p/good") == 1  # linked from two listing pages, fetched once
    assert stats["complete"] is True
