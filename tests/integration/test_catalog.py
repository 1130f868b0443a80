"""The catalog database API on real SQLite and real Postgres (each test runs on both)."""

from __future__ import annotations

import multiprocessing
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select, update

from shared.db import (
    Catalog,
    CropIn,
    FeedbackIn,
    FeedbackKind,
    ImageIn,
    ImageResult,
    ImageState,
    ModelVersionIn,
    ProductIn,
    SourceIn,
)
from shared.db.models import CrawlStatus, GarmentCrop, ProductImage, utcnow
from shared.errors import InvalidInputError, NotFoundError, ReadOnlyQueryError

pytestmark = pytest.mark.integration

SHOP = "https://shop.example"


def product(n: int, *, price: str = "19.90", images: int = 2, **extra: object) -> ProductIn:
    fields: dict[str, object] = {
        "canonical_url": f"{SHOP}/p/{n}",
        "title": f"Product {n}",
        "brand": "Acme",
        "price": Decimal(price),
        "currency": "eur",
        "category": "tops",
        "category_labels": ("Women", "Tops"),
        "attributes": {"colour": "red"},
        "images": tuple(
            ImageIn(url=f"{SHOP}/img/{n}-{i}.jpg", view="front") for i in range(images)
        ),
    }
    fields.update(extra)
    return ProductIn(**fields)  # type: ignore[arg-type]


@pytest.fixture
def source_id(catalog: Catalog) -> int:
    return catalog.upsert_source(SourceIn(name="acme", base_url=SHOP)).id


def test_upsert_creates_then_leaves_unchanged(catalog: Catalog, source_id: int) -> None:
    items = [product(n) for n in range(3)]

    first = catalog.upsert_products(source_id, items)
    second = catalog.upsert_products(source_id, items)

    assert len(first.created) == 3 and not first.updated
    assert len(first.new_image_ids) == 6
    assert sorted(second.unchanged) == sorted(first.created)
    assert not second.created and not second.updated and not second.new_image_ids
    stored = catalog.get_product(first.created[0])
    assert stored.currency == "EUR"
    assert stored.price == Decimal("19.90")
    assert stored.category_labels == ["Women", "Tops"]
    assert [image.state for image in stored.images] == [ImageState.PENDING] * 2


def test_upsert_updates_changed_fields_and_syncs_images(catalog: Catalog, source_id: int) -> None:
    created = catalog.upsert_products(source_id, [product(1), product(2)]).created
    changed = product(1, price="9.99").model_copy(
        update={
            "images": (ImageIn(url=f"{SHOP}/img/1-0.jpg"), ImageIn(url=f"{SHOP}/img/1-new.jpg"))
        }
    )

    report = catalog.upsert_products(source_id, [changed, product(2)])

    assert report.updated == [created[0]]
    assert report.unchanged == [created[1]]
    assert len(report.new_image_ids) == 1 and len(report.removed_image_ids) == 1
    stored = catalog.get_product(created[0])
    assert stored.price == Decimal("9.99")
    active_urls = {image.url for image in stored.images if image.active}
    assert active_urls == {f"{SHOP}/img/1-0.jpg", f"{SHOP}/img/1-new.jpg"}
    assert catalog.get_image(report.removed_image_ids[0]).active is False


def test_products_unseen_for_n_runs_become_inactive(catalog: Catalog, source_id: int) -> None:
    first_crawl = utcnow()
    ids = catalog.upsert_products(source_id, [product(1), product(2)], seen_at=first_crawl).created
    second_crawl = first_crawl + timedelta(hours=1)
    catalog.upsert_products(source_id, [product(1)], seen_at=second_crawl)

    assert catalog.mark_unseen(source_id, seen_before=second_crawl, max_missed_runs=2) == []
    assert catalog.mark_unseen(source_id, seen_before=second_crawl, max_missed_runs=2) == [ids[1]]
    assert catalog.get_product(ids[1]).active is False
    assert catalog.get_product(ids[0]).active is True

    back = catalog.upsert_products(source_id, [product(2)], seen_at=second_crawl)
    assert back.updated == [ids[1]]
    assert catalog.get_product(ids[1]).active is True


def test_identity_key_is_the_id_else_the_url_path_and_query() -> None:
    assert product(1, external_id="SKU-1").identity_key == "id:SKU-1"
    assert product(1).identity_key == "url:/p/1"
    moved = product(1, canonical_url="http://127.0.0.1:9000/p/1")
    assert moved.identity_key == product(1).identity_key
    with_query = product(1, canonical_url=f"{SHOP}/item?id=7")
    assert with_query.identity_key == "url:/item?id=7"
    assert product(1, canonical_url=f"{SHOP}/item?id=8").identity_key != with_query.identity_key


