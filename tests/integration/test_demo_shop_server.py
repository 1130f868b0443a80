"""The demo shop served over real HTTP on 127.0.0.1, fetched with httpx."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit
from urllib.robotparser import RobotFileParser

import httpx
import pytest
from PIL import Image

from services.demo_shop import (
    CATEGORIES,
    PAGE_SIZE,
    DemoCatalog,
    DemoShop,
    listing_path,
    product_path,
    render_image,
)

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
SITEMAP_NS = {"sm": "http://www.sitemaps.org/schemas/sitemap/0.9"}


class PageParser(HTMLParser):
    """Links, images, canonical URL, h1 and JSON-LD blocks of one HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self.head_links: list[tuple[str, str]] = []
        self.images: list[str] = []
        self.json_ld: list[dict[str, object]] = []
        self.h1 = ""
        self._in_json_ld = False
        self._in_h1 = False
        self._buffer: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "a" and "href" in attributes:
            self.links.append((attributes["href"], attributes.get("rel", "")))
        elif tag == "link":
            self.head_links.append((attributes.get("href", ""), attributes.get("rel", "")))
        elif tag == "img":
            self.images.append(attributes["src"])
        elif tag == "script" and attributes.get("type") == "application/ld+json":
            self._in_json_ld, self._buffer = True, []
        elif tag == "h1":
            self._in_h1 = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._in_json_ld:
            self.json_ld.append(json.loads("".join(self._buffer)))
            self._in_json_ld = False
        elif tag == "h1":
            self._in_h1 = False

    def handle_data(self, data: str) -> None:
        if self._in_json_ld:
            self._buffer.append(data)
        elif self._in_h1:
            self.h1 += data

    def rel(self, rel: str) -> list[str]:
        return [href for href, rels in self.links if rel in rels.split()]

    def head_rel(self, rel: str) -> list[str]:
        return [href for href, rels in self.head_links if rel in rels.split()]

    def product_links(self) -> list[str]:
        return [href for href, _ in self.links if href.startswith("/product/")]


def parse(response: httpx.Response) -> PageParser:
    parser = PageParser()
    parser.feed(response.text)
    parser.close()
    return parser


@pytest.fixture(scope="module")
def shop() -> Iterator[DemoShop]:
    """A read-only shop: 60 products, so the all-products listing has three pages."""
    with DemoShop(DemoCatalog.generate(60, seed=3)) as running:
        yield running


@pytest.fixture
def fresh_shop() -> Iterator[DemoShop]:
    """A shop that a test may mutate."""
    with DemoShop(DemoCatalog.generate(30, seed=11)) as running:
        yield running


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as http:
        yield http


def walk_listing(client: httpx.Client, start_url: str) -> tuple[list[str], int]:
    """Follow rel=next from ``start_url``; product paths in order and the number of pages."""
    found: list[str] = []
    url: str | None = start_url
    n_pages = 0
    while url is not None:
        response = client.get(url)
        assert response.status_code == 200, url
        page = parse(response)
        cards = page.product_links()
        assert len(cards) <= PAGE_SIZE
        found.extend(cards)
        n_pages += 1
        next_links = page.rel("next")
        assert page.head_rel("next") == [urljoin(url, href) for href in next_links]
        url = urljoin(url, next_links[0]) if next_links else None
    return found, n_pages


def test_port_zero_binds_a_free_port_and_absolute_urls_use_it(shop: DemoShop) -> None:
    parts = urlsplit(shop.url)
    assert (parts.scheme, parts.hostname) == ("http", "127.0.0.1")
    assert parts.port == shop.port > 0
    assert shop.running


