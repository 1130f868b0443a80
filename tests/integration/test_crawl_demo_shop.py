"""Crawls of the generated demo shop on 127.0.0.1 into the real catalog (Postgres, and SQLite
once), each run as the scheduler runs it: ``python -m services.scraper crawl NAME``."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from services.demo_shop import CATEGORIES, DemoCatalog, DemoShop
from services.embedded import DEMO_SOURCE, register_demo_source
from services.scraper.scheduler import crawl_in_subprocess
from shared.db import Catalog, CrawlStatus, ImageState, ProductOut, SourceIn
from shared.db.schemas import CrawlRunOut
from shared.queue import INDEX_QUEUE, INGEST_QUEUE, INGEST_TASK, SYNC_TASK
from shared.settings import Settings

pytestmark = pytest.mark.integration


def crawl(catalog: Catalog, settings: Settings, name: str) -> CrawlRunOut:
    """One crawl in its own process; the run it recorded."""
    log = settings.data_dir / f"{name}.log"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    result = crawl_in_subprocess(name, settings, timeout_s=120, log_path=log)
    run = catalog.crawl_runs(catalog.get_source(name).id, limit=1)[0]
    assert run.status is not CrawlStatus.RUNNING, log.read_text()
    assert (result.returncode == 0) == (run.status is CrawlStatus.SUCCEEDED), log.read_text()
    return run


def add_source(catalog: Catalog, name: str, shop_url: str, **config: Any) -> int:
    config = {
        "start_urls": [shop_url + "/"],
        "allow_private_addresses": True,
        "demo": True,
        **config,
    }
    return catalog.upsert_source(SourceIn(name=name, base_url=shop_url, config=config)).id


def products(catalog: Catalog, source_id: int) -> dict[str, ProductOut]:
    rows = catalog.list_products(source_id=source_id, active=None, limit=10_000)
    return {row.canonical_url: row for row in rows}


def essence(row: ProductOut) -> tuple[object, ...]:
    """What a crawl may change about a product (``last_seen`` moves on every crawl)."""
    images = [(i.id, i.url, i.active, i.state) for i in row.images]
    fields = (row.title, row.brand, row.price, row.currency, row.category, row.external_id)
    return (*fields, row.attributes, row.active, images)


def assert_matches_shop(
    rows: dict[str, ProductOut],
    shop: DemoShop,
    *,
    structured: bool = True,
    gone_but_active: frozenset[str] = frozenset(),
) -> None:
    """The active rows are exactly the shop's products (plus removed ones not yet missed
    often enough), every field and image as served."""
    expected = {shop.product_url(product): product for product in shop.catalog.products}
    active = {url: row for url, row in rows.items() if row.active}
    assert set(active) == set(expected) | gone_but_active
    for url, product in expected.items():
        row = active[url]
        assert row.title == product.title
        assert row.brand == product.brand
        assert row.price == product.price
        assert row.currency == product.currency
        assert row.category == product.category
        assert row.external_id == product.sku
        assert row.attributes["availability"] == product.availability
        if structured:  # colour is only in the JSON-LD
            assert row.attributes["color"] == product.colour
        images = [image.url for image in row.images if image.active]
        assert images == [shop.image_url(product, view) for view in product.views]


def queued_image_ids(client: redis.Redis) -> list[int]:
    """Image ids of every ingest task waiting in the Redis queue (Celery's message format)."""
    ids: list[int] = []
    for raw in client.lrange(INGEST_QUEUE, 0, -1):
        message = json.loads(raw)
        assert message["headers"]["task"] == INGEST_TASK
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        ids.extend(args[0])
    return sorted(ids)


def queued_syncs(client: redis.Redis) -> tuple[list[int], list[int]]:
    """Product and image ids of every index sync waiting in the Redis queue."""
    products: list[int] = []
    images: list[int] = []
    for raw in client.lrange(INDEX_QUEUE, 0, -1):
        message = json.loads(raw)
        assert message["headers"]["task"] == SYNC_TASK
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        products.extend(args[0])
        images.extend(args[1])
    return sorted(products), sorted(images)


@pytest.fixture
def shop() -> Iterator[DemoShop]:
    with DemoShop(DemoCatalog.generate(30, seed=7)) as shop:
        yield shop


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


def test_full_crawl_then_shop_changes_update_exactly_those_rows(
    pg_catalog: Catalog, pg_settings: Settings, shop: DemoShop, queue: redis.Redis
) -> None:
    # JSON-LD alone: no selectors, no sitemap.
    source_id = add_source(
        pg_catalog, "demo", shop.url, sitemaps="off", deactivate_after_missed_runs=2
    )
    first = crawl(pg_catalog, pg_settings, "demo")
    assert first.status is CrawlStatus.SUCCEEDED
    assert first.stats["complete"] is True
    n = len(shop.catalog)
    assert (first.items, first.errors) == (n, 0)
    assert first.stats["lookalike/products/created"] == n
    assert first.stats["lookalike/pages/product/json-ld"] == n
    before = products(pg_catalog, source_id)
    assert_matches_shop(before, shop)
    image_ids = sorted(i.id for row in before.values() for i in row.images)
    assert all(i.state is ImageState.PENDING for row in before.values() for i in row.images)
    assert queued_image_ids(queue) == image_ids
    requested = shop.stats.by_path()
    assert "/cart" not in requested
    assert "/account" not in requested
    assert requested["/robots.txt"] == 1

    # The shop changes: a new product, a new price, a removed product, new pictures.
    repriced, removed, repictured = shop.catalog.products[:3]
    removed_url = shop.product_url(removed)
    added = shop.catalog.add_product()
    shop.catalog.set_price(repriced.sku, repriced.price + 10)
    shop.catalog.remove(removed.sku)
    shop.catalog.bump_image(repictured.sku)
    shop.stats.reset()
    queue.flushdb()

    second = crawl(pg_catalog, pg_settings, "demo")
    assert second.status is CrawlStatus.SUCCEEDED
    assert second.stats["lookalike/products/created"] == 1
    assert second.stats["lookalike/products/updated"] == 2
    assert second.stats["lookalike/products/unchanged"] == n - 3
    after = products(pg_catalog, source_id)
    assert_matches_shop(after, shop, gone_but_active=frozenset({removed_url}))
    url = shop.product_url
    assert after[url(repriced.sku)].price == repriced.price + 10
    assert after[removed_url].active, "one missed run of two allowed"
    old_pictures = {i.url: i for i in before[url(repictured.sku)].images}
    new_pictures = after[url(repictured.sku)].images
    assert all(not i.active for i in new_pictures if i.url in old_pictures)
    fresh = [i for i in new_pictures if i.url not in old_pictures]
    assert len(fresh) == len(repictured.views)
    assert all(i.state is ImageState.PENDING and i.active for i in fresh)
    untouched = set(before) - {url(repriced.sku), removed_url, url(repictured.sku)}
    for key in untouched:
        assert essence(after[key]) == essence(before[key]), f"{key} changed"
    new_image_ids = sorted([i.id for i in after[url(added.sku)].images] + [i.id for i in fresh])
    assert queued_image_ids(queue) == new_image_ids
    # The index owner is asked to refresh the changed products and drop the replaced pictures.
    changed = sorted([after[url(repriced.sku)].id, after[url(repictured.sku)].id])
    replaced = sorted(i.id for i in new_pictures if i.url in old_pictures)
    assert queued_syncs(queue) == (changed, replaced)
    queue.flushdb()
    # Unchanged pages were revalidated, not downloaded again.
    statuses = shop.stats.by_status()
    assert statuses.get(304, 0) >= n - 3
    assert second.stats["httpcache/revalidate"] >= n - 3

    third = crawl(pg_catalog, pg_settings, "demo")
    assert third.stats["deactivated_products"] == 1
    assert (
        third.stats["lookalike/products/created"],
        third.stats["lookalike/products/updated"],
    ) == (0, 0)
    final = products(pg_catalog, source_id)
    assert not final[removed_url].active
    assert queued_syncs(queue) == ([final[removed_url].id], [])
    assert third.stats["index_sync_requested"] is True
    assert_matches_shop(final, shop)


def test_a_shop_that_moves_to_another_port_keeps_its_products(
    pg_catalog: Catalog, pg_settings: Settings, queue: redis.Redis
) -> None:
    """Issue #14: ``lookalike run`` restarted with another ``--demo-port`` on the same data
    dir re-registers the demo shop at its new address; the re-crawl must not duplicate it."""
    demo = DemoCatalog.generate(30, seed=7)
    with DemoShop(demo) as before_shop:
        register_demo_source(pg_catalog, before_shop.url)
        assert crawl(pg_catalog, pg_settings, DEMO_SOURCE).status is CrawlStatus.SUCCEEDED
        source_id = pg_catalog.get_source(DEMO_SOURCE).id
        before = products(pg_catalog, source_id)
        assert_matches_shop(before, before_shop)
        old_port = before_shop.port
    queue.flushdb()

    with DemoShop(demo) as shop:
        new_port = shop.port
        assert new_port != old_port
        register_demo_source(pg_catalog, shop.url)
        source = pg_catalog.get_source(DEMO_SOURCE)
        assert (source.id, source.base_url) == (source_id, shop.url + "/")
        assert source.config["start_urls"] == [shop.url]
        run = crawl(pg_catalog, pg_settings, DEMO_SOURCE)
        after = products(pg_catalog, source_id)
        assert_matches_shop(after, shop)  # every URL on the new port

    assert run.status is CrawlStatus.SUCCEEDED
    assert run.stats["lookalike/products/created"] == 0
    assert run.stats["lookalike/products/updated"] == len(demo)
    assert len(after) == len(before) == len(demo), "duplicate products"
    assert {row.id for row in after.values()} == {row.id for row in before.values()}
    assert pg_catalog.stats().products_active == len(demo)
    old_images = {i.id: i for row in before.values() for i in row.images}
    new_images = {i.id: i for row in after.values() for i in row.images}
    assert new_images.keys() == old_images.keys(), "images were duplicated, not moved"
    assert all(f":{new_port}/" in image.url for image in new_images.values())
    assert queued_image_ids(queue) == []
    # The index owner is asked to refresh the moved products (their points' image URLs).
    assert queued_syncs(queue) == (sorted(row.id for row in after.values()), [])


def test_sitemap_only_source(pg_catalog: Catalog, pg_settings: Settings, shop: DemoShop) -> None:
    add_source(
        pg_catalog,
        "by-sitemap",
        shop.url,
        start_urls=[],
        sitemap_urls=[shop.url + "/sitemap.xml"],
        sitemaps="only",
    )
    run = crawl(pg_catalog, pg_settings, "by-sitemap")
    assert run.status is CrawlStatus.SUCCEEDED
    assert run.items == len(shop.catalog)
    requested = shop.stats.by_path()
    assert not any(path.startswith(("/products", "/category")) for path in requested)
    assert_matches_shop(products(pg_catalog, pg_catalog.get_source("by-sitemap").id), shop)


def test_selector_configured_source_without_structured_data(
    pg_catalog: Catalog, pg_settings: Settings, shop: DemoShop
) -> None:
    source_id = add_source(
        pg_catalog,
        "by-selectors",
        shop.url,
        start_urls=[shop.url + "/products"],
        sitemaps="off",
        structured_data=False,
        selectors={
            "product_links": "a.product-link::attr(href)",
            "pagination": "nav.pagination a.next::attr(href)",
            "title": "h1.product-title::text",
            "price": "//p[@class='price']/span[@class='amount']/text()",
            "currency": "p.price .currency::text",
            "brand": "p.brand",
            "category": "dd.category::text",
            "images": "img.product-image",
            "sku": "dd.sku::text",
            "availability": "p.availability::text",
        },
        category_map={category.capitalize(): category for category in CATEGORIES},
    )
    run = crawl(pg_catalog, pg_settings, "by-selectors")
    assert run.status is CrawlStatus.SUCCEEDED, run.stats
    assert run.stats["lookalike/pages/product/selectors"] == len(shop.catalog)
    assert_matches_shop(products(pg_catalog, source_id), shop, structured=False)


def test_private_addresses_are_refused_unless_the_source_allows_them(
    pg_catalog: Catalog, pg_settings: Settings, shop: DemoShop
) -> None:
    add_source(pg_catalog, "internal", shop.url, allow_private_addresses=False)
    run = crawl(pg_catalog, pg_settings, "internal")
    assert run.status is CrawlStatus.FAILED
    assert run.stats["lookalike/errors/refused_url"] >= 1
    assert run.items == 0
    assert shop.stats.requests == 0
    assert pg_catalog.list_products(source_id=pg_catalog.get_source("internal").id) == []


def test_the_demo_source_may_reach_exactly_its_own_host_and_port(
    pg_catalog: Catalog, pg_settings: Settings, shop: DemoShop
) -> None:
    register_demo_source(pg_catalog, shop.url)
    config = pg_catalog.get_source(DEMO_SOURCE).config
    assert "allow_private_addresses" not in config
    assert config["allow_private_hosts"] == [shop.url.removeprefix("http://")]
    run = crawl(pg_catalog, pg_settings, DEMO_SOURCE)
    assert run.status is CrawlStatus.SUCCEEDED, run.stats
    assert_matches_shop(products(pg_catalog, pg_catalog.get_source(DEMO_SOURCE).id), shop)

    host, port = shop.url.removeprefix("http://").rsplit(":", 1)
    add_source(
        pg_catalog,
        "next-door",
        shop.url,
        allow_private_addresses=False,
        allow_private_hosts=[f"{host}:{int(port) + 1}", f"localhost:{port}"],
    )
    requests = shop.stats.requests
    refused = crawl(pg_catalog, pg_settings, "next-door")
    assert refused.status is CrawlStatus.FAILED
    assert refused.stats["lookalike/errors/refused_url"] >= 1
    assert shop.stats.requests == requests


def test_broker_down_leaves_images_pending_on_sqlite(
    sqlite_catalog: Catalog, settings: Settings, shop: DemoShop
) -> None:
    down = settings.model_copy(
        update={
            "database_url": str(sqlite_catalog.engine.url),
            "celery_broker_url": "redis://127.0.0.1:1/0",
        }
    )
    source_id = add_source(sqlite_catalog, "demo", shop.url)
    run = crawl(sqlite_catalog, down, "demo")
    assert run.status is CrawlStatus.SUCCEEDED
    rows = products(sqlite_catalog, source_id)
    assert_matches_shop(rows, shop)
    images = [image for row in rows.values() for image in row.images]
    assert all(image.state is ImageState.PENDING for image in images)
    assert run.stats["lookalike/images/left_pending"] == len(images)
    assert sqlite_catalog.pending_image_ids(limit=10_000) == sorted(i.id for i in images)


def test_failed_or_partial_crawls_never_deactivate_products(
    pg_catalog: Catalog, pg_settings: Settings
) -> None:
    with DemoShop(DemoCatalog.generate(12, seed=2)) as shop:
        source_id = add_source(pg_catalog, "flaky", shop.url, deactivate_after_missed_runs=1)
        assert crawl(pg_catalog, pg_settings, "flaky").stats["complete"] is True
        shop_url = shop.url
    # The shop is down: the stored home page is served stale, which is not a success.
    down = crawl(pg_catalog, pg_settings, "flaky")
    assert down.status is CrawlStatus.FAILED
    assert down.stats["complete"] is False
    assert down.stats["seed_failures"] == [shop_url + "/"]
    assert down.stats["lookalike/errors/stale_from_cache"] >= 1
    assert "deactivated_products" not in down.stats
    assert all(row.active for row in products(pg_catalog, source_id).values())

    # Cut short by max_pages: succeeded, but partial, so nothing counts as missed.
    catalog = DemoCatalog.generate(12, seed=2)
    with DemoShop(catalog, port=int(shop_url.rsplit(":", 1)[1])) as again:
        add_source(pg_catalog, "flaky", again.url, deactivate_after_missed_runs=1, max_pages=3)
        partial = crawl(pg_catalog, pg_settings, "flaky")
    assert partial.status is CrawlStatus.SUCCEEDED
    assert partial.stats["complete"] is False
    assert partial.stats["finish_reason"] == "closespider_pagecount"
    assert all(row.active for row in products(pg_catalog, source_id).values())
