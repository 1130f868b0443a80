"""The catalog's vector index: collection naming, point ids, payloads, index upkeep and reindex.

One point per garment crop, in a collection per embedding model version
(``catalog__<model-version-slug>``) behind the alias :data:`ALIAS` (``catalog``). Each point
carries three named vectors: ``cnn`` (cosine) and ``cnn_l1`` (Manhattan) hold the same CNN
embedding so that both metrics are exact searches, and ``colour`` holds the colour descriptor.
Point ids are UUID5s of (product id, image id, box, model version): re-running ingest
overwrites points instead of duplicating them.

Products that become inactive keep their points with ``active=0`` (they come back with
``active=1`` if the shop lists them again); points of removed or failed images and of deleted
products are deleted. Producers that only know ids (the scraper, after ``mark_unseen`` or
``upsert_products``) call :func:`shared.queue.request_index_sync`, which queues
:data:`~shared.queue.SYNC_TASK` for the process that owns the index; the sweeper reconciles
whatever a lost message missed.

Nothing here imports torch or Celery at import time.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, exists, select

from services.embedder.colour import COLOUR_DIM
from shared.db import Catalog
from shared.db.models import GarmentCrop, ImageState, Product, ProductImage, utcnow
from shared.db.schemas import ProductOut
from shared.errors import NotFoundError
from shared.vectors import CollectionSpec, PayloadFilter, VectorIndex, VectorSpec

if TYPE_CHECKING:
    from services.embedder.ingest import IngestPipeline, ModelSpec

__all__ = [
    "ALIAS",
    "COLLECTION_PREFIX",
    "PAYLOAD_INDEXES",
    "ReindexReport",
    "collection_name",
    "collection_spec",
    "deactivate_products",
    "ensure_collection",
    "live_collection",
    "point_id",
    "product_payload",
    "reindex",
    "remove_images",
    "sync_images",
    "sync_products",
]

log = logging.getLogger(__name__)

ALIAS = "catalog"
COLLECTION_PREFIX = "catalog__"

PAYLOAD_INDEXES: Mapping[str, Any] = {
    "product_id": "integer",
    "image_id": "integer",
    "category": "keyword",
    "brand": "keyword",
    "price": "float",
    "currency": "keyword",
    "active": "integer",
    "source": "keyword",
    "model_version": "keyword",
    "crop_category": "keyword",
}
"""Payload fields the recommender filters on, with their index types."""

_NAMESPACE = uuid.UUID("0b7a3f5e-7c1d-5d0e-9a57-6c6f6f6b616c")
_SLUG_JUNK = re.compile(r"[^a-z0-9_.-]+")
_MAX_SLUG = 80
_ID_CHUNK = 500


# --------------------------------------------------------------------------- names and points


def collection_name(model_version: str) -> str:
    """``catalog__<slug>`` for a model version; long or odd versions get a hash suffix."""
    slug = _SLUG_JUNK.sub("-", model_version.lower()).strip("-.") or "model"
    if len(slug) > _MAX_SLUG or slug != model_version.lower():
        digest = hashlib.sha256(model_version.encode()).hexdigest()[:8]
        slug = f"{slug[: _MAX_SLUG - 9]}-{digest}"
    return COLLECTION_PREFIX + slug


def collection_spec(name: str, dim: int) -> CollectionSpec:
    """Named vectors ``cnn`` (cosine), ``cnn_l1`` (L1) and ``colour``, plus payload indexes."""
    return CollectionSpec(
        name=name,
        vectors={
            "cnn": VectorSpec(dim, "cosine"),
            "cnn_l1": VectorSpec(dim, "l1"),
            "colour": VectorSpec(COLOUR_DIM, "cosine"),
        },
        payload_indexes=dict(PAYLOAD_INDEXES),
    )


def ensure_collection(index: VectorIndex, model_version: str, dim: int) -> str:
    """Create the model version's collection if needed; point the alias at it when the alias
    does not exist yet (a fresh index). Returns the collection name."""
    name = collection_name(model_version)
    index.ensure_collection(collection_spec(name, dim))
    try:
        index.resolve(ALIAS)
    except NotFoundError:
        index.set_alias(ALIAS, name)
        log.info("alias %s -> %s", ALIAS, name)
    return name


def live_collection(index: VectorIndex) -> str | None:
    """The collection the alias points at, or ``None`` before anything was indexed."""
    try:
        return index.resolve(ALIAS)
    except NotFoundError:
        return None


def catalog_collections(index: VectorIndex) -> list[str]:
    """Every per-model collection (the live one and any being filled by a reindex)."""
    return [name for name in index.collections() if name.startswith(COLLECTION_PREFIX)]


def _round_box(box: Sequence[float]) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = (round(float(v), 2) for v in box)
    return x0, y0, x1, y1


def point_id(product_id: int, image_id: int, box: Sequence[float], model_version: str) -> str:
    """Deterministic UUID5 of (product, image, box rounded to 0.01 px, model version)."""
    x0, y0, x1, y1 = _round_box(box)
    key = f"{product_id}/{image_id}/{x0:.2f},{y0:.2f},{x1:.2f},{y1:.2f}/{model_version}"
    return str(uuid.uuid5(_NAMESPACE, key))


def product_payload(product: ProductOut) -> dict[str, Any]:
    """The payload fields that come from the product (refreshed when the product changes)."""
    return {
        "product_id": product.id,
        "category": product.category,
        "brand": product.brand,
        "price": float(product.price) if product.price is not None else None,
        "currency": product.currency,
        "active": int(product.active),
    }


def crop_payload(
    product: ProductOut,
    *,
    image_id: int,
    image_url: str,
    box: Sequence[float],
    category: str | None,
    score: float | None,
    model_version: str,
    source: str | None,
) -> dict[str, Any]:
    """The full payload of one crop's point. ``category`` is the product's (what searches
    filter on); ``crop_category`` and ``score`` are the detector's view of the crop."""
    return {
        **product_payload(product),
        "image_id": image_id,
        "crop_category": category,
        "bbox": list(_round_box(box)),
        "score": score,
        "image_url": image_url,
        "model_version": model_version,
        "source": source,
    }


