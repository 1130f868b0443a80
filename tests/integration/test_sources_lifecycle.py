"""Disabling, enabling, re-adding and removing a source on Postgres: its products follow it in
the same transaction; and the crawl lock (one running crawl per source, with a lease)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from services.scraper.schemas import SourceDefinition
from services.scraper.service import add_sources, disable_source, enable_source, remove_source
from shared.db import Catalog, CrawlStatus, ProductIn, SourceIn
from shared.db.models import CrawlRun, GarmentCrop, Product, ProductImage
from shared.db.sources import CrawlInProgressError
from shared.errors import NotFoundError
from tests.garment_support import add_product

pytestmark = pytest.mark.integration


class Synced:
    """An index sync that records what it was asked (the real one is a broker message)."""

    def __init__(self) -> None:
        self.products: list[int] = []

    def __call__(self, product_ids: object, image_ids: object) -> bool:
        self.products.extend(product_ids)  # type: ignore[arg-type]
        return True


def _shop(catalog: Catalog, name: str, n: int) -> tuple[int, list[int]]:
    source = catalog.upsert_source(SourceIn(name=name, base_url=f"https://{name}.example/"))
    ids = [add_product(catalog, source.id, i, "Hosen", ["trousers"]) for i in range(n)]
    return source.id, ids


def _active(catalog: Catalog, source_id: int) -> int:
    with catalog.reading() as session:
        query = select(func.count()).where(Product.source_id == source_id, Product.active)
        return int(session.scalar(query) or 0)


def test_disable_and_enable_take_products_out_and_back(pg_catalog: Catalog) -> None:
    demo, demo_ids = _shop(pg_catalog, "demo", 3)
    real, _ = _shop(pg_catalog, "real", 2)
    sync = Synced()
    source, count = disable_source(pg_catalog, "demo", sync)
    assert (source.enabled, count, sorted(sync.products)) == (False, 3, demo_ids)
    assert (_active(pg_catalog, demo), _active(pg_catalog, real)) == (0, 2)
    assert [s.name for s in pg_catalog.list_sources(enabled_only=True)] == ["real"]

    # A product that missed its crawls stays out when the source comes back.
    with pg_catalog.writing() as session:
        session.get(Product, demo_ids[0]).missed_runs = 5  # type: ignore[union-attr]
    sync = Synced()
    source, count = enable_source(pg_catalog, "demo", sync)
    assert (source.enabled, count, sorted(sync.products)) == (True, 2, demo_ids[1:])
    assert _active(pg_catalog, demo) == 2


def test_re_adding_a_source_disabled_makes_its_products_inactive(pg_catalog: Catalog) -> None:
    demo, demo_ids = _shop(pg_catalog, "demo-shop", 2)
    definition = SourceDefinition.model_validate(
        {"name": "demo-shop", "base_url": "https://demo-shop.example/", "enabled": False}
    )
    sync = Synced()
    (source,) = add_sources(pg_catalog, [definition], sync=sync)
    assert not source.enabled
    assert _active(pg_catalog, demo) == 0
    assert sorted(sync.products) == demo_ids


def test_remove_deletes_the_source_and_everything_it_had(pg_catalog: Catalog) -> None:
    demo, demo_ids = _shop(pg_catalog, "demo", 3)
    _, real_ids = _shop(pg_catalog, "real", 1)
    pg_catalog.finish_crawl_run(
        pg_catalog.start_crawl_run(demo).id,
        status=CrawlStatus.SUCCEEDED,
        pages=1,
        items=3,
        errors=0,
    )
    sync = Synced()
    assert remove_source(pg_catalog, "demo", sync) == 3
    assert sorted(sync.products) == demo_ids
    with pytest.raises(NotFoundError):
        pg_catalog.get_source("demo")
    with pg_catalog.reading() as session:
        assert session.scalar(select(func.count()).select_from(Product)) == 1
        assert session.scalar(select(func.count()).select_from(ProductImage)) == 1
        assert session.scalar(select(func.count()).select_from(GarmentCrop)) == 1
        assert session.scalar(select(func.count()).where(CrawlRun.source_id == demo)) == 0
    assert pg_catalog.get_products(demo_ids + real_ids).keys() == set(real_ids)
    # The name is free again.
    assert pg_catalog.upsert_source(SourceIn(name="demo", base_url="https://d.example/")).enabled


def test_one_running_crawl_per_source_with_a_lease(pg_catalog: Catalog) -> None:
    demo, _ = _shop(pg_catalog, "demo", 0)
    other, _ = _shop(pg_catalog, "other", 0)
    first = pg_catalog.start_crawl_run(demo, lease_s=60, holder="pid 1 on a")
    pg_catalog.start_crawl_run(other, lease_s=60)  # another source: its own lock
    with pytest.raises(CrawlInProgressError) as busy:
        pg_catalog.start_crawl_run(demo, lease_s=60, holder="pid 2 on b")
    assert "demo is being crawled by pid 1 on a since " in busy.value.message
    assert busy.value.status_code == 409

    # Renewed, the lease holds; not renewed for longer than the lease, it is taken over.
    time.sleep(0.6)
    assert pg_catalog.renew_crawl_lease(first.id)
    with pytest.raises(CrawlInProgressError):
        pg_catalog.start_crawl_run(demo, lease_s=0.5)
    time.sleep(0.6)
    second = pg_catalog.start_crawl_run(demo, lease_s=0.5, holder="pid 2 on b")
    assert second.holder == "pid 2 on b"
    old = next(r for r in pg_catalog.crawl_runs(demo) if r.id == first.id)
    assert old.status is CrawlStatus.FAILED
    assert old.stats["outcome"] == "lease expired: taken over by pid 2 on b"
    assert not pg_catalog.renew_crawl_lease(first.id), "the first crawl learns it lost the lock"

    pg_catalog.finish_crawl_run(second.id, status=CrawlStatus.SUCCEEDED, pages=0, items=0, errors=0)
    assert pg_catalog.start_crawl_run(demo).status is CrawlStatus.RUNNING


def test_a_crawl_writing_after_a_disable_leaves_the_products_inactive(pg_catalog: Catalog) -> None:
    demo, _ = _shop(pg_catalog, "demo", 2)
    pg_catalog.disable_source("demo")
    seen = ProductIn(canonical_url=f"https://shop.example/{demo}/p/0", title="Product 0")
    new = ProductIn(canonical_url=f"https://shop.example/{demo}/p/9", title="Product 9")
    report = pg_catalog.upsert_products(demo, [seen, new])
    assert len(report.created) == 1
    assert _active(pg_catalog, demo) == 0
    pg_catalog.enable_source("demo", max_missed_runs=3)
    assert _active(pg_catalog, demo) == 3
