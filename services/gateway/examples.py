"""Example photos for the storefront, a visitor can try them without a photo of their own.
They follow the shop: :func:`examples_for` picks them from the catalog's enabled sources.

- While the demo shop (a source with ``demo: true``) is enabled, or no shop is known, they
  are street photos of outfits drawn by the demo shop's picture generator
  (``services.demo_shop.compose_outfit``, its public package root) from the first products
  of its seed-0 catalog. Drawing is deterministic; they are drawn once per process, on first use,
  and kept in memory (a few hundred KB).
- Otherwise they are product photos of the enabled shops, one per category, fetched from the
  shop with the safe downloader (the source's own private-address allowance) and kept in
  memory by image.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import httpx
from PIL import Image, UnidentifiedImageError

from shared.db import Catalog, ImageState, ProductOut, SourceOut
from shared.download import DownloadError, fetch_image
from shared.errors import NotFoundError

log = logging.getLogger(__name__)

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
SHOP_EXAMPLES = 3
"""How many product photos are offered when the examples come from the shops."""
_CANDIDATES = 60
"""Active products read per enabled source to pick the examples from."""
_FETCH_TIMEOUT_S = 5.0


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


def examples_for(catalog: Catalog) -> tuple[ExamplePhoto, ...]:
    """The examples of the shop as the catalog shows it now (see the module docstring)."""
    sources = catalog.list_sources()
    shops = [source for source in sources if source.enabled]
    if not sources or any(shop.config.get("demo") for shop in shops):
        return example_photos()
    return _shop_photos(catalog, shops)


@dataclass(frozen=True)
class _Pick:
    image_id: int
    url: str
    title: str
    allow_private: bool
    allow_hosts: tuple[str, ...]
    """The source's ``allow_private_hosts``: exactly these private ``host:port``."""


_photos: dict[tuple[int, str], ExamplePhoto | None] = {}
_photos_lock = threading.Lock()


def _shop_photos(catalog: Catalog, shops: Sequence[SourceOut]) -> tuple[ExamplePhoto, ...]:
    photos: list[ExamplePhoto] = []
    for pick in _picks(catalog, shops):
        photo = _fetched(pick)
        if photo is not None:
            number = len(photos) + 1
            photos.append(ExamplePhoto(number, photo.jpeg, photo.alt, photo.width, photo.height))
        if len(photos) == SHOP_EXAMPLES:
            break
    return tuple(photos)


def _picks(catalog: Catalog, shops: Sequence[SourceOut]) -> list[_Pick]:
    """Indexed product photos of the enabled shops, one category after another."""
    firsts: list[_Pick] = []
    rest: list[_Pick] = []
    categories: set[str | None] = set()
    for shop in shops:
        allow_private = bool(shop.config.get("allow_private_addresses", False))
        allow_hosts = tuple(shop.config.get("allow_private_hosts") or ())
        for product in catalog.list_products(source_id=shop.id, limit=_CANDIDATES):
            pick = _picked(product, allow_private, allow_hosts)
            if pick is None:
                continue
            if product.category in categories:
                rest.append(pick)
            else:
                categories.add(product.category)
                firsts.append(pick)
    return firsts + rest


def _picked(product: ProductOut, allow_private: bool, allow_hosts: tuple[str, ...]) -> _Pick | None:
    for image in product.images:
        if image.active and image.state is ImageState.DONE:
            return _Pick(image.id, image.url, product.title, allow_private, allow_hosts)
    return None


def _fetched(pick: _Pick) -> ExamplePhoto | None:
    """The product photo as a JPEG of at most :data:`SIZE` (``None``: the shop did not give
    it), fetched once per image and URL."""
    key = (pick.image_id, pick.url)
    with _photos_lock:
        if key in _photos:
            return _photos[key]
    try:
        with httpx.Client(timeout=_FETCH_TIMEOUT_S) as client:
            body = fetch_image(
                pick.url,
                client=client,
                allow_private=pick.allow_private,
                allow_hosts=pick.allow_hosts,
            ).content
        with Image.open(io.BytesIO(body)) as image:
            picture = image.convert("RGB")
        picture.thumbnail(SIZE)
        out = io.BytesIO()
        picture.save(out, format="JPEG", quality=88)
        photo: ExamplePhoto | None = ExamplePhoto(
            0, out.getvalue(), f"Product photo: {pick.title}", *picture.size
        )
    except (DownloadError, UnidentifiedImageError, OSError) as exc:
        log.info("example photo %s not available: %s", pick.url, exc)
        return None  # not kept: the shop may answer next time
    with _photos_lock:
        if len(_photos) > 64:
            _photos.clear()
        _photos[key] = photo
    return photo


def example_photo(photos: Sequence[ExamplePhoto], name: str) -> ExamplePhoto:
    """The example of ``photos`` a path segment names (``"2"``), or :class:`NotFoundError`."""
    for photo in photos:
        if name == str(photo.number):
            return photo
    raise NotFoundError(
        f"no example photo {name!r}: there are {len(photos)}, numbered 1 to {len(photos)}"
    )