def moved(item: ProductIn, origin: str) -> ProductIn:
    """The same product as a shop now serving from ``origin`` shows it."""
    return item.model_copy(
        update={
            "canonical_url": item.canonical_url.replace(SHOP, origin),
            "images": tuple(
                image.model_copy(update={"url": image.url.replace(SHOP, origin)})
                for image in item.images
            ),
        }
    )


def test_a_product_seen_at_a_new_address_is_updated_in_place(
    catalog: Catalog, source_id: int
) -> None:
    items = [product(1, external_id="SKU-1"), product(2)]
    ids = catalog.upsert_products(source_id, items).created
    done = catalog.claim_images("w", limit=1)[0]
    catalog.record_image_done(done.id, ImageResult(content_hash="ab", width=2, height=3, n_bytes=4))
    before = catalog.get_products(ids)
    origin = "http://127.0.0.1:8765"

    report = catalog.upsert_products(source_id, [moved(item, origin) for item in items])

    assert (report.created, sorted(report.updated)) == ([], sorted(ids))
    assert report.new_image_ids == [] and report.removed_image_ids == []
    after = catalog.get_products(ids)
    for product_id in ids:
        old, new = before[product_id], after[product_id]
        assert new.canonical_url == old.canonical_url.replace(SHOP, origin)
        assert new.identity_key == old.identity_key
        assert [(i.id, i.state, i.active) for i in new.images] == [
            (i.id, i.state, i.active) for i in old.images
        ]
        assert [i.url for i in new.images] == [i.url.replace(SHOP, origin) for i in old.images]
    assert catalog.get_image(done.id).state is ImageState.DONE
    assert catalog.stats().products_active == 2
    again = catalog.upsert_products(source_id, [moved(item, origin) for item in items])
    assert sorted(again.unchanged) == sorted(ids)


def test_the_id_wins_over_the_url(catalog: Catalog, source_id: int) -> None:
    (first,) = catalog.upsert_products(source_id, [product(1, external_id="SKU-1")]).created
    renamed = product(2, external_id="SKU-1", images=0)

    assert catalog.upsert_products(source_id, [renamed]).updated == [first]
    assert catalog.get_product(first).canonical_url == f"{SHOP}/p/2"
    other = catalog.upsert_products(source_id, [product(3, external_id="SKU-3")])
    assert other.created and other.created != [first]


def test_a_product_that_gains_an_id_keeps_its_row(catalog: Catalog, source_id: int) -> None:
    (first,) = catalog.upsert_products(source_id, [product(1)]).created

    report = catalog.upsert_products(source_id, [product(1, external_id="SKU-1")])

    assert report.updated == [first] and not report.created
    assert catalog.get_product(first).identity_key == "id:SKU-1"


def test_a_url_another_sources_product_holds_is_a_clear_error(
    catalog: Catalog, source_id: int
) -> None:
    catalog.upsert_products(source_id, [product(1)])
    other = catalog.upsert_source(SourceIn(name="mirror", base_url=SHOP)).id
    with pytest.raises(InvalidInputError, match="already the URL of another product"):
        catalog.upsert_products(other, [product(1)])
    assert catalog.stats().products_active == 1


def test_two_sources_with_the_same_sku_keep_two_products(catalog: Catalog, source_id: int) -> None:
    other = catalog.upsert_source(SourceIn(name="other", base_url="https://other.example")).id
    mine = catalog.upsert_products(source_id, [product(1, external_id="SKU-1")]).created
    theirs = catalog.upsert_products(
        other, [moved(product(1, external_id="SKU-1"), "https://other.example")]
    ).created

    assert mine and theirs and mine != theirs
    assert catalog.get_product(theirs[0]).source_id == other


def _upsert_all(url: str, source_id: int, start: Any, queue: multiprocessing.Queue) -> None:
    catalog = Catalog(url)
    catalog.stats()  # connect before the race starts
    start.wait(timeout=60)
    items = [product(n, external_id=f"SKU-{n}") for n in range(40)]
    reports = [catalog.upsert_products(source_id, items[i : i + 10]) for i in range(0, 40, 10)]
    catalog.dispose()
    queue.put(sorted(i for r in reports for i in r.created + r.updated + r.unchanged))