# -------------------------------------------------------------------------------- index upkeep


def _chunks(ids: Iterable[int], size: int = _ID_CHUNK) -> Iterator[list[int]]:
    batch: list[int] = []
    for value in ids:
        batch.append(int(value))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def deactivate_products(index: VectorIndex, product_ids: Sequence[int]) -> None:
    """Mark the products' points ``active=0`` in every catalog collection (searches filter on
    ``active=1``); :func:`sync_products` marks them active again when they come back."""
    for collection in catalog_collections(index):
        for chunk in _chunks(product_ids):
            index.set_payload(
                collection, PayloadFilter(equals={"product_id": chunk}), {"active": 0}
            )


def remove_images(index: VectorIndex, image_ids: Sequence[int]) -> None:
    """Delete every point of these images from every catalog collection."""
    for collection in catalog_collections(index):
        for chunk in _chunks(image_ids):
            index.delete_where(collection, PayloadFilter(equals={"image_id": chunk}))


def remove_products(index: VectorIndex, product_ids: Sequence[int]) -> None:
    """Delete every point of these products from every catalog collection."""
    for collection in catalog_collections(index):
        for chunk in _chunks(product_ids):
            index.delete_where(collection, PayloadFilter(equals={"product_id": chunk}))


def sync_products(index: VectorIndex, catalog: Catalog, product_ids: Sequence[int]) -> None:
    """Bring the points of these products in line with the catalog: product fields (price,
    brand, currency, active) and image URLs (a shop that moved) refreshed, deleted products'
    points removed."""
    ids = sorted({int(i) for i in product_ids})
    for chunk in _chunks(ids):
        products = catalog.get_products(chunk)
        gone = [i for i in chunk if i not in products]
        if gone:
            remove_products(index, gone)
        for collection in catalog_collections(index):
            for product in products.values():
                where = PayloadFilter(equals={"product_id": product.id})
                index.set_payload(collection, where, product_payload(product))
                for image in product.images:
                    if image.active and image.state is ImageState.DONE:
                        where = PayloadFilter(equals={"image_id": image.id})
                        index.set_payload(collection, where, {"image_url": image.url})


def sync_images(index: VectorIndex, catalog: Catalog, image_ids: Sequence[int]) -> None:
    """Delete the points of images that are inactive, failed or gone from the catalog."""
    ids = sorted({int(i) for i in image_ids})
    keep: set[int] = set()
    for chunk in _chunks(ids):
        query = select(ProductImage.id).where(
            ProductImage.id.in_(chunk),
            ProductImage.active.is_(True),
            ProductImage.state != ImageState.FAILED,
        )
        with catalog.reading() as session:
            keep.update(session.scalars(query))
    remove_images(index, [i for i in ids if i not in keep])


