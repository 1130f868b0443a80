"""The vector index's layout, one owner for every name the index is read and written with:
collections, the alias, named vectors, payload fields and point ids.

One point per garment crop, in a collection per embedding model version
(``catalog__<model-version-slug>``) behind the alias :data:`ALIAS` (``catalog``). Each point
carries three named vectors: ``cnn`` (cosine) and ``cnn_l1`` (Manhattan) hold the same CNN
embedding so that both metrics are exact searches, and ``colour`` holds the colour descriptor.
Point ids are UUID5s of (product id, image id, box, model version): re-running ingest
overwrites points instead of duplicating them. The ingest worker writes this layout
(:mod:`services.ingest.indexing`); the recommender reads it.

Product text (the words a product is found by, :func:`shared.words.product_text`) lives in the
same engine, in one collection per sentence model (``texts__<text-model>``, today
``texts__all-minilm-l6-v2``): one point per product (UUID5 of product id and text model) with a
dense named vector ``sentence`` (384-d cosine, the sentence model) and a sparse named vector
``lexical`` (hashed tokens with BM25 term weights; Qdrant applies IDF at query time). Its
payload carries the image points' product fields (``active``, ``category``, ``brand``,
``price``, ``currency``, ``product_id``) plus ``source``, ``garment``/``garment_parent``, the
``colour`` its text names, its ``title``, ``text`` and an ``image_url`` to show: a text search
filters as an image search does, and upkeep that hides or deletes a product's image points does
the same to its text point.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from shared.colour import COLOUR_DIM
from shared.db.schemas import ProductOut
from shared.errors import NotFoundError
from shared.taxonomy import GarmentClass
from shared.vectors import CollectionSpec, Distance, VectorIndex, VectorSpec

__all__ = [
    "ALIAS",
    "COLLECTION_PREFIX",
    "COLOUR_VECTOR",
    "PAYLOAD_INDEXES",
    "SHAPE_VECTOR",
    "SHAPE_VECTORS",
    "TEXT_DENSE",
    "TEXT_PREFIX",
    "TEXT_SPARSE",
    "catalog_collections",
    "collection_name",
    "collection_spec",
    "crop_payload",
    "live_collection",
    "point_id",
    "product_payload",
    "text_collection_name",
    "text_collection_spec",
    "text_collections",
    "text_payload",
    "text_point_id",
]

ALIAS = "catalog"
COLLECTION_PREFIX = "catalog__"
SHAPE_VECTORS: Mapping[Distance, str] = {"cosine": "cnn", "l1": "cnn_l1"}
"""The CNN embedding's named vector for each metric (the same vector, stored twice so that both
searches are exact)."""
SHAPE_VECTOR = SHAPE_VECTORS["cosine"]
COLOUR_VECTOR = "colour"
TEXT_PREFIX = "texts__"
TEXT_DENSE = "sentence"
TEXT_SPARSE = "lexical"

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
    "garment": "keyword",
    "garment_parent": "keyword",
    "colour_name": "keyword",
}
"""Payload fields the recommender filters on, with their index types."""

_NAMESPACE = uuid.UUID("0b7a3f5e-7c1d-5d0e-9a57-6c6f6f6b616c")
_SLUG_JUNK = re.compile(r"[^a-z0-9_.-]+")
_MAX_SLUG = 80


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
            SHAPE_VECTORS["cosine"]: VectorSpec(dim, "cosine"),
            SHAPE_VECTORS["l1"]: VectorSpec(dim, "l1"),
            COLOUR_VECTOR: VectorSpec(COLOUR_DIM, "cosine"),
        },
        payload_indexes=dict(PAYLOAD_INDEXES),
    )


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
    garment: GarmentClass | None = None,
    votes: Sequence[tuple[str, float]] = (),
    colour: tuple[str | None, float | None] = (None, None),
) -> dict[str, Any]:
    """The full payload of one crop's point. ``category`` is the product's shop category (a
    label and a caller's filter); ``garment`` and ``garment_parent`` the taxonomy class it is
    indexed under (what a shopper's search is scoped to); ``garment_votes`` the classifier's
    top classes for the crop; ``crop_category`` and ``score`` the detector's view;
    ``colour_name`` and ``colour_p`` the crop's named colour (:func:`shared.colour.name_lab`)
    and its probability."""
    return {
        **product_payload(product),
        "image_id": image_id,
        "crop_category": category,
        "bbox": list(_round_box(box)),
        "score": score,
        "image_url": image_url,
        "model_version": model_version,
        "source": source,
        "garment": garment.name if garment is not None else None,
        "garment_parent": garment.parent if garment is not None else None,
        "garment_votes": [[name, p] for name, p in votes],
        "colour_name": colour[0],
        "colour_p": round(colour[1], 4) if colour[1] is not None else None,
    }


def text_collection_name(text_model: str) -> str:
    """``texts__<slug>`` for a sentence model."""
    return TEXT_PREFIX + collection_name(text_model).removeprefix(COLLECTION_PREFIX)


def text_collection_spec(name: str, dim: int) -> CollectionSpec:
    """Dense ``sentence`` (cosine) and sparse ``lexical`` vectors, the image points' indexes."""
    return CollectionSpec(
        name=name,
        vectors={
            TEXT_DENSE: VectorSpec(dim, "cosine"),
            TEXT_SPARSE: VectorSpec(0, kind="sparse"),
        },
        payload_indexes={**PAYLOAD_INDEXES, "colour": "keyword"},
    )


def text_collections(index: VectorIndex) -> list[str]:
    """Every product-text collection."""
    return [name for name in index.collections() if name.startswith(TEXT_PREFIX)]


def text_point_id(product_id: int, text_model: str) -> str:
    """Deterministic UUID5 of (product, text model): one text point per product."""
    return str(uuid.uuid5(_NAMESPACE, f"text/{product_id}/{text_model}"))


def text_payload(
    product: ProductOut,
    *,
    source: str | None,
    garment: GarmentClass | None,
    colour: str | None,
    text: str,
    image_url: str | None = None,
) -> dict[str, Any]:
    """The payload of a product's text point: the image points' filter fields and the text."""
    return {
        **product_payload(product),
        "source": source,
        "garment": garment.name if garment is not None else None,
        "garment_parent": garment.parent if garment is not None else None,
        "colour": colour,
        "title": product.title,
        "text": text,
        "image_url": image_url,
    }
