"""The one item the spiders yield: a product as read from its page, raw then normalised.

Spiders fill the raw fields from structured data or selectors; the pipelines
(:mod:`services.scraper.pipelines`) validate and normalise them in place (``price`` becomes a
``Decimal``, URLs absolute, ``category`` mapped) before the writer turns the item into a
:class:`shared.db.ProductIn`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


@dataclass
class ProductItem:
    url: str
    """The page the product was read from (after redirects)."""
    canonical_url: str | None = None
    """What the page says its URL is (``rel=canonical``, JSON-LD ``url``), maybe relative."""
    title: str | None = None
    brand: str | None = None
    price: Decimal | str | None = None
    currency: str | None = None
    category_labels: list[str] = field(default_factory=list)
    """The shop's own category words, least specific first."""
    category: str | None = None
    """The catalog category, set by the category pipeline from ``category_labels``."""
    image_urls: list[str] = field(default_factory=list)
    sku: str | None = None
    availability: str | None = None
    available: bool = True
    """False when the shop says it cannot be bought (a feed's out of stock): written inactive."""
    attributes: dict[str, Any] = field(default_factory=dict)
    """Colour, pattern, material, description...: anything else worth keeping."""
    extracted_from: str = "structured-data"
    """``json-ld``, ``microdata``, ``selectors`` or a mix, for stats and debugging."""
