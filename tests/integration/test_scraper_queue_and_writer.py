"""The ingest queue contract with a real broker, and the catalog writer's transactions."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
import redis

from services.scraper.writer import CatalogWriter, CountingStats
from shared.db import Catalog, ImageIn, ProductIn, SourceIn
from shared.queue import (
    INDEX_QUEUE,
    INGEST_QUEUE,
    INGEST_TASK,
    SYNC_TASK,
    enqueue_images,
    request_index_sync,
)
from shared.settings import Settings

pytestmark = pytest.mark.integration


def test_enqueue_sends_the_task_by_name_to_the_ingest_queue(redis_db_url: str) -> None:
    client = redis.Redis.from_url(redis_db_url)
    client.flushdb()
    settings = Settings(celery_broker_url=redis_db_url)
    assert enqueue_images([], settings) is True
    assert enqueue_images(list(range(1, 71)), settings, chunk_size=32) is True
    messages = [json.loads(raw) for raw in client.lrange(INGEST_QUEUE, 0, -1)]
    assert [m["headers"]["task"] for m in messages] == [INGEST_TASK] * 3
    chunks = [json.loads(base64.b64decode(m["body"]))[0][0] for m in messages]
    assert sorted(len(chunk) for chunk in chunks) == [6, 32, 32]
    assert sorted(i for chunk in chunks for i in chunk) == list(range(1, 71))
    assert all(m["properties"]["delivery_info"]["routing_key"] == INGEST_QUEUE for m in messages)
    client.flushdb()
    client.close()


def test_enqueue_with_the_broker_down_returns_false_quickly() -> None:
    settings = Settings(celery_broker_url="redis://127.0.0.1:1/0")
    started = time.monotonic()
    assert enqueue_images([1, 2, 3], settings) is False
    assert time.monotonic() - started < 5


def test_enqueue_on_the_embedded_broker(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert enqueue_images([1, 2], settings) is True
    assert (tmp_path / "broker.sqlite3").is_file()


def test_a_product_the_database_refuses_costs_only_itself(pg_catalog: Catalog) -> None:
    source = pg_catalog.upsert_source(SourceIn(name="s", base_url="https://s.example/"))
    rows = [
        ProductIn(
            canonical_url=f"https://s.example/p/{n}",
            # Postgres refuses NUL in text: the whole batch fails, then each product alone.
            title="bad\x00title" if n == 1 else f"P{n}",
            images=(ImageIn(url=f"https://s.example/{n}.jpg"),),
        )
        for n in range(3)
    ]
    stats = CountingStats()
    enqueued: list[int] = []

    def enqueue(ids: object) -> bool:
        enqueued.extend(ids)  # type: ignore[arg-type]
        return True

    writer = CatalogWriter(pg_catalog, source.id, stats, enqueue=enqueue)
    writer.write(rows)
    written = pg_catalog.list_products(source_id=source.id)
    assert sorted(p.canonical_url for p in written) == [
        "https://s.example/p/0",
        "https://s.example/p/2",
    ]
    assert all(len(p.images) == 1 for p in written)
    assert pg_catalog.run_query("SELECT count(*) AS n FROM product_images")[0]["n"] == 2
    assert stats.values["lookalike/errors/write_failed"] == 1
    assert stats.values["lookalike/products/created"] == 2
    assert sorted(enqueued) == sorted(i.id for p in written for i in p.images)
    assert not writer.failed


def test_an_unreachable_catalog_stops_the_writer(tmp_path: Path) -> None:
    catalog = Catalog("postgresql+psycopg://nobody@127.0.0.1:1/none")
    stopped: list[bool] = []
    stats = CountingStats()
    writer = CatalogWriter(catalog, 1, stats, on_fatal=lambda: stopped.append(True))
    writer.write([ProductIn(canonical_url="https://s.example/p", title="P")])
    writer.write([ProductIn(canonical_url="https://s.example/q", title="Q")])
    assert writer.failed and stopped == [True]
    assert stats.values["lookalike/errors/write_failed"] == 1
    assert "lookalike/catalog_unavailable" in stats.values


def test_index_sync_goes_by_name_to_the_index_queue(redis_db_url: str) -> None:
    client = redis.Redis.from_url(redis_db_url)
    client.flushdb()
    settings = Settings(celery_broker_url=redis_db_url)
    assert request_index_sync(settings) is True  # nothing to sync: nothing sent
    assert request_index_sync(settings, product_ids=[3, 1, 3], image_ids=[7]) is True
    [raw] = client.lrange(INDEX_QUEUE, 0, -1)
    message = json.loads(raw)
    assert message["headers"]["task"] == SYNC_TASK
    assert json.loads(base64.b64decode(message["body"]))[0] == [[1, 3], [7]]
    client.flushdb()
    client.close()
    down = Settings(celery_broker_url="redis://127.0.0.1:1/0")
    assert request_index_sync(down, product_ids=[1]) is False


def test_the_writer_asks_for_an_index_sync_of_changed_products_and_removed_images(
    catalog: Catalog,
) -> None:
    source = catalog.upsert_source(SourceIn(name="s", base_url="https://s.example/"))

    def row(price: str, *images: str) -> ProductIn:
        return ProductIn(
            canonical_url="https://s.example/p/1",
            title="Shirt",
            price=price,
            currency="EUR",
            images=tuple(ImageIn(url=f"https://s.example/{name}.jpg") for name in images),
        )

    synced: list[tuple[list[int], list[int]]] = []

    def sync(product_ids: object, image_ids: object) -> bool:
        synced.append((list(product_ids), list(image_ids)))  # type: ignore[call-overload]
        return True

    stats = CountingStats()
    writer = CatalogWriter(catalog, source.id, stats, sync=sync)
    writer.write([row("10.00", "a", "b")])
    assert synced == []  # a new product has no points yet
    [product] = catalog.list_products(source_id=source.id)
    gone = next(image.id for image in product.images if image.url.endswith("/b.jpg"))
    writer.write([row("12.50", "a")])  # price changed, image b left the page
    assert synced == [([product.id], [gone])]
    writer.write([row("12.50", "a")])  # unchanged: nothing to sync
    assert len(synced) == 1
    assert stats.values["lookalike/index/sync_requested"] == 2