def test_concurrent_writers_of_the_same_products_create_each_once(
    catalog: Catalog, source_id: int
) -> None:
    url = catalog.engine.url.render_as_string(hide_password=False)
    context = multiprocessing.get_context("spawn")
    queue, start = context.Queue(), context.Barrier(2)
    writers = [
        context.Process(target=_upsert_all, args=(url, source_id, start, queue)) for _ in range(2)
    ]
    for writer in writers:
        writer.start()
    results = [queue.get(timeout=120) for _ in writers]
    for writer in writers:
        writer.join(timeout=30)

    assert results[0] == results[1] and len(results[0]) == 40
    assert catalog.stats().products_active == 40


def test_add_images_skips_known_urls(catalog: Catalog, source_id: int) -> None:
    product_id = catalog.upsert_products(source_id, [product(1, images=1)]).created[0]
    new = catalog.add_images(
        product_id, [ImageIn(url=f"{SHOP}/img/1-0.jpg"), ImageIn(url=f"{SHOP}/img/1-9.jpg")]
    )
    assert len(new) == 1
    assert len(catalog.get_product(product_id).images) == 2
    with pytest.raises(NotFoundError):
        catalog.add_images(999_999, [ImageIn(url=f"{SHOP}/x.jpg")])


@pytest.mark.parametrize(
    "bad",
    [
        {"canonical_url": "/relative/path"},
        {"canonical_url": "ftp://shop.example/p/1"},
        {"price": Decimal("-1")},
        {"price": Decimal("1.001")},
        {"currency": "EURO"},
        {"title": "   "},
    ],
)
def test_invalid_products_are_refused_before_the_database(bad: dict[str, object]) -> None:
    fields = product(1).model_dump()
    fields.update(bad)
    with pytest.raises(ValidationError):
        ProductIn(**fields)


def test_image_lifecycle(catalog: Catalog, source_id: int) -> None:
    catalog.register_model_version(
        ModelVersionIn(name="effnet-lite0-v1", kind="embedder", backbone="efficientnet_lite0")
    )
    catalog.upsert_products(source_id, [product(1, images=3)])

    claimed = catalog.claim_images("worker-a", limit=10)
    assert len(claimed) == 3 and all(image.attempts == 1 for image in claimed)
    assert catalog.claim_images("worker-b", limit=10) == []

    done, transient, permanent = claimed
    crop_ids = catalog.record_image_done(
        done.id,
        ImageResult(
            content_hash="ab" * 32,
            width=400,
            height=500,
            n_bytes=12_345,
            model_version="effnet-lite0-v1",
            crops=(CropIn(box=(10, 20, 200, 300), category="tops", score=0.9, point_id="p1"),),
        ),
    )
    assert len(crop_ids) == 1
    again = catalog.record_image_done(
        done.id, ImageResult(content_hash="cd", width=1, height=1, n_bytes=1)
    )
    assert again == []  # re-running replaces crops, never duplicates them

    assert (
        catalog.record_image_failed(transient.id, "timeout", retryable=True) == ImageState.PENDING
    )
    assert catalog.record_image_failed(permanent.id, "HTTP 404") == ImageState.FAILED
    assert catalog.get_image(permanent.id).error == "HTTP 404"
    assert catalog.image_state_counts() == {
        ImageState.PENDING: 1,
        ImageState.PROCESSING: 0,
        ImageState.DONE: 1,
        ImageState.FAILED: 1,
    }
    assert catalog.claim_image(transient.id, "worker-b") is not None
    assert catalog.claim_image(done.id, "worker-b") is None


def test_record_images_done_records_a_chunk_at_once(catalog: Catalog, source_id: int) -> None:
    catalog.register_model_version(
        ModelVersionIn(name="effnet-lite0-v1", kind="embedder", backbone="efficientnet_lite0")
    )
    catalog.upsert_products(source_id, [product(1, images=3)])
    first, second, third = catalog.claim_images("worker-a", limit=10)

    def result(image_id: int, *boxes: tuple[float, float, float, float]) -> ImageResult:
        return ImageResult(
            content_hash="ab" * 32,
            width=400,
            height=500,
            n_bytes=1_000,
            model_version="effnet-lite0-v1",
            crops=tuple(
                CropIn(box=box, category="top", score=0.8, point_id=f"p{image_id}-{i}")
                for i, box in enumerate(boxes)
            ),
        )

    missing = catalog.record_images_done(
        {
            first.id: result(first.id, (0, 0, 10, 10), (5, 5, 50, 50)),
            second.id: result(second.id, (1, 1, 9, 9)),
            999_999: result(999_999, (0, 0, 1, 1)),
        }
    )
    assert missing == [999_999]  # deleted meanwhile: reported, the rest recorded
    assert catalog.get_image(first.id).state == ImageState.DONE
    assert catalog.get_image(third.id).state == ImageState.PROCESSING
    assert catalog.record_images_done({first.id: result(first.id, (2, 2, 8, 8))}) == []
    assert catalog.image_state_counts()[ImageState.DONE] == 2
    with catalog.reading() as session:
        boxes = session.execute(
            select(GarmentCrop.image_id, GarmentCrop.x0).order_by(GarmentCrop.image_id)
        ).all()
    assert [tuple(row) for row in boxes] == [(first.id, 2.0), (second.id, 1.0)]


