"""The ingest pipeline in this process, on a real catalog (SQLite and Postgres), a real Qdrant
Edge index, the real model and the demo shop serving images on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis
from sqlalchemy import update

from services.demo_shop.catalog import DemoCatalog
from services.demo_shop.server import DemoShop
from services.ingest import indexing
from services.ingest.pipeline import (
    IngestRuntime,
    SourcePolicy,
)
from services.ingest.sweeper import Sweeper
from shared import index_layout
from shared.colour import COLOUR_DIM, SHOPPER_COLOURS
from shared.db import Catalog, ImageIn, ProductIn, SourceOut
from shared.db.models import GarmentCrop, ImageState, ProductImage, utcnow
from shared.detection import COARSE_CATEGORIES
from shared.ratelimit import MemoryRateLimiter, RedisRateLimiter
from shared.settings import Settings
from shared.taxonomy import garment_class
from shared.vectors import EdgeIndex, PayloadFilter
from tests.ingest_support import (
    demo_items,
    demo_source,
    hostile_server,
    link_models,
    shared_models_dir,
)

pytestmark = [
    pytest.mark.integration,
    # kombu's SQLAlchemy transport (the sweeper asks the SQLite broker for its queue depth)
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning"),
]

ACTIVE = PayloadFilter(equals={"active": 1})


@pytest.fixture(scope="module")
def shop() -> Iterator[DemoShop]:
    with DemoShop(DemoCatalog.generate(6, seed=3), port=0) as running:
        yield running


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_models_dir(tmp_path_factory)


@pytest.fixture
def runtime(
    catalog: Catalog, settings: Settings, models_dir: Path, tmp_path: Path
) -> Iterator[IngestRuntime]:
    link_models(settings.data_dir, models_dir)
    settings = settings.model_copy(
        update={"ingest": settings.ingest.model_copy(update={"max_image_bytes": 200_000})}
    )
    ingest = IngestRuntime.build(settings, catalog=catalog, index=EdgeIndex(tmp_path / "index"))
    ingest.owns_index = True
    yield ingest
    ingest.close()


def _crops(catalog: Catalog) -> list[GarmentCrop]:
    with catalog.reading() as session:
        return list(session.query(GarmentCrop).order_by(GarmentCrop.image_id))


def test_catalog_becomes_searchable(runtime: IngestRuntime, shop: DemoShop) -> None:
    catalog, index = runtime.catalog, runtime.index
    source = demo_source(catalog, shop.url)
    ids = catalog.upsert_products(source.id, demo_items(shop)).new_image_ids

    report = runtime.pipeline.process(ids)

    assert sorted(report.done) == sorted(ids), report
    assert all(catalog.get_image(i).state is ImageState.DONE for i in ids)
    crops = _crops(catalog)
    assert len(crops) == len(ids) == index.count(index_layout.ALIAS) == report.points
    embedder = runtime.pipeline.models.current()
    model = embedder.info
    assert index.resolve(index_layout.ALIAS) == index_layout.collection_name(model.version)
    # The default embedding has a classifier head: the crops' votes come from the same pass as
    # their vectors, and they are what the model classifies on its own.
    assert model.classes and runtime.pipeline.models.classifier(embedder) is embedder
    first = catalog.get_image(crops[0].image_id)
    _, alone = embedder.classify([httpx.get(first.url, trust_env=False).content])
    best = int(np.argmax(alone[0]))
    assert garment_class(model.classes[best]).name == crops[0].garment  # type: ignore[union-attr]
    assert crops[0].garment_p == pytest.approx(float(alone[0][best]), abs=1e-3)
    for crop in crops:
        image = catalog.get_image(crop.image_id)
        product = catalog.get_product(image.product_id)
        assert crop.point_id is not None
        assert (crop.x0, crop.y0, crop.x1, crop.y1) == (0, 0, image.width, image.height)
        [point] = index.retrieve(index_layout.ALIAS, [crop.point_id], with_vectors=True)
        votes = point.payload.pop("garment_votes")
        assert len(votes) == 2 and votes[0][1] >= votes[1][1] > 0
        # The crop's named colour (shared.colour) and its probability.
        assert point.payload.pop("colour_name") in SHOPPER_COLOURS
        assert 0 < point.payload.pop("colour_p") <= 1
        assert crop.garment == votes[0][0] and crop.garment_p == votes[0][1]
        # The demo shop's categories are taxonomy words: the crop is indexed as its product.
        garment = garment_class(product.category)
        assert garment is not None
        assert point.payload == {
            "product_id": product.id,
            "image_id": image.id,
            "category": product.category,
            "crop_category": None,
            "brand": product.brand,
            "price": float(product.price) if product.price is not None else None,
            "currency": product.currency,
            "active": 1,
            "bbox": [0.0, 0.0, float(image.width), float(image.height)],
            "score": 1.0,
            "image_url": image.url,
            "model_version": model.version,
            "source": "demo-shop",
            "garment": garment.name,
            "garment_parent": garment.parent,
        }
        assert point.vectors is not None
        assert len(point.vectors["cnn"]) == model.dim
        assert np.allclose(point.vectors["cnn"], point.vectors["cnn_l1"])
        assert len(point.vectors["colour"]) == COLOUR_DIM
        for name in ("cnn", "cnn_l1"):
            [best] = index.search(
                index_layout.ALIAS, name, point.vectors[name], limit=1, where=ACTIVE
            )
            assert best.id == point.id


def test_rerunning_is_harmless(runtime: IngestRuntime, shop: DemoShop) -> None:
    catalog, index = runtime.catalog, runtime.index
    source = demo_source(catalog, shop.url)
    ids = catalog.upsert_products(source.id, demo_items(shop, 3)).new_image_ids
    runtime.pipeline.process(ids)
    points = {crop.point_id for crop in _crops(catalog)}

    again = runtime.pipeline.process(ids)  # a duplicate message: nothing is pending
    assert again.skipped == sorted(ids) and not again.done

    # As if a worker died after writing the points: the sweeper gives the images back.
    with catalog.writing() as session:
        session.execute(
            update(ProductImage)
            .where(ProductImage.id.in_(ids))
            .values(state=ImageState.PROCESSING, claimed_by="gone:1", claimed_at=utcnow())
        )
    assert catalog.requeue_stale(older_than=timedelta(0)) == sorted(ids)
    redo = runtime.pipeline.process(ids)
    assert sorted(redo.done) == sorted(ids)
    assert {crop.point_id for crop in _crops(catalog)} == points
    assert index.count(index_layout.ALIAS) == len(points) == len(ids)


def test_bad_images_fail_with_their_reason(runtime: IngestRuntime, shop: DemoShop) -> None:
    catalog, index = runtime.catalog, runtime.index
    with hostile_server() as hostile:
        local = demo_source(catalog, hostile, name="local")
        strict = demo_source(catalog, shop.url, name="strict", allow_private_addresses=False)
        paths = ["missing.jpg", "page.jpg", "corrupt.jpg", "bomb.png", "huge.jpg", "busy.jpg"]
        items = [
            ProductIn(
                canonical_url=f"{hostile}/product/{i}",
                title=f"product {i}",
                images=(ImageIn(url=f"{hostile}/{path}"), ImageIn(url=f"{hostile}/ok.jpg")),
            )
            for i, path in enumerate(paths)
        ]
        catalog.upsert_products(local.id, items)
        catalog.upsert_products(strict.id, demo_items(shop, 1))
        images = {
            image.url.rsplit("/", 1)[1] if image.url.startswith(hostile) else "private": image.id
            for product in catalog.list_products()
            for image in product.images
        }
        ids = catalog.pending_image_ids()

        report = runtime.pipeline.process(ids)

    reasons = {name: catalog.get_image(i).error or "" for name, i in images.items()}
    states = {name: catalog.get_image(i).state for name, i in images.items()}
    expected = {
        "missing.jpg": "HTTP 404",
        "page.jpg": "is not an image",
        "corrupt.jpg": "corrupt",
        "bomb.png": "pixels",
        "huge.jpg": "limit",
        "private": "private, loopback or reserved address",
    }
    for name, words in expected.items():
        assert states[name] is ImageState.FAILED, (name, states[name])
        assert words in reasons[name], (name, reasons[name])
    # Transient (503): back to pending with the attempt counted, for the task to retry.
    assert states["busy.jpg"] is ImageState.PENDING and "HTTP 503" in reasons["busy.jpg"]
    assert list(report.retry) == [images["busy.jpg"]]
    # The good image of every product went through; only good images are in the index.
    ok = [i for product in catalog.list_products() for i in product.images if "ok.jpg" in i.url]
    assert len(ok) == 6 and all(image.state is ImageState.DONE for image in ok)
    assert index.count(index_layout.ALIAS) == len(report.done) == 6
    # Past max_attempts the transient failure becomes permanent.
    busy = images["busy.jpg"]
    for _ in range(runtime.settings.ingest.max_attempts - 1):
        runtime.pipeline.process([busy])
    assert catalog.get_image(busy).state is ImageState.FAILED


def test_inactive_and_removed_leave_the_index(runtime: IngestRuntime, shop: DemoShop) -> None:
    catalog, index = runtime.catalog, runtime.index
    source = demo_source(catalog, shop.url)
    items = demo_items(shop, 4)
    catalog.upsert_products(source.id, items)
    runtime.pipeline.process(catalog.pending_image_ids())
    products = catalog.list_products()
    gone, lost, kept = products[0], products[1], products[2]

    def active_points(product_id: int) -> int:
        where = PayloadFilter(equals={"product_id": product_id, "active": 1})
        return index.count(index_layout.ALIAS, where)

    # The scraper deactivates a product and asks for a sync (the task calls this).
    catalog.mark_unseen(source.id, seen_before=utcnow(), max_missed_runs=1)
    catalog.upsert_products(source.id, [items[1], items[2], items[3]])  # seen again
    deactivated = [p.id for p in catalog.list_products(active=False)]
    assert deactivated == [gone.id]
    indexing.sync_products(index, catalog, deactivated)
    assert (
        active_points(gone.id)
        == 0
        < index.count(index_layout.ALIAS, PayloadFilter(equals={"product_id": gone.id}))
    )
    assert active_points(kept.id) == len(kept.images)

    # It comes back: active again, with the new price.
    back = items[0].model_copy(update={"price": items[0].price + 1})
    assert catalog.upsert_products(source.id, [back]).updated == [gone.id]
    indexing.sync_products(index, catalog, [gone.id])
    [hit] = index.search(
        index_layout.ALIAS,
        "cnn",
        [1.0] * runtime.pipeline.models.current().info.dim,
        limit=1,
        where=PayloadFilter(equals={"product_id": gone.id, "active": 1}),
    )
    assert hit.payload["price"] == float(back.price)

    # An image the shop no longer lists: its points are deleted.
    fewer = items[2].model_copy(update={"images": items[2].images[:1]})
    removed = catalog.upsert_products(source.id, [fewer]).removed_image_ids
    assert len(removed) == len(items[2].images) - 1 > 0
    assert index.count(index_layout.ALIAS, PayloadFilter(equals={"image_id": removed})) > 0
    indexing.sync_images(index, catalog, removed)
    assert index.count(index_layout.ALIAS, PayloadFilter(equals={"image_id": removed})) == 0
    items[2] = fewer

    # A sync message lost: the sweeper's first reconcile deactivates every inactive product.
    catalog.mark_unseen(source.id, seen_before=utcnow(), max_missed_runs=1)
    catalog.upsert_products(source.id, [items[0], items[2], items[3]])
    assert [p.id for p in catalog.list_products(active=False)] == [lost.id]
    assert active_points(lost.id) == len(lost.images)
    Sweeper(catalog, runtime.settings, index=index).sweep()
    assert active_points(lost.id) == 0


def test_a_moved_product_serves_its_new_image_urls(runtime: IngestRuntime, shop: DemoShop) -> None:
    catalog, index = runtime.catalog, runtime.index
    source = demo_source(catalog, shop.url)
    [item] = demo_items(shop, 1)
    (product_id,) = catalog.upsert_products(source.id, [item]).created
    runtime.pipeline.process(catalog.pending_image_ids())
    moved_to = shop.url.replace("127.0.0.1", "localhost")
    moved = item.model_copy(
        update={
            "canonical_url": item.canonical_url.replace(shop.url, moved_to),
            "images": tuple(
                i.model_copy(update={"url": i.url.replace(shop.url, moved_to)}) for i in item.images
            ),
        }
    )

    assert catalog.upsert_products(source.id, [moved]).updated == [product_id]
    assert catalog.pending_image_ids() == []  # the moved images keep their embeddings
    indexing.sync_products(index, catalog, [product_id])

    hits = index.search(
        index_layout.ALIAS,
        "cnn",
        [1.0] * runtime.pipeline.models.current().info.dim,
        limit=100,
        where=PayloadFilter(equals={"product_id": product_id}),
    )
    assert hits
    assert {hit.payload["image_url"] for hit in hits} <= {i.url for i in moved.images}


def test_point_ids_and_collection_names() -> None:
    box = (0.0, 0.0, 400.0, 500.0)
    assert index_layout.point_id(1, 2, box, "m-v1") == index_layout.point_id(1, 2, box, "m-v1")
    assert (
        len(
            {
                index_layout.point_id(1, 2, box, "m-v1"),
                index_layout.point_id(1, 3, box, "m-v1"),
                index_layout.point_id(1, 2, (0.0, 0.0, 400.0, 499.0), "m-v1"),
                index_layout.point_id(1, 2, box, "m-v2"),
            }
        )
        == 4
    )
    assert index_layout.collection_name("efficientnet_lite0-imagenet") == (
        "catalog__efficientnet_lite0-imagenet"
    )
    odd = index_layout.collection_name("Street Model/v2")
    assert odd.startswith("catalog__street-model-v2-") and "/" not in odd


def test_source_policy_follows_politeness() -> None:
    assert SourcePolicy.of(None) == SourcePolicy(rate_per_s=4.0, burst=4)
    demo = SourcePolicy.of(_source({"demo": True, "allow_private_addresses": True}))
    assert (demo.rate_per_s, demo.allow_private) == (0.0, True)
    slow = SourcePolicy.of(_source({"politeness": {"download_delay": 2.0, "concurrency": 1}}))
    assert (slow.rate_per_s, slow.burst, slow.allow_private) == (0.5, 1, False)
    named = SourcePolicy.of(_source({"allow_private_hosts": ["127.0.0.1:8001"]}))
    assert (named.allow_private, named.private_hosts) == (False, {"127.0.0.1:8001"})


def _source(config: dict[str, object]) -> SourceOut:
    return SourceOut(
        id=1,
        name="s",
        base_url="https://shop.example",
        config=config,
        enabled=True,
        created_at=datetime.now(UTC),
    )


def test_rate_limits_are_shared_through_redis(redis_db_url: str) -> None:
    local = MemoryRateLimiter()
    started = time.monotonic()
    for _ in range(4):
        local.acquire("shop.example", rate_per_s=20.0, burst=2)
    assert time.monotonic() - started >= 0.09  # 2 at once, then 50 ms apart

    # Two limiters (two worker processes) share one budget per host.
    a, b = RedisRateLimiter(redis_db_url), RedisRateLimiter(redis_db_url)
    try:
        started = time.monotonic()
        for limiter in (a, b, a, b, a, b):
            limiter.acquire("cdn.example", rate_per_s=20.0, burst=1)
        assert time.monotonic() - started >= 0.24
    finally:
        a.close()
        b.close()
        redis.Redis.from_url(redis_db_url).delete("lookalike:ratelimit:cdn.example")


def test_detection_crops_catalog_images_when_enabled(
    catalog: Catalog, settings: Settings, models_dir: Path, tmp_path: Path, shop: DemoShop
) -> None:
    """With ``crops.detect`` each point is a garment the detector found: a tight box inside
    the product shot, with the detector's score (and category, when its model path answered)
    in the payload."""
    link_models(settings.data_dir, models_dir)
    settings = settings.model_copy(
        update={"crops": settings.crops.model_copy(update={"detect": True})}
    )
    ingest = IngestRuntime.build(settings, catalog=catalog, index=EdgeIndex(tmp_path / "index"))
    ingest.owns_index = True
    try:
        source = demo_source(catalog, shop.url)
        ids = catalog.upsert_products(source.id, demo_items(shop)).new_image_ids
        report = ingest.pipeline.process(ids)
        assert sorted(report.done) == sorted(ids), report
        crops = _crops(catalog)
        assert len(crops) >= len(ids) and report.points == len(crops)
        tight = 0
        for crop in crops:
            image = catalog.get_image(crop.image_id)
            assert 0 <= crop.x0 < crop.x1 <= image.width and 0 <= crop.y0 < crop.y1 <= image.height
            [point] = ingest.index.retrieve(index_layout.ALIAS, [crop.point_id])
            assert point.payload["bbox"] == pytest.approx(
                [crop.x0, crop.y0, crop.x1, crop.y1], abs=0.01
            )
            whole = (crop.x0, crop.y0, crop.x1, crop.y1) == (0, 0, image.width, image.height)
            if not whole:
                tight += 1
                # The foreground path (product shots) boxes objects without naming them.
                assert point.payload["crop_category"] in {None, *COARSE_CATEGORIES}
                assert 0 < point.payload["score"] <= 1
        assert tight >= len(ids) // 2, "product shots should get tight foreground boxes"
    finally:
        ingest.close()


def test_every_crop_is_indexed_under_a_garment_class_whatever_the_shop_calls_it(
    runtime: IngestRuntime, shop: DemoShop
) -> None:
    """No labels at all, labels in another language, nested labels and an operator's pin:
    every crop gets a taxonomy class (so a shopper's search can be scoped), except under a
    label that names no garment, and the catalog shows each category's mapping with how it was
    decided."""
    catalog, index = runtime.catalog, runtime.index
    items = demo_items(shop)
    renamed = {
        "pants": "Damen > Hosen",
        "skirts": "Women > Clothing > Skirts",
        "dresses": "Beauty > Fragrance",
    }
    unlabelled = items[0].model_copy(update={"category": None})
    foreign = [
        item.model_copy(update={"category": renamed.get(item.category or "", item.category)})
        for item in items[1:]
    ]
    pinned = next(i.category for i in foreign if i.category and ">" not in i.category)
    source = demo_source(catalog, shop.url, garment_map={pinned: "hat"})
    ids = catalog.upsert_products(source.id, [unlabelled, *foreign]).new_image_ids
    runtime.pipeline.process(ids)

    points = index.search(index_layout.ALIAS, "colour", [1.0] * COLOUR_DIM, limit=100, where=ACTIVE)
    assert len(points) == len(ids)
    for point in points:
        payload = point.payload
        category = payload["category"]
        vote = payload["garment_votes"][0][0]
        if category == "Beauty > Fragrance":
            # Its crops look like dresses; it stays out of every garment-scoped search.
            assert payload["garment"] is None and payload["garment_parent"] is None
            continue
        assert payload["garment"] is not None and payload["garment_parent"]
        if category is None or category == "Damen > Hosen":
            # Nothing the taxonomy reads: the crop's own vote (the category's votes later).
            assert payload["garment"] == vote, payload
        elif category == pinned:
            assert payload["garment"] == "hat"  # the operator's pin wins over the name
        else:
            assert payload["garment"] == garment_class(category).name  # type: ignore[union-attr]
    mapping = {row.category: row for row in catalog.category_garments(source.id)}
    assert mapping[pinned].how == "operator" and mapping[pinned].garment == "hat"
    assert mapping["Beauty > Fragrance"].garment is None
    assert mapping[None].votes >= 1
    for label, row in mapping.items():
        if label and ">" in label:
            expected = {"Damen > Hosen": "votes", "Beauty > Fragrance": "not a garment"}
            assert row.how == expected.get(label, "name"), row