def changed_since(catalog: Catalog, since: datetime | None) -> tuple[list[int], list[int]]:
    """What the sweeper reconciles in case a sync message was lost: products changed since
    ``since`` and images that became inactive since then. With ``since=None`` (the first sweep
    of a process): every inactive product and every inactive image."""
    products = select(Product.id)
    images = select(ProductImage.id).where(ProductImage.active.is_(False))
    if since is None:
        products = products.where(Product.active.is_(False))
    else:
        products = products.where(Product.updated_at >= since)
        images = images.where(ProductImage.updated_at >= since)
    with catalog.reading() as session:
        return list(session.scalars(products)), list(session.scalars(images))


# ------------------------------------------------------------------------------------- reindex


@dataclass
class ReindexReport:
    model_version: str
    collection: str
    previous: str | None
    embedded: int = 0
    failed: int = 0
    skipped: int = 0
    passes: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)


def images_needing(
    catalog: Catalog,
    model_version_id: int,
    *,
    embedded_since: datetime | None = None,
    after_id: int = 0,
    limit: int = 1000,
) -> list[int]:
    """Done, active images with no crop embedded by this model version (since
    ``embedded_since``, when given), by id."""
    condition = and_(
        GarmentCrop.image_id == ProductImage.id,
        GarmentCrop.model_version_id == model_version_id,
    )
    if embedded_since is not None:
        condition = and_(condition, GarmentCrop.created_at >= embedded_since)
    has_crop = exists().where(condition)
    query = (
        select(ProductImage.id)
        .where(
            ProductImage.state == ImageState.DONE,
            ProductImage.active.is_(True),
            ProductImage.id > after_id,
            ~has_crop,
        )
        .order_by(ProductImage.id)
        .limit(limit)
    )
    with catalog.reading() as session:
        return list(session.scalars(query))


def _count_needing(catalog: Catalog, model_version_id: int, since: datetime | None) -> int:
    total, after = 0, 0
    while ids := images_needing(
        catalog, model_version_id, embedded_since=since, after_id=after, limit=10_000
    ):
        total += len(ids)
        after = ids[-1]
    return total


def reindex(
    pipeline: IngestPipeline,
    spec: ModelSpec,
    *,
    progress: bool = True,
    settle_s: float = 5.0,
    drop_previous: bool = False,
    everything: bool = False,
) -> ReindexReport:
    """Embed every done image with ``spec``'s model into its own collection, then switch the
    alias and make the model the active one; queries use the old collection until then.

    Resumable: it embeds only images that have no crop of this model version yet (so a second
    run continues where an interrupted one stopped); ``everything`` re-embeds every image (the
    same model into a lost or damaged collection). After the switch it waits ``settle_s``
    (workers pick up the new model at their next task) and embeds the images that workers
    finished with the old model in the meantime.
    """
    from tqdm import tqdm

    started = time.perf_counter()
    since = utcnow() if everything else None
    catalog, index = pipeline.catalog, pipeline.index
    model = pipeline.models.load(spec)
    info = model.info
    version_id = pipeline.models.register(model, spec, activate=False)
    previous = live_collection(index)
    target = ensure_collection(index, info.version, info.dim)
    report = ReindexReport(info.version, target, previous)
    total = _count_needing(catalog, version_id, since)
    log.info(
        "reindex: %d images into %s with %s (live collection: %s)",
        total,
        target,
        info.version,
        previous,
    )
    with tqdm(total=total, unit="img", disable=not progress, desc="reindex") as bar:

        def run_pass() -> int:
            after, handled = 0, 0
            batch = pipeline.batch_size
            while ids := images_needing(
                catalog, version_id, embedded_since=since, after_id=after, limit=batch
            ):
                after = ids[-1]
                outcome = pipeline.reembed(ids, model, target)
                report.embedded += len(outcome.done)
                report.failed += len(outcome.failed)
                report.skipped += len(outcome.retry)
                report.failures += [f"{i}: {reason}" for i, reason in outcome.failed.items()]
                handled += len(outcome.done) + len(outcome.failed)
                bar.update(len(ids))
            report.passes += 1
            return handled

        # Catch-up passes pick up images that workers finished meanwhile.
        while run_pass() and report.passes < 3:
            pass
        index.optimize(target)  # the new collection answers at full speed from the switch on
        index.set_alias(ALIAS, target)
        pipeline.models.register(model, spec, activate=True)
        log.info("alias %s -> %s; %s is the active model", ALIAS, target, info.version)
        if settle_s > 0:
            time.sleep(settle_s)
        bar.total = bar.n + _count_needing(catalog, version_id, since)
        run_pass()
    if drop_previous and previous is not None and previous != target:
        index.drop_collection(previous)
        log.info("dropped the previous collection %s", previous)
    report.seconds = round(time.perf_counter() - started, 2)
    return report
