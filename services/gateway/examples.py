"""Example photos for the storefront: street photos of outfits a visitor can try without one.

They are drawn by the demo shop's picture generator (``services.demo_shop.compose_outfit``,
its public package root) from the first products of its seed-0 catalog, so on the demo stack
(``lookalike run``) they show garments the shop sells. Drawing is deterministic; the pictures
are drawn once per process, on first use, and kept in memory (a few hundred KB).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from shared.errors import NotFoundError

SIZE = (480, 640)
"""Width and height of every example, in pixels."""

_OUTFITS: tuple[tuple[str, int, str, int, int], ...] = (
    # (upper category, its n-th product, lower category, its n-th product, drawing seed)
    ("tops", 0, "pants", 0, 3),
    ("outerwear", 0, "skirts", 0, 5),
    ("tops", 1, "skirts", 1, 7),
)
_SHOP_SEED = 0
_SHOP_PRODUCTS = 16
"""Demo products are a pure function of (seed, index); the first 16 hold two of each category."""


@dataclass(frozen=True)
class ExamplePhoto:
    number: int
    """1-based: the ``n`` of ``/storefront/examples/{n}.jpg``."""
    jpeg: bytes
    alt: str
    width: int
    height: int


@cache
def example_photos() -> tuple[ExamplePhoto, ...]:
    """Every example, drawn on the first call and cached for the life of the process."""
    # Imported here: the drawing code (Pillow, numpy) is loaded only when a visitor asks.
    from services.demo_shop import DemoCatalog, compose_outfit

    shop = DemoCatalog.generate(_SHOP_PRODUCTS, seed=_SHOP_SEED)
    photos = []
    for number, (upper, i, lower, j, seed) in enumerate(_OUTFITS, start=1):
        top, bottom = shop.in_category(upper)[i], shop.in_category(lower)[j]
        outfit = compose_outfit(top, bottom, SIZE, seed=seed)
        upper_name, lower_name = (
            _garment(top.title, top.brand),
            _garment(bottom.title, bottom.brand),
        )
        alt = f"Street photo: a {upper_name} over {lower_name}"
        photos.append(ExamplePhoto(number, outfit.jpeg, alt, *outfit.size))
    return tuple(photos)


def _garment(title: str, brand: str) -> str:
    """``"Urban Loom Red Striped T-Shirt"`` -> ``"red striped t-shirt"``."""
    return title.removeprefix(brand).strip().lower()


def example_photo(name: str) -> ExamplePhoto:
    """The example a path segment names (``"2"``), or :class:`NotFoundError`."""
    photos = example_photos()
    for photo in photos:
        if name == str(photo.number):
            return photo
    raise NotFoundError(
        f"no example photo {name!r}: there are {len(photos)}, numbered 1 to {len(photos)}"
    )
