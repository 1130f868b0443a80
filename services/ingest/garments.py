"""The garment class a catalog crop is indexed under, so that a shopper's search can be scoped
to the kind of garment she photographed whatever the shop calls it.

A crop takes its product's class: the mapping of the product's shop category (the operator's
``garment_map``, else the taxonomy's reading of the label, else the votes of the classifier
over that category's crops; :meth:`Catalog.category_garments`). A product whose category maps
to nothing (no label, an unknown word, too few votes yet) takes the crop's own classifier vote,
unless its category names no garment (perfume, a football): then it has no class and stays out
of every garment-scoped search.
The classifier is the query's (:meth:`ModelProvider.classifier`), so both sides speak alike.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from shared.db import Catalog
from shared.db.schemas import ProductOut
from shared.taxonomy import GarmentClass, garment_class, is_not_garment, read_classes

__all__ = ["CategoryLabels", "CropVote", "crop_votes"]

MAPPING_TTL_S = 60.0
"""How long the shop category -> garment class mapping is reused before it is read again
(votes accumulate as the catalog is indexed)."""


@dataclass(frozen=True)
class CropVote:
    """The classifier's view of one crop: its two most probable classes (taxonomy names)."""

    top: tuple[tuple[str, float], ...]

    @property
    def garment(self) -> str | None:
        return self.top[0][0] if self.top else None

    @property
    def probability(self) -> float | None:
        return self.top[0][1] if self.top else None


def crop_votes(classes: Sequence[str], probabilities: np.ndarray, top: int = 2) -> list[CropVote]:
    """Each row of classifier ``probabilities`` as its ``top`` classes in the taxonomy's names,
    read as a shopper's crop is (:func:`shared.taxonomy.read_classes`)."""
    votes = []
    for row in probabilities:
        read = read_classes(dict(zip(classes, row.tolist(), strict=True)))
        best = [(name, round(p, 4)) for name, p in list(read.items())[:top]]
        votes.append(CropVote(tuple(best)))
    return votes


class CategoryLabels:
    """The garment class of each (source, shop category), read from the catalog at most every
    :data:`MAPPING_TTL_S` seconds."""

    def __init__(self, catalog: Catalog, *, ttl_s: float = MAPPING_TTL_S) -> None:
        self.catalog = catalog
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._mapping: dict[tuple[int, str | None], str] = {}
        self._read_at = -float("inf")

    def _refresh(self) -> dict[tuple[int, str | None], str]:
        now = time.monotonic()
        with self._lock:
            if now - self._read_at > self.ttl_s:
                self._mapping = {
                    (row.source_id, row.category): row.garment
                    for row in self.catalog.category_garments()
                    if row.garment is not None and row.category is not None
                }
                self._read_at = now
            return self._mapping

    def product_class(self, product: ProductOut) -> GarmentClass | None:
        """The class the product's shop category maps to, or ``None``."""
        if not product.category:
            return None
        name = self._refresh().get((product.source_id, product.category))
        if name is None:
            # Not mapped yet (a category first seen in this chunk): its label may still read.
            return garment_class(product.category)
        return garment_class(name)

    def label(self, product: ProductOut, vote: CropVote) -> GarmentClass | None:
        """The class a crop of ``product`` is indexed under: the product's, else the crop's
        (none for a product whose category names no garment)."""
        known = self.product_class(product)
        if known is not None or is_not_garment(product.category):
            return known
        return garment_class(vote.garment)
