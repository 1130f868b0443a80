"""The catalog's points in the vector index (write side): collections created per model
version, and points kept in line with the catalog.

Products that become inactive keep their points with ``active=0`` (they come back with
``active=1`` if the shop lists them again); points of removed or failed images and of deleted
products are deleted. Producers that only know ids (the scraper, after ``mark_unseen`` or
``upsert_products``) call :func:`shared.queue.request_index_sync`, which queues
:data:`~shared.queue.SYNC_TASK` for the process that owns the index; the sweeper reconciles
whatever a lost message missed. Names, vectors, payloads and point ids:
:mod:`shared.index_layout`.

Nothing here imports torch or Celery at import time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from shared.db import Catalog
from shared.db.models import ImageState
from shared.db.schemas import ProductOut
from shared.errors import NotFoundError
from shared.index_layout import (
    ALIAS,
    TEXT_DENSE,
    TEXT_SPARSE,
    catalog_collections,
    collection_name,
    collection_spec,
    product_payload,
    text_collection_name,
    text_collection_spec,
    text_collections,
    text_payload,
    text_point_id,
)
from shared.taxonomy import GarmentClass, class_named
from shared.vectors import PayloadFilter, Point, VectorIndex
from shared.words import (
    TEXT_DIM,
    TEXT_MODEL,
    SentenceEncoder,
    lexical_vector,
    product_intent,
    product_text,
    sentence_encoder,
)

__all__ = [
    "backfill_texts",
    "deactivate_products",
    "ensure_collection",
    "ensure_text_collection",
    "index_texts",
    "refresh_texts",
    "remove_images",
    "remove_products",
    "sync_images",
    "sync_products",
]

log = logging.getLogger(__name__)

_ID_CHUNK = 500


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


def ensure_text_collection(index: VectorIndex) -> str:
    """Create the product-text collection of the sentence model if needed; its name."""
    name = text_collection_name(TEXT_MODEL)
    index.ensure_collection(text_collection_spec(name, TEXT_DIM))
    return name


@dataclass(frozen=True)
class ProductText:
    """A product to (re)write the text point of, with the source's name and the garment class
    its pictures are indexed under (``None``: read from its category)."""

    product: ProductOut
    source: str | None
    garment: GarmentClass | None
    image_url: str | None = None


def index_texts(index: VectorIndex, encoder: SentenceEncoder, items: Sequence[ProductText]) -> int:
    """Write (or overwrite) one text point per product; returns how many."""
    if not items:
        return 0
    collection = ensure_text_collection(index)
    texts = [product_text(item.product) for item in items]
    dense = encoder.encode(texts)
    points = []
    for item, text, vector in zip(items, texts, dense, strict=True):
        intent = product_intent(item.product, item.garment.name if item.garment else None)
        garment = item.garment or intent.garment
        points.append(
            Point(
                id=text_point_id(item.product.id, TEXT_MODEL),
                vectors={
                    TEXT_DENSE: vector.tolist(),
                    TEXT_SPARSE: lexical_vector(text, query=False, intent=intent),
                },
                payload=text_payload(
                    item.product,
                    source=item.source,
                    garment=garment,
                    colour=intent.colour,
                    text=text,
                    image_url=item.image_url,
                ),
            )
        )
    index.upsert(collection, points)
    return len(points)


def backfill_texts(
    index: VectorIndex,
    catalog: Catalog,
    encoder: SentenceEncoder | None = None,
    *,
    offset: int = 0,
    limit: int = 1000,
) -> tuple[int, int | None]:
    """Write the text points that products indexed before text indexing (or whose point was
    lost) lack: up to ``limit`` catalog products from ``offset`` (in id order) are looked at.
    Returns how many points were written and the offset to continue from (``None``: done).
    The encoder (default: the process's one) is loaded only when a point is missing."""
    products = catalog.list_products(active=None, limit=limit, offset=offset)
    if not products:
        return 0, None
    sources = {s.id: s.name for s in catalog.list_sources()}
    shown = {
        product.id: next(
            (i.url for i in product.images if i.active and i.state is ImageState.DONE), None
        )
        for product in products
    }
    indexed = [p for p in products if shown[p.id] is not None]
    collection = text_collection_name(TEXT_MODEL)
    have: set[int] = set()
    if indexed and collection in index.collections():
        ids = [text_point_id(p.id, TEXT_MODEL) for p in indexed]
        have = {int(hit.payload["product_id"]) for hit in index.retrieve(collection, ids)}
    missing = [
        ProductText(p, sources.get(p.source_id), None, shown[p.id])
        for p in indexed
        if p.id not in have
    ]
    written = 0
    for start in range(0, len(missing), 64):
        written += index_texts(index, encoder or sentence_encoder(), missing[start : start + 64])
    more = offset + len(products) if len(products) == limit else None
    return written, more


def _product_collections(index: VectorIndex) -> list[str]:
    """Every collection with points of products: per-model image ones and text ones."""
    return catalog_collections(index) + text_collections(index)


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
    """Mark the products' points ``active=0`` in every catalog and text collection (searches
    filter on ``active=1``); :func:`sync_products` marks them active again when they come back."""
    for collection in _product_collections(index):
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
    """Delete every point of these products from every catalog and text collection."""
    for collection in _product_collections(index):
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
        for collection in _product_collections(index):
            for product in products.values():
                where = PayloadFilter(equals={"product_id": product.id})
                index.set_payload(collection, where, product_payload(product))
                for image in product.images:
                    if image.active and image.state is ImageState.DONE:
                        where = PayloadFilter(equals={"image_id": image.id})
                        index.set_payload(collection, where, {"image_url": image.url})
        refresh_texts(index, list(products.values()))


def refresh_texts(
    index: VectorIndex, products: Sequence[ProductOut], encoder: SentenceEncoder | None = None
) -> int:
    """Rewrite the text points of the products whose words changed (a new title, category or
    attribute) so that words find them by what they say now; returns how many. The sentence
    model is loaded only when one changed."""
    collection = text_collection_name(TEXT_MODEL)
    if not products or collection not in index.collections():
        return 0
    by_id = {product.id: product for product in products}
    ids = [text_point_id(product.id, TEXT_MODEL) for product in products]
    stale = []
    for hit in index.retrieve(collection, ids):
        product = by_id[int(hit.payload["product_id"])]
        if hit.payload.get("text") != product_text(product):
            garment = hit.payload.get("garment")
            stale.append(
                ProductText(
                    product,
                    hit.payload.get("source"),
                    class_named(garment) if garment else None,
                    hit.payload.get("image_url"),
                )
            )
    return index_texts(index, encoder or sentence_encoder(), stale) if stale else 0


def sync_images(index: VectorIndex, catalog: Catalog, image_ids: Sequence[int]) -> None:
    """Delete the points of images that are inactive, failed or gone from the catalog."""
    ids = sorted({int(i) for i in image_ids})
    keep: set[int] = set()
    for chunk in _chunks(ids):
        keep |= catalog.searchable_images(chunk)
    remove_images(index, [i for i in ids if i not in keep])
