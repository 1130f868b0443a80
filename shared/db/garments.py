"""What garment each shop category means: the crops' classifier votes and the mapping."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import func, select

from shared.db.models import GarmentCrop, Product, ProductImage, Source
from shared.db.schemas import CategoryGarment
from shared.db.store import Store
from shared.taxonomy import garment_class, map_category, normalise

log = logging.getLogger(__name__)

Votes = dict[tuple[int, str | None], dict[str, int]]
"""(source id, product category) -> {garment class: crops}."""


class GarmentsRepository(Store):
    """The garment classifier's votes per shop category, and the mapping derived from them."""

    def garment_votes(self, source_id: int | None = None) -> Votes:
        """(source id, product category) -> {garment class: crops}: the classifier's votes on
        the crops of active products (active images, crops with a vote), counted in SQL.
        Products without a category count under ``None``."""
        query = (
            select(Product.source_id, Product.category, GarmentCrop.garment, func.count())
            .select_from(GarmentCrop)
            .join(ProductImage, GarmentCrop.image_id == ProductImage.id)
            .join(Product, ProductImage.product_id == Product.id)
            .where(
                Product.active.is_(True),
                ProductImage.active.is_(True),
                GarmentCrop.garment.is_not(None),
            )
            .group_by(Product.source_id, Product.category, GarmentCrop.garment)
        )
        if source_id is not None:
            query = query.where(Product.source_id == source_id)
        votes: Votes = {}
        with self.reading() as session:
            for source, category, garment, count in session.execute(query):
                if garment is not None:  # filtered out above; the row type cannot say so
                    votes.setdefault((source, category), {})[garment] = count
        return votes

    def category_garments(self, source_id: int | None = None) -> list[CategoryGarment]:
        """Every (source, category) with active products and the garment class it means:
        the source's ``garment_map`` override, else the category's name, else its crops'
        majority vote (:func:`shared.taxonomy.map_category`). Most products first.

        Products without a category are one row with category ``None``; no category-level
        class applies to them: their crops' own votes are used at index and query time.
        """
        counts = (
            select(Product.source_id, Product.category, func.count())
            .where(Product.active.is_(True))
            .group_by(Product.source_id, Product.category)
        )
        sources = select(Source.id, Source.name, Source.config)
        if source_id is not None:
            counts = counts.where(Product.source_id == source_id)
            sources = sources.where(Source.id == source_id)
        with self.reading() as session:
            products: list[tuple[int, str | None, int]] = [
                (source, category, count) for source, category, count in session.execute(counts)
            ]
            by_id = {
                row.id: (row.name, _overrides(row.name, row.config))
                for row in session.execute(sources)
            }
        votes = self.garment_votes(source_id)
        rows: list[CategoryGarment] = []
        for source, category, count in products:
            name, overrides = by_id[source]
            override = overrides.get(normalise(category)) if category is not None else None
            mapping = map_category(category, override=override, votes=votes.get((source, category)))
            rows.append(
                CategoryGarment(
                    source_id=source,
                    source=name,
                    category=category,
                    garment=mapping.garment,
                    parent=mapping.parent,
                    how=mapping.how,
                    votes=mapping.votes,
                    share=mapping.share,
                    products=count,
                )
            )
        return sorted(rows, key=lambda row: (-row.products, row.source, row.category or ""))


def _overrides(source: str, config: dict[str, Any] | None) -> dict[str, str]:
    """The source's ``garment_map`` by normalised category. Sources added through the
    scraper's config are validated; an entry naming no class (a hand-edited config) is
    logged and left out rather than hiding every other category."""
    overrides: dict[str, str] = {}
    entries = (config or {}).get("garment_map") or {}
    if not isinstance(entries, dict):
        log.warning("source %s: garment_map is not a mapping; ignored", source)
        return overrides
    for category, garment in entries.items():
        if not isinstance(garment, str) or garment_class(garment) is None:
            log.warning(
                "source %s: garment_map %r -> %r is no garment class; ignored",
                source,
                category,
                garment,
            )
            continue
        overrides[normalise(str(category))] = garment
    return overrides
