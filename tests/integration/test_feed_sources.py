"""Feed sources end to end: a shop onboarded from its Shopify ``products.json`` or its Merchant
``feed.xml`` (the demo shop serves both) with one YAML entry and two commands, into the real
catalog (Postgres) and ingest queue (Redis); then updates, and every kind of broken feed,
served over real HTTP on 127.0.0.1 and read as the scheduler reads them (a crawl process)."""

from __future__ import annotations

import gzip
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis

from services.demo_shop import DemoCatalog, DemoShop
from services.demo_shop.feeds import shopify_id
from services.scraper.scheduler import child_environment
from services.scraper.schemas import SourceDefinition
from shared.db import Catalog, CrawlStatus, ProductOut
from shared.db.schemas import CrawlRunOut
from shared.settings import Settings
from tests.integration.test_crawl_demo_shop import queued_image_ids

pytestmark = pytest.mark.integration

Served = tuple[int, dict[str, str], Iterable[bytes]]


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m services.scraper ARGS`` (what ``lookalike ...`` runs) in its own process."""
    return subprocess.run(
        [sys.executable, "-m", "services.scraper", *args],
        env=child_environment(settings),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def read_feed(catalog: Catalog, settings: Settings, name: str) -> tuple[CrawlRunOut, str]:
    """One run of a feed source, as ``lookalike crawl NAME``; the run and what it printed."""
    result = cli(settings, "crawl", name)
    run = catalog.crawl_runs(catalog.get_source(name).id, limit=1)[0]
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert (result.returncode == 0) == (run.status is CrawlStatus.SUCCEEDED), output
    return run, output


def add_feed_source(settings: Settings, tmp_path: Path, name: str, yaml_body: str) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml_body)
    result = cli(settings, "sources", "add", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def rows_of(catalog: Catalog, name: str) -> dict[str, ProductOut]:
    source = catalog.get_source(name)
    rows = catalog.list_products(source_id=source.id, active=None, limit=10_000)
    return {row.canonical_url: row for row in rows}


@pytest.fixture
def pg_settings(postgres_url: str, redis_db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=postgres_url, celery_broker_url=redis_db_url, data_dir=tmp_path / "data"
    )


@pytest.fixture
def queue(redis_db_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_db_url)
    client.flushdb()
    yield client
    client.close()


@pytest.mark.parametrize("kind", ["shopify", "merchant"])
def test_onboard_a_shop_from_its_feed_then_follow_its_changes(
    kind: str,
    pg_catalog: Catalog,
    pg_settings: Settings,
    queue: redis.Redis,
    tmp_path: Path,
) -> None:
    with DemoShop(DemoCatalog.generate(30, seed=11)) as shop:
        demo = shop.catalog
        if kind == "shopify":
            entry = f"feed_url: {shop.url}/products.json\n    currency: EUR"

            def url_of(sku: str) -> str:
                return f"{shop.url}/products/{demo.get(sku).slug}"

            def identity(sku: str) -> str:
                product = demo.get(sku)
                return f"{shopify_id(product)}:{product.colour}"
        else:
            entry = f"feed_url: {shop.url}/feed.xml"

            def url_of(sku: str) -> str:
                return shop.product_url(sku)

            def identity(sku: str) -> str:
                return sku

        yaml_body = (
            f"sources:\n  - name: demo-{kind}\n    {entry}\n    allow_private_addresses: true\n"
        )
        add_feed_source(pg_settings, tmp_path, f"demo-{kind}", yaml_body)
        name = f"demo-{kind}"

        run, output = read_feed(pg_catalog, pg_settings, name)
        assert run.status is CrawlStatus.SUCCEEDED and run.stats["complete"], output
        in_stock = {p.sku for p in demo if p.availability != "OutOfStock"}
        sold_out = {p.sku for p in demo} - in_stock
        assert sold_out  # the generated shop has some: they must not be recommended
        report = run.stats["feed_report"]
        assert report == {
            "added": 30,
            "changed": 0,
            "removed": 0,
            "unchanged": 0,
            "out_of_stock": len(sold_out),
        }
        assert f"feed: 30 added, 0 changed, 0 removed, 0 unchanged ({len(sold_out)} out of" in (
            output
        )
        rows = rows_of(pg_catalog, name)
        assert len(rows) == 30  # every product exactly once
        for product in demo:
            row = rows[url_of(product.sku)]
            assert row.external_id == identity(product.sku)
            assert (row.title, row.brand, row.price, row.currency, row.category) == (
                product.title,
                product.brand,
                product.price,
                product.currency,
                product.category,
            )
            assert row.attributes["color"].lower() == product.colour
            assert [i.url for i in row.images] == [
                shop.image_url(product, view) for view in product.views
            ]
            assert row.active == (product.sku in in_stock)
        # The images reach ingest as crawled ones do: enqueued after the commit.
        assert queued_image_ids(queue) == sorted(i.id for r in rows.values() for i in r.images)

        # Nothing changed: every request answers 304 and the catalog is left alone.
        run, output = read_feed(pg_catalog, pg_settings, name)
        assert run.stats["outcome"] == "feed not modified since the last run"
        assert run.stats["feed_report"]["unchanged"] == len(in_stock)
        assert shop.stats.by_status().get(304, 0) >= 1
        assert rows_of(pg_catalog, name) == rows

        # The shop changes: a price, a product gone, a new one, one sold out.
        on_sale, gone, selling_out = sorted(in_stock)[:3]
        gone_url = url_of(gone)
        demo.set_price(on_sale, "12.34")
        demo.remove(gone)
        demo.set_availability(selling_out, "OutOfStock")
        new = demo.add_product(category="dresses")
        run, output = read_feed(pg_catalog, pg_settings, name)
        assert run.stats["complete"], output
        assert run.stats["feed_report"] == {
            "added": 1,
            "changed": 2,
            "removed": 1,
            "unchanged": 27,
            "out_of_stock": sum(p.availability == "OutOfStock" for p in demo),
        }
        rows = rows_of(pg_catalog, name)
        assert str(rows[url_of(on_sale)].price) == "12.34"
        assert not rows[gone_url].active
        assert not rows[url_of(selling_out)].active
        assert rows[url_of(new.sku)].active == (new.availability != "OutOfStock")
        active = {url for url, row in rows.items() if row.active}
        expected = {url_of(p.sku) for p in demo if p.availability != "OutOfStock"}
        assert active == expected  # 0 stale products


class _FeedServer(ThreadingHTTPServer):
    daemon_threads = True
    routes: dict[str, Callable[[], Served]]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _FeedServer

    def do_GET(self) -> None:
        route = self.server.routes.get(self.path.split("?")[0])
        status, headers, body = route() if route else (404, {}, [b"no such feed"])
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        chunked = "Content-Length" not in headers
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for part in body:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def feed_server() -> Iterator[tuple[str, dict[str, Callable[[], Served]]]]:
    server = _FeedServer(("127.0.0.1", 0), _Handler)
    server.routes = {}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.routes
    finally:
        server.shutdown()
        server.server_close()


XML_TYPE = {"Content-Type": "application/xml"}


def merchant_item(root: str, item_id: str, price: str, *, image: bool = True) -> bytes:
    picture = f"<g:image_link>{root}/img/{item_id}.jpg</g:image_link>" if image else ""
    return (
        f"<item><g:id>{item_id}</g:id><title>Dress {item_id}</title>"
        f"<link>{root}/p/{item_id}</link>{picture}<g:price>{price}</g:price>"
        "<g:product_type>Dresses</g:product_type></item>\n"
    ).encode()


def merchant_feed(root: str, *items: bytes) -> bytes:
    return (
        b'<?xml version="1.0"?>\n<rss version="2.0" xmlns:g="http://base.google.com/ns/1.0">'
        b"<channel>\n" + b"".join(items) + b"</channel></rss>\n"
    )


def add_raw_source(catalog: Catalog, name: str, url: str, currency: str | None = "EUR") -> None:
    """A feed source as its YAML entry defines it (the onboarding test runs the command)."""
    definition = SourceDefinition.model_validate(
        {
            "name": name,
            "feed_url": url,
            "allow_private_addresses": True,
            "politeness": {"retries": 0, "timeout_s": 20},
            **({"currency": currency} if currency else {}),
        }
    )
    catalog.upsert_source(definition.to_source_in())


BOMB = (
    b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
    + b"".join(
        b' <!ENTITY lol%d "%s">\n' % (n, (b"&lol%d;" % (n - 1) if n > 1 else b"&lol;") * 10)
        for n in range(1, 10)
    )
    + b']>\n<rss xmlns:g="http://base.google.com/ns/1.0"><channel><item><g:id>&lol9;</g:id>'
    b"</item></channel></rss>\n"
)


@pytest.mark.parametrize(
    ("case", "served", "reason"),
    [
        (
            "html",
            (200, {"Content-Type": "text/html"}, [b"<html><body>Shop</body></html>"]),
            "answers HTML (text/html), not a product feed",
        ),
        (
            "html-as-xml",
            (200, XML_TYPE, [b"<!DOCTYPE html>\n<html><body>Shop</body></html>"]),
            "answers an HTML page, not a product feed",
        ),
        ("missing", (404, {}, [b"gone"]), "answered HTTP 404"),
        ("broken", (500, {}, [b"oops"]), "answered HTTP 500"),
        (
            "not-gzip",
            (200, {**XML_TYPE, "Content-Encoding": "gzip"}, [b"<rss></rss>"]),
            "declared gzip but the body is not gzip",
        ),
        ("bomb", (200, XML_TYPE, [BOMB]), "an XML bomb"),
        (
            "shopify-without-currency",
            (200, {"Content-Type": "application/json"}, [b'{"products": []}']),
            "a Shopify feed carries no currency: name the shop's currency",
        ),
    ],
)
def test_a_broken_feed_fails_its_run_with_a_clear_error_naming_the_source(
    case: str,
    served: Served,
    reason: str,
    pg_catalog: Catalog,
    pg_settings: Settings,
    feed_server: tuple[str, dict[str, Callable[[], Served]]],
    tmp_path: Path,
) -> None:
    root, routes = feed_server
    routes["/feed.xml"] = lambda: served
    currency = None if case == "shopify-without-currency" else "EUR"
    add_raw_source(pg_catalog, f"broken-{case}", root + "/feed.xml", currency)
    run, output = read_feed(pg_catalog, pg_settings, f"broken-{case}")
    assert run.status is CrawlStatus.FAILED
    outcome = run.stats["outcome"]
    assert outcome.startswith(f"broken-{case}: feed {root}/feed.xml"), outcome
    assert reason in outcome, outcome
    assert reason in output  # the command says it too
    assert rows_of(pg_catalog, f"broken-{case}") == {}


def test_a_malformed_feed_changes_nothing_in_the_catalog(
    pg_catalog: Catalog,
    pg_settings: Settings,
    feed_server: tuple[str, dict[str, Callable[[], Served]]],
    tmp_path: Path,
) -> None:
    root, routes = feed_server
    good = merchant_feed(
        root,
        merchant_item(root, "A", "1.299,00 EUR"),
        merchant_item(root, "B", "1,299.00 EUR"),
        merchant_item(root, "C", "15.00"),
    )
    routes["/feed.xml"] = lambda: (
        200,
        {**XML_TYPE, "Content-Encoding": "gzip"},
        [gzip.compress(good)],
    )
    add_raw_source(pg_catalog, "shaky", root + "/feed.xml")
    run, _ = read_feed(pg_catalog, pg_settings, "shaky")
    assert run.status is CrawlStatus.SUCCEEDED and run.stats["feed_report"]["added"] == 3
    before = rows_of(pg_catalog, "shaky")
    assert {url.removeprefix(root): str(row.price) for url, row in before.items()} == {
        "/p/A": "1299.00",
        "/p/B": "1299.00",
        "/p/C": "15.00",  # no currency in the feed: the source's EUR
    }
    assert {row.currency for row in before.values()} == {"EUR"}

    # A's price changes, C is gone, and the document breaks on line 4.
    broken = merchant_feed(root, merchant_item(root, "A", "9.99 EUR"), b"<item><g:id>B</item>\n")
    routes["/feed.xml"] = lambda: (200, XML_TYPE, [broken])
    run, _ = read_feed(pg_catalog, pg_settings, "shaky")
    assert run.status is CrawlStatus.FAILED
    assert "shaky: feed" in run.stats["outcome"]
    assert "line 4: malformed XML: Opening and ending tag mismatch" in run.stats["outcome"]
    after = rows_of(pg_catalog, "shaky")
    assert {url: (row.price, row.active) for url, row in after.items()} == {
        url: (row.price, row.active) for url, row in before.items()
    }
    assert [r.last_seen for r in after.values()] == [r.last_seen for r in before.values()]


def test_200_mb_of_xml_is_streamed_not_held(
    pg_catalog: Catalog,
    pg_settings: Settings,
    feed_server: tuple[str, dict[str, Callable[[], Served]]],
    tmp_path: Path,
) -> None:
    root, routes = feed_server
    filler = merchant_item(root, "X", "1.00 EUR", image=False).replace(
        b"</title>", b"</title><description>" + b"lorem ipsum " * 5461 + b"</description>"
    )
    count = 200 * 1024 * 1024 // len(filler)

    def huge() -> Iterator[bytes]:
        yield merchant_feed(root, merchant_item(root, "A", "10.00 EUR")).split(b"</channel>")[0]
        for n in range(count):  # items without an image: read, reported, skipped
            yield filler.replace(b"<g:id>X</g:id>", b"<g:id>X%d</g:id>" % n)
        yield merchant_item(root, "Z", "20.00 EUR") + b"</channel></rss>\n"

    routes["/big.xml"] = lambda: (200, XML_TYPE, huge())
    add_raw_source(pg_catalog, "big", root + "/big.xml")
    run, _ = read_feed(pg_catalog, pg_settings, "big")
    stats = run.stats
    assert run.status is CrawlStatus.SUCCEEDED, stats
    assert stats["lookalike/feed/skipped/no_image"] == count
    assert run.stats["feed_report"]["added"] == 2
    growth = stats["lookalike/feed/peak_rss_mb"] - stats["lookalike/feed/rss_at_start_mb"]
    assert growth < 60, f"reading {count * len(filler) >> 20} MB grew the process by {growth} MB"


def test_one_shop_as_two_feeds_is_one_offer_group_per_product(
    pg_catalog: Catalog, pg_settings: Settings, tmp_path: Path
) -> None:
    """The demo shop's products carry GTINs (``g:gtin``, Shopify variants' ``barcode``): read
    as two shops, each product is one offer group of two, merged on its GTIN."""
    with DemoShop(DemoCatalog.generate(8, seed=5)) as shop:
        yaml_body = (
            f"sources:\n  - name: as-shopify\n    feed_url: {shop.url}/products.json\n"
            f"    currency: EUR\n    allow_private_addresses: true\n"
            f"  - name: as-merchant\n    feed_url: {shop.url}/feed.xml\n"
            f"    allow_private_addresses: true\n"
        )
        add_feed_source(pg_settings, tmp_path, "two-feeds", yaml_body)
        for name in ("as-shopify", "as-merchant"):
            run, output = read_feed(pg_catalog, pg_settings, name)
            assert run.status is CrawlStatus.SUCCEEDED, output
        groups = pg_catalog.list_offer_groups()
        assert len(groups) == len(shop.catalog)
        shopify, merchant = rows_of(pg_catalog, "as-shopify"), rows_of(pg_catalog, "as-merchant")
        for product in shop.catalog:
            pair = {
                shopify[f"{shop.url}/products/{product.slug}"].id,
                merchant[shop.product_url(product.sku)].id,
            }
            [group] = [g for g in groups if {o.product_id for o in g.offers} == pair]
            assert {(o.kind, o.value) for o in group.offers} == {("gtin", f"0{product.gtin}")}
            assert {o.shop for o in group.offers} == {"as-shopify", "as-merchant"}
