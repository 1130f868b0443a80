"""Migrations run on both databases and describe exactly the models."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, MetaData, Table, inspect

from shared.db import Catalog, ProductIn
from shared.db.migrate import current_revision, downgrade, head_revision, upgrade
from shared.db.models import Base, utcnow
from tests.conftest import fresh_postgres_database

pytestmark = pytest.mark.integration


def test_schema_matches_models(catalog: Catalog) -> None:
    with catalog.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    assert current_revision(catalog.engine) == head_revision()


def test_downgrade_to_base_and_back(sqlite_catalog: Catalog) -> None:
    engine = sqlite_catalog.engine
    downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(engine)
    upgrade(engine)  # idempotent
    assert {"products", "product_images", "garment_crops"} <= set(inspect(engine).get_table_names())


@pytest.fixture(params=["sqlite", "postgres"])
def blank_url(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[str]:
    """An empty database of each kind, for migrating step by step."""
    if request.param == "sqlite":
        yield sqlite_url
    else:
        with fresh_postgres_database() as url:
            yield url


def _rows(engine: Engine, table: str, **values: Any) -> None:
    with engine.begin() as conn:
        conn.execute(Table(table, MetaData(), autoload_with=conn).insert(), [values])


def _source(engine: Engine, source_id: int, name: str, seen: datetime) -> None:
    _rows(
        engine,
        "sources",
        id=source_id,
        name=name,
        base_url="http://127.0.0.1:1000",
        config={},
        enabled=True,
        created_at=seen,
        updated_at=seen,
    )


def _product(
    engine: Engine,
    product_id: int,
    source_id: int,
    url: str,
    sku: str | None,
    seen: datetime,
    **columns: Any,
) -> None:
    """A product row of the 0001 schema; ``columns``: those later revisions added."""
    _rows(
        engine,
        "products",
        id=product_id,
        source_id=source_id,
        canonical_url=url,
        external_id=sku,
        title=f"product {product_id}",
        category_labels=[],
        attributes={},
        fingerprint="f",
        active=True,
        missed_runs=0,
        first_seen=seen,
        last_seen=seen,
        updated_at=seen,
        **columns,
    )


def test_0002_keys_existing_products_and_merges_the_duplicates_of_a_move(blank_url: str) -> None:
    catalog = Catalog(blank_url)
    engine = catalog.engine
    upgrade(engine, "0001")
    now = utcnow()
    for source_id, name in ((1, "demo-shop"), (2, "other")):
        _source(engine, source_id, name, now)
    old, new = "http://127.0.0.1:1000", "http://127.0.0.1:2000"
    hour = timedelta(hours=1)
    _product(engine, 1, 1, f"{old}/p/1", "SKU-1", now - hour)  # crawled at the old port
    _product(engine, 2, 1, f"{new}/p/1", "SKU-1", now)  # its duplicate at the new one
    _product(engine, 3, 1, f"{old}/p/3?id=3", None, now - hour)
    _product(engine, 4, 1, f"{new}/p/3?id=3", None, now)
    _product(engine, 5, 2, "https://other.example/p/1", "SKU-1", now)
    _rows(
        engine,
        "product_images",
        id=1,
        product_id=1,
        url=f"{old}/img/1.jpg",
        position=0,
        active=True,
        state="done",
        attempts=1,
        created_at=now,
        updated_at=now,
    )
    _rows(engine, "feedback_events", id=1, kind="click", product_id=1, extra={}, created_at=now)

    upgrade(engine)

    products = {p.id: p for p in catalog.list_products(active=None)}
    assert {i: (p.identity_key, p.active) for i, p in products.items()} == {
        1: ("duplicate:1", False),
        2: ("id:SKU-1", True),
        3: ("duplicate:3", False),
        4: ("url:/p/3?id=3", True),
        5: ("id:SKU-1", True),
    }
    assert products[1].canonical_url == f"{old}/p/1#duplicate-of-2"
    assert products[2].canonical_url == f"{new}/p/1"
    assert catalog.run_query("SELECT product_id FROM feedback_events") == [{"product_id": 2}]
    # The shop moves back: the survivor takes its old URL again.
    item = ProductIn(canonical_url=f"{old}/p/1", title="product 2", external_id="SKU-1")
    assert catalog.upsert_products(1, [item]).updated == [2]
    assert catalog.get_product(2).canonical_url == f"{old}/p/1"

    downgrade(engine, "0001")  # keeps every row (SQLite must not rebuild the table)
    assert catalog.run_query("SELECT count(*) AS n FROM product_images") == [{"n": 1}]
    upgrade(engine)
    catalog.dispose()


def test_0003_gives_existing_crops_an_empty_garment_vote(blank_url: str) -> None:
    catalog = Catalog(blank_url)
    engine = catalog.engine
    upgrade(engine, "0002")
    now = utcnow()
    _source(engine, 1, "acme", now)
    _product(engine, 1, 1, "https://shop.example/p/1", "SKU-1", now, identity_key="id:SKU-1")
    _rows(
        engine,
        "product_images",
        id=1,
        product_id=1,
        url="https://shop.example/img/1.jpg",
        position=0,
        active=True,
        state="done",
        attempts=1,
        created_at=now,
        updated_at=now,
    )
    _rows(
        engine,
        "garment_crops",
        id=1,
        image_id=1,
        x0=0,
        y0=0,
        x1=1,
        y1=1,
        point_id="p1",
        created_at=now,
    )

    upgrade(engine)

    crops = catalog.run_query("SELECT id, garment, garment_p FROM garment_crops")
    assert crops == [{"id": 1, "garment": None, "garment_p": None}]
    assert catalog.garment_votes() == {}
    assert [(row.category, row.how, row.products) for row in catalog.category_garments()] == [
        (None, "unknown", 1)
    ]
    downgrade(engine, "0002")  # keeps the crop
    assert catalog.run_query("SELECT count(*) AS n FROM garment_crops") == [{"n": 1}]
    upgrade(engine)
    catalog.dispose()


def test_0004_keeps_one_running_crawl_per_source(blank_url: str) -> None:
    catalog = Catalog(blank_url)
    engine = catalog.engine
    upgrade(engine, "0003")
    now = utcnow()
    _source(engine, 1, "acme", now)
    for run_id in (1, 2, 3):  # two crawls at once (issue 27), and one before them
        status = "succeeded" if run_id == 1 else "running"
        _rows(
            engine,
            "crawl_runs",
            id=run_id,
            source_id=1,
            status=status,
            started_at=now,
            pages=0,
            items=0,
            errors=0,
            stats={},
        )

    upgrade(engine)

    runs = catalog.run_query("SELECT id, status, holder FROM crawl_runs ORDER BY id")
    assert [(r["id"], r["status"]) for r in runs] == [
        (1, "succeeded"),
        (2, "failed"),
        (3, "running"),
    ]
    assert {r["holder"] for r in runs} == {None}
    downgrade(engine, "0003")
    upgrade(engine)
    catalog.dispose()
