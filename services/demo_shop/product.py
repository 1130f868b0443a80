"""One product of the demo shop, and the rules its fields keep (prices, slugs)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from services.demo_shop.vocabulary import AVAILABILITY, CATEGORIES, COLOURS, PATTERNS, VIEWS
from shared.product_codes import gtin_check_digit

__all__ = ["GENERATED_EPOCH", "DemoProduct", "money", "slugify"]

GENERATED_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
"""Generated products get ``last_modified`` times within 300 days after this instant."""

_CENT = Decimal("0.01")
_SLUG_JUNK = re.compile(r"[^a-z0-9]+")


def money(value: Decimal | str | int | float) -> Decimal:
    try:
        amount = Decimal(str(value)).quantize(_CENT, rounding=ROUND_HALF_UP)
    except InvalidOperation as exc:
        raise ValueError(f"not a price: {value!r}") from exc
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"price must be a non-negative amount, got {value!r}")
    return amount


def slugify(text: str) -> str:
    """ASCII, lower-case, dash-separated form of ``text`` (``"Ombré Coat"`` -> ``ombre-coat``)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return _SLUG_JUNK.sub("-", ascii_text.lower()).strip("-")


@dataclass(frozen=True)
class DemoProduct:
    """One product of the demo shop. Immutable: catalog mutations replace the instance."""

    sku: str
    slug: str
    title: str
    brand: str
    category: str
    colour: str
    pattern: str
    price: Decimal
    description: str
    currency: str = "EUR"
    availability: str = "InStock"
    image_version: int = 1
    views: tuple[str, ...] = ("front",)
    variant: int = 0
    """Seed of the small drawing variations (size, position, hue) of this product's pictures."""
    last_modified: datetime = GENERATED_EPOCH
    """When the product page last changed."""
    image_modified: datetime = GENERATED_EPOCH
    """When the pictures last changed (``image_version`` bump)."""

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ValueError(f"unknown category {self.category!r}; expected one of {CATEGORIES}")
        if self.colour not in COLOURS:
            raise ValueError(f"unknown colour {self.colour!r}")
        if self.pattern not in PATTERNS:
            raise ValueError(f"unknown pattern {self.pattern!r}; expected one of {PATTERNS}")
        if self.availability not in AVAILABILITY:
            raise ValueError(f"unknown availability {self.availability!r}")
        if not self.views or self.views[0] != "front" or not set(self.views) <= set(VIEWS):
            raise ValueError(f"views must start with 'front' and come from {VIEWS}")
        if len(set(self.views)) != len(self.views):
            raise ValueError(f"duplicate views in {self.views}")
        if self.image_version < 1:
            raise ValueError("image_version starts at 1")
        if not self.sku or not self.slug or slugify(self.slug) != self.slug:
            raise ValueError(
                f"sku and a url-safe slug are required, got {self.sku!r}/{self.slug!r}"
            )
        object.__setattr__(self, "price", money(self.price))

    @property
    def gtin(self) -> str:
        """Its EAN-13, in GS1's in-store range (20-29, never a real trade item's), drawn from
        ``variant``: the same for the same seed and index, so two demo shops generated with one
        seed sell the same products (offer groups), and two seeds' products differ."""
        body = f"20{self.variant % 10**10:010d}"
        return body + str(gtin_check_digit(body))

    @property
    def availability_url(self) -> str:
        return f"https://schema.org/{self.availability}"
