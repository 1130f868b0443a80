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

from shared.db import Catalog
from shared.db.models import ImageState
from shared.errors import NotFoundError
from shared.index_layout import (
    ALIAS,
    catalog_collections,
    collection_name,
    collection_spec,
    product_payload,
)
from shared.vectors import PayloadFilter, VectorIndex

__all__ = [
    "deactivate_products",
    "ensure_collection",
    "remove_images",
    "remove_products",
    "sync_images",
    "sync_products",
]

log = logging.getLogger(__name__)

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
        keep |= catalog.searchable_images(chunk)
    remove_images(index, [i for i in ids if i not in keep])