def test_retryable_failures_stop_after_max_attempts(catalog: Catalog, source_id: int) -> None:
    catalog.upsert_products(source_id, [product(1, images=1)])
    for _ in range(2):
        (image,) = catalog.claim_images("w")
        state = catalog.record_image_failed(image.id, "timeout", retryable=True, max_attempts=2)
    assert state == ImageState.FAILED


def test_stale_claims_are_requeued(catalog: Catalog, source_id: int) -> None:
    catalog.upsert_products(source_id, [product(1, images=2)])
    claimed = catalog.claim_images("dead-worker", limit=2)

    assert catalog.requeue_stale(older_than=timedelta(minutes=10)) == []
    assert catalog.requeue_stale(older_than=timedelta(0)) == sorted(i.id for i in claimed)
    assert catalog.pending_image_ids() == sorted(i.id for i in claimed)


def test_a_claim_takes_at_most_its_limit(catalog: Catalog, source_id: int) -> None:
    """On Postgres the pick once ran as a subquery of the UPDATE and took every pending row."""
    catalog.upsert_products(source_id, [product(1, images=5)])
    first = catalog.claim_images("w", limit=2)
    assert len(first) == 2
    assert catalog.image_state_counts()[ImageState.PENDING] == 3
    assert len(catalog.claim_images("w", limit=10)) == 3


def test_renewed_claims_outlive_the_lease_and_dead_ones_do_not(
    catalog: Catalog, source_id: int
) -> None:
    first, second = catalog.upsert_products(source_id, [product(1, images=2)]).new_image_ids
    alive, dead = catalog.claim_image(first, "alive"), catalog.claim_image(second, "dead")
    assert alive is not None and dead is not None
    with catalog.writing() as session:  # both claims were taken a minute ago
        session.execute(update(ProductImage).values(claimed_at=utcnow() - timedelta(minutes=1)))
    assert catalog.renew_claims("alive", [alive.id, dead.id]) == 1  # only its own claim
    assert catalog.requeue_stale(older_than=timedelta(seconds=30)) == [dead.id]
    assert catalog.claims_of([alive.id, dead.id]) == {alive.id: "alive"}


def test_inactive_images_are_not_claimed(catalog: Catalog, source_id: int) -> None:
    catalog.upsert_products(source_id, [product(1, images=2)])
    catalog.upsert_products(source_id, [product(1, images=1)])
    assert len(catalog.claim_images("w", limit=10)) == 1


def _claim_all(url: str, worker: str, start: Any, queue: multiprocessing.Queue) -> None:
    catalog = Catalog(url)
    catalog.stats()  # connect before the race starts
    start.wait(timeout=60)
    mine: list[int] = []
    while batch := catalog.claim_images(worker, limit=3):
        mine += [image.id for image in batch]
        time.sleep(0.005)  # a real worker processes its batch before claiming again
    catalog.dispose()
    queue.put(mine)


def test_concurrent_workers_never_claim_the_same_image(catalog: Catalog, source_id: int) -> None:
    catalog.upsert_products(source_id, [product(n, images=4) for n in range(50)])
    url = catalog.engine.url.render_as_string(hide_password=False)
    context = multiprocessing.get_context("spawn")
    queue, start = context.Queue(), context.Barrier(2)
    workers = [
        context.Process(target=_claim_all, args=(url, f"w{i}", start, queue)) for i in range(2)
    ]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)

    everything = results[0] + results[1]
    assert len(everything) == 200
    assert len(set(everything)) == 200, "an image was claimed twice"
    assert all(results), "both workers should have got work"


def test_crawl_runs_are_recorded(catalog: Catalog, source_id: int) -> None:
    run = catalog.start_crawl_run(source_id)
    finished = catalog.finish_crawl_run(
        run.id, status=CrawlStatus.SUCCEEDED, pages=12, items=10, errors=1, stats={"http_304": 4}
    )
    assert finished.finished_at is not None and finished.stats == {"http_304": 4}
    assert [r.id for r in catalog.crawl_runs(source_id)] == [run.id]