def test_home_links_every_category(shop: DemoShop, client: httpx.Client) -> None:
    response = client.get(shop.url + "/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    hrefs = {href for href, _ in parse(response).links}
    assert {f"/category/{category}" for category in CATEGORIES} <= hrefs
    assert "/products" in hrefs


def test_listing_pagination_reaches_every_product_once(
    shop: DemoShop, client: httpx.Client
) -> None:
    expected = {product_path(p) for p in shop.catalog.products}

    found, n_pages = walk_listing(client, shop.url + "/products")
    assert n_pages == 3
    assert len(found) == len(expected) == 60
    assert set(found) == expected

    first_page = parse(client.get(shop.url + "/products"))
    assert {"/products?page=2", "/products?page=3"} <= {href for href, _ in first_page.links}
    last_page = parse(client.get(shop.url + "/products?page=3"))
    assert last_page.rel("next") == []
    assert last_page.rel("prev") == ["/products?page=2"]


def test_category_listings_also_list_every_product(shop: DemoShop, client: httpx.Client) -> None:
    by_category: dict[str, list[str]] = {}
    for category in CATEGORIES:
        by_category[category], _ = walk_listing(client, shop.url + listing_path(category))

    for product in shop.catalog.products:
        assert product_path(product) in by_category[product.category]
    all_listed = [path for paths in by_category.values() for path in paths]
    assert sorted(all_listed) == sorted(product_path(p) for p in shop.catalog.products)


@pytest.mark.parametrize(
    "path",
    [
        "/nope",
        "/products?page=4",
        "/products?page=0",
        "/products?page=two",
        "/category/socks",
        "/product/no-such-thing",
        "/images/NOPE/front-v1.jpg",
        "/images/DS-00001/side-v1.jpg",
        "/favicon.ico",
    ],
)
def test_unknown_paths_are_404(shop: DemoShop, client: httpx.Client, path: str) -> None:
    assert client.get(shop.url + path).status_code == 404


def test_product_page_has_json_ld_and_visible_fields(shop: DemoShop, client: httpx.Client) -> None:
    product = next(p for p in shop.catalog.products if len(p.views) == 3)
    url = shop.product_url(product)

    response = client.get(url)
    assert response.status_code == 200
    page = parse(response)
    (data,) = page.json_ld
    assert data["@context"] == "https://schema.org"
    assert data["@type"] == "Product"
    assert data["name"] == product.title
    assert data["sku"] == product.sku
    assert data["brand"] == {"@type": "Brand", "name": product.brand}
    assert data["category"] == product.category
    assert data["color"] == product.colour
    assert data["description"] == product.description
    assert data["image"] == [
        f"{shop.url}/images/{product.sku}/{view}-v1.jpg" for view in ("front", "back", "detail")
    ]
    assert data["offers"] == {
        "@type": "Offer",
        "price": str(product.price),
        "priceCurrency": "EUR",
        "availability": f"https://schema.org/{product.availability}",
        "itemCondition": "https://schema.org/NewCondition",
        "url": url,
    }
    assert page.h1 == product.title
    assert page.head_rel("canonical") == [url]
    assert page.images == data["image"]
    assert str(product.price) in response.text


def test_image_is_a_jpeg_rendered_for_the_product(shop: DemoShop, client: httpx.Client) -> None:
    product = next(p for p in shop.catalog.products if "back" in p.views)

    response = client.get(shop.image_url(product, "back"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    image = Image.open(io.BytesIO(response.content))
    image.load()
    assert (image.format, image.size) == ("JPEG", (400, 500))
    assert response.content == render_image(product, "back")

    single_view = next(p for p in shop.catalog.products if p.views == ("front",))
    assert client.get(shop.image_url(single_view, "detail")).status_code == 404


def test_robots_txt_allows_the_catalog_and_names_the_sitemap(
    shop: DemoShop, client: httpx.Client
) -> None:
    response = client.get(shop.url + "/robots.txt")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    robots = RobotFileParser()
    robots.parse(response.text.splitlines())

    product = shop.catalog.products[0]
    assert robots.can_fetch("LookalikeBot", shop.product_url(product))
    assert robots.can_fetch("LookalikeBot", shop.url + "/products?page=2")
    assert robots.can_fetch("LookalikeBot", shop.image_url(product))
    assert not robots.can_fetch("LookalikeBot", shop.url + "/cart")
    assert not robots.can_fetch("LookalikeBot", shop.url + "/account")
    assert robots.site_maps() == [shop.url + "/sitemap.xml"]
    assert client.get(shop.url + "/cart").status_code == 200


def test_sitemap_lists_every_product_with_lastmod(shop: DemoShop, client: httpx.Client) -> None:
    response = client.get(shop.url + "/sitemap.xml")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")

    root = ET.fromstring(response.content)
    entries = {
        url.findtext("sm:loc", namespaces=SITEMAP_NS): url.findtext(
            "sm:lastmod", namespaces=SITEMAP_NS
        )
        for url in root.findall("sm:url", SITEMAP_NS)
    }
    assert entries == {
        shop.product_url(p): p.last_modified.strftime("%Y-%m-%dT%H:%M:%SZ")
        for p in shop.catalog.products
    }


@pytest.mark.parametrize("kind", ["product", "image", "listing", "sitemap"])
def test_validators_answer_304_when_unchanged(
    shop: DemoShop, client: httpx.Client, kind: str
) -> None:
    product = shop.catalog.products[0]
    url = {
        "product": shop.product_url(product),
        "image": shop.image_url(product),
        "listing": shop.url + "/category/" + product.category,
        "sitemap": shop.url + "/sitemap.xml",
    }[kind]

    first = client.get(url)
    etag, last_modified = first.headers["etag"], first.headers["last-modified"]
    assert etag.startswith('"')

    by_etag = client.get(url, headers={"If-None-Match": etag})
    assert (by_etag.status_code, by_etag.content) == (304, b"")
    assert by_etag.headers["etag"] == etag
    by_date = client.get(url, headers={"If-Modified-Since": last_modified})
    assert by_date.status_code == 304
    assert client.get(url, headers={"If-None-Match": f'"other", W/{etag}'}).status_code == 304

    assert client.get(url, headers={"If-None-Match": '"stale"'}).status_code == 200
    stale_date = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert client.get(url, headers={"If-Modified-Since": stale_date}).status_code == 200
    # If-None-Match decides when both are sent.
    both = {"If-None-Match": '"stale"', "If-Modified-Since": last_modified}
    assert client.get(url, headers=both).status_code == 200


def test_head_and_other_methods(shop: DemoShop, client: httpx.Client) -> None:
    url = shop.product_url(shop.catalog.products[0])
    full = client.get(url)
    head = client.head(url)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(full.content))
    assert head.headers["etag"] == full.headers["etag"]

    refused = client.post(shop.url + "/cart", content=b"sku=DS-00001")
    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET, HEAD"


def test_price_change_is_served_with_new_validators(
    fresh_shop: DemoShop, client: httpx.Client
) -> None:
    product = fresh_shop.catalog.products[0]
    url = fresh_shop.product_url(product)
    before = client.get(url)

    fresh_shop.catalog.set_price(product.sku, "12.34")

    after = client.get(url, headers={"If-None-Match": before.headers["etag"]})
    assert after.status_code == 200
    assert after.headers["etag"] != before.headers["etag"]
    assert parse(after).json_ld[0]["offers"]["price"] == "12.34"  # type: ignore[index]
    since_before = client.get(url, headers={"If-Modified-Since": before.headers["last-modified"]})
    assert since_before.status_code == 200
    listing = client.get(fresh_shop.url + listing_path(product.category))
    assert "12.34 EUR" in listing.text


def test_removed_product_disappears_everywhere(fresh_shop: DemoShop, client: httpx.Client) -> None:
    product = fresh_shop.catalog.products[5]
    url, image_url = fresh_shop.product_url(product), fresh_shop.image_url(product)
    assert client.get(url).status_code == 200

    fresh_shop.catalog.remove(product.sku)

    assert client.get(url).status_code == 404
    assert client.get(image_url).status_code == 404
    listed, _ = walk_listing(client, fresh_shop.url + "/products")
    assert product_path(product) not in listed
    assert len(listed) == 29
    category_listed, _ = walk_listing(client, fresh_shop.url + listing_path(product.category))
    assert product_path(product) not in category_listed
    assert url not in client.get(fresh_shop.url + "/sitemap.xml").text


def test_new_product_appears_in_listings_and_sitemap(
    fresh_shop: DemoShop, client: httpx.Client
) -> None:
    sitemap_before = client.get(fresh_shop.url + "/sitemap.xml")

    added = fresh_shop.catalog.add_product(category="bags")

    sitemap = client.get(
        fresh_shop.url + "/sitemap.xml", headers={"If-None-Match": sitemap_before.headers["etag"]}
    )
    assert sitemap.status_code == 200
    assert fresh_shop.product_url(added) in sitemap.text
    listed, _ = walk_listing(client, fresh_shop.url + "/products")
    assert listed[-1] == product_path(added)
    bags, _ = walk_listing(client, fresh_shop.url + "/category/bags")
    assert product_path(added) in bags
    page = parse(client.get(fresh_shop.product_url(added)))
    assert page.json_ld[0]["sku"] == added.sku


def test_bumped_image_gets_a_new_url_and_new_bytes(
    fresh_shop: DemoShop, client: httpx.Client
) -> None:
    product = fresh_shop.catalog.products[2]
    old_url = fresh_shop.image_url(product)
    old_bytes = client.get(old_url).content

    bumped = fresh_shop.catalog.bump_image(product.sku)

    data = parse(client.get(fresh_shop.product_url(product))).json_ld[0]
    new_url = fresh_shop.image_url(bumped)
    assert new_url.endswith("/front-v2.jpg")
    assert data["image"][0] == new_url  # type: ignore[index]
    assert client.get(old_url).status_code == 404
    fresh = client.get(new_url)
    assert fresh.status_code == 200
    assert fresh.content != old_bytes


def test_concurrent_keep_alive_requests(shop: DemoShop) -> None:
    paths = [product_path(p) for p in shop.catalog.products] * 2
    with httpx.Client(base_url=shop.url, timeout=10) as http, ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda path: http.get(path).status_code, paths))
    assert statuses == [200] * len(paths)
    assert shop.stats.requests >= len(paths)


def test_stop_closes_the_port() -> None:
    shop = DemoShop(DemoCatalog.generate(2))
    with pytest.raises(RuntimeError):
        _ = shop.url
    with shop, httpx.Client(timeout=5) as http:
        url = shop.url
        assert http.get(url + "/").status_code == 200
        with pytest.raises(RuntimeError):
            shop.start()
    assert not shop.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/", timeout=2)


def test_module_entry_point_serves_until_terminated() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.demo_shop",
            "--products",
            "30",
            "--port",
            "0",
            "--seed",
            "2",
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        base_url = line.split(" at ")[-1].strip().rstrip("/")
        assert base_url.startswith("http://127.0.0.1:"), line
        with httpx.Client(timeout=10) as http:
            listed, _ = walk_listing(http, base_url + "/products")
        assert len(listed) == 30
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
    assert process.returncode == 0, process.stderr.read() if process.stderr else ""