def test_source_upsert_by_name(catalog: Catalog) -> None:
    first = catalog.upsert_source(SourceIn(name="acme", base_url=SHOP, config={"a": 1}))
    second = catalog.upsert_source(SourceIn(name="acme", base_url=SHOP, config={"a": 2}))
    assert first.id == second.id and catalog.get_source("acme").config == {"a": 2}
    with pytest.raises(NotFoundError):
        catalog.get_source("nope")


def test_model_versions_one_active_per_kind(catalog: Catalog) -> None:
    catalog.register_model_version(ModelVersionIn(name="m1", kind="embedder"), activate=True)
    catalog.register_model_version(ModelVersionIn(name="m2", kind="embedder"), activate=True)
    active = catalog.active_model_version("embedder")
    assert active is not None and active.name == "m2"
    assert catalog.active_model_version("detector") is None


def test_feedback_events(catalog: Catalog, source_id: int) -> None:
    product_id = catalog.upsert_products(source_id, [product(1)]).created[0]
    event_id = catalog.record_feedback(
        FeedbackIn(kind=FeedbackKind.CLICK, product_id=product_id, request_id="r1", position=0)
    )
    rows = catalog.run_query(
        "SELECT kind, product_id FROM feedback_events WHERE id = :id", {"id": event_id}
    )
    assert rows == [{"kind": "click", "product_id": product_id}]
    with pytest.raises(NotFoundError):
        catalog.record_feedback(FeedbackIn(kind=FeedbackKind.CLICK, product_id=424242))


def test_run_query_binds_parameters(catalog: Catalog, source_id: int) -> None:
    catalog.upsert_products(source_id, [product(n) for n in range(5)])
    rows = catalog.run_query(
        "SELECT category, count(*) AS n FROM products WHERE brand = :brand GROUP BY category",
        {"brand": "Acme"},
    )
    assert rows == [{"category": "tops", "n": 5}]
    hostile = catalog.run_query(
        "SELECT count(*) AS n FROM products WHERE title = :t", {"t": "x'; DROP TABLE products; --"}
    )
    assert hostile == [{"n": 0}]
    assert catalog.stats().products_active == 5


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM products",
        "UPDATE products SET title = 'x'",
        "INSERT INTO sources (name) VALUES ('x')",
        "DROP TABLE products",
        "SELECT 1; DELETE FROM products",
        "SELECT 1; COMMIT; DELETE FROM products",
        "/* hi */ TRUNCATE products",
    ],
)
def test_run_query_refuses_writes(catalog: Catalog, source_id: int, sql: str) -> None:
    catalog.upsert_products(source_id, [product(1)])
    with pytest.raises(ReadOnlyQueryError):
        catalog.run_query(sql)
    assert catalog.stats().products_active == 1


def test_run_query_refuses_data_modifying_cte(catalog: Catalog, source_id: int) -> None:
    catalog.upsert_products(source_id, [product(1)])
    sql = (
        "WITH gone AS (DELETE FROM products RETURNING id) SELECT * FROM gone"
        if catalog.dialect == "postgresql"
        else "WITH x AS (SELECT 1) DELETE FROM products"
    )
    with pytest.raises(ReadOnlyQueryError):
        catalog.run_query(sql)
    assert catalog.stats().products_active == 1
    assert catalog.run_query("SELECT count(*) AS n FROM products") == [{"n": 1}]


def test_run_query_reports_bad_sql_and_missing_params(catalog: Catalog) -> None:
    with pytest.raises(InvalidInputError, match="query"):
        catalog.run_query("SELECT * FROM no_such_table")
    with pytest.raises(InvalidInputError):
        catalog.run_query("SELECT :missing AS x")
    with pytest.raises(InvalidInputError, match="more than 2 rows"):
        catalog.run_query("SELECT * FROM (VALUES (1), (2), (3)) AS t", max_rows=2)
    assert catalog.run_query("SELECT ';' AS semi -- trailing; comment") == [{"semi": ";"}]


def test_claims_of_dead_workers_are_released_only_if_still_theirs(
    catalog: Catalog, source_id: int
) -> None:
    catalog.upsert_products(source_id, [product(1, images=3)])
    first, second, third = catalog.claim_images("host:111", limit=3)
    catalog.record_image_done(
        third.id, ImageResult(content_hash="ab", width=1, height=1, n_bytes=1)
    )

    assert catalog.claims_of([first.id, second.id, third.id]) == {
        first.id: "host:111",
        second.id: "host:111",
    }
    released = catalog.release_claims({first.id: "host:111", second.id: "host:999"})

    assert released == [first.id]
    assert catalog.get_image(first.id).state == ImageState.PENDING
    assert catalog.get_image(second.id).state == ImageState.PROCESSING
    assert catalog.release_claims({third.id: "host:111"}) == []
