"""A deterministic, mutable catalog of generated fashion products.

``DemoCatalog.generate(n, seed=s)`` always yields the same products for the same ``(n, s)``;
product ``i`` depends only on ``(seed, i)``, so a smaller catalog is a prefix of a larger one.
Mutations (new product, price change, removal, new image) move ``last_modified`` forward so
HTTP validators served from the catalog change with it. All methods are thread-safe.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from services.demo_shop.images import OutfitPhoto, compose_outfit, render_image, render_outfit
from services.demo_shop.product import GENERATED_EPOCH, DemoProduct, money, slugify
from services.demo_shop.rng import seeded_rng
from services.demo_shop.vocabulary import (
    AVAILABILITY,
    BRANDS,
    CATEGORIES,
    COLOURS,
    MATERIALS,
    NOUNS,
    PATTERN_ADJECTIVES,
    PATTERNS,
    PRICE_RANGES,
    VIEWS,
)

__all__ = [
    "DemoCatalog",
    "DemoProduct",
    "OutfitPhoto",
    "compose_outfit",
    "render_image",
    "render_outfit",
]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _category_for(seed: int, index: int) -> str:
    """Categories come in shuffled blocks of all eight, so every category shows up early."""
    block = list(CATEGORIES)
    seeded_rng("demo-shop", seed, "block", index // len(CATEGORIES)).shuffle(block)
    return block[index % len(CATEGORIES)]


def generate_product(
    seed: int,
    index: int,
    *,
    category: str | None = None,
    currency: str = "EUR",
) -> DemoProduct:
    """The ``index``-th product of the catalog generated with ``seed`` (pure function)."""
    if category is not None and category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}; expected one of {CATEGORIES}")
    rng = seeded_rng("demo-shop", seed, "product", index)
    category = category or _category_for(seed, index)
    colour = rng.choice(tuple(COLOURS))
    pattern = rng.choices(PATTERNS, weights=(6, 2, 1, 1, 1))[0]
    brand = rng.choice(BRANDS)
    noun = rng.choice(NOUNS[category])
    material = rng.choice(MATERIALS[category])
    low, high = PRICE_RANGES[category]
    cents = rng.choice(("0.00", "0.50", "0.90", "0.99"))
    price = Decimal(rng.randint(low, high)) + Decimal(cents)
    availability = rng.choices(AVAILABILITY, weights=(14, 2, 3, 1))[0]
    n_views = rng.choice((1, 2, 2, 3, 3, 3))
    modified = GENERATED_EPOCH + timedelta(seconds=rng.randrange(300 * 24 * 3600))
    sku = f"DS-{index + 1:05d}"
    adjective = PATTERN_ADJECTIVES[pattern]
    words = [colour.capitalize(), adjective, material, noun]
    name = " ".join(word for word in words if word)
    description = (
        f"{material} {noun.lower()} in {colour}"
        f"{f', {adjective.lower()}' if adjective else ''}. "
        f"{rng.choice(_FIT_SENTENCES)} {rng.choice(_CARE_SENTENCES)}"
    )
    return DemoProduct(
        sku=sku,
        slug=f"{slugify(name)}-{sku.lower()}",
        title=f"{brand} {name}",
        brand=brand,
        category=category,
        colour=colour,
        pattern=pattern,
        price=price,
        currency=currency,
        description=description,
        availability=availability,
        views=VIEWS[:n_views],
        variant=rng.getrandbits(32),
        last_modified=modified,
        image_modified=modified,
    )


_FIT_SENTENCES = (
    "Regular fit, true to size.",
    "Relaxed fit; size down for a closer cut.",
    "Slim fit with a clean silhouette.",
    "Oversized cut for an easy layered look.",
)
_CARE_SENTENCES = (
    "Machine wash at 30°C.",
    "Hand wash only.",
    "Dry clean recommended.",
    "Wipe clean with a damp cloth.",
)


class DemoCatalog:
    """An ordered, thread-safe collection of :class:`DemoProduct` with shop-like mutations.

    ``clock`` supplies "now" for mutations (UTC); each mutation's timestamp is whole seconds and
    strictly later than the previous one, so ``If-Modified-Since`` sees every change.
    """

    def __init__(
        self,
        products: Iterable[DemoProduct] = (),
        *,
        seed: int = 0,
        currency: str = "EUR",
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.seed = seed
        self.currency = currency
        self.clock = clock
        self._products: dict[str, DemoProduct] = {}
        self._by_slug: dict[str, str] = {}
        self._last_modified = GENERATED_EPOCH
        self._revision = 0
        self._ordered: tuple[DemoProduct, ...] | None = None
        self._lock = threading.RLock()
        for product in products:
            self._insert(product)
        self._next_index = len(self._products)

    def __repr__(self) -> str:
        return f"DemoCatalog(seed={self.seed}, products={len(self)}, revision={self.revision})"

    @classmethod
    def generate(
        cls,
        n_products: int,
        seed: int = 0,
        *,
        currency: str = "EUR",
        clock: Callable[[], datetime] = _utc_now,
    ) -> DemoCatalog:
        """A catalog of ``n_products`` generated products, identical for identical arguments."""
        if n_products < 0:
            raise ValueError("n_products must be >= 0")
        products = (generate_product(seed, index, currency=currency) for index in range(n_products))
        return cls(products, seed=seed, currency=currency, clock=clock)

    def _insert(self, product: DemoProduct) -> None:
        if product.sku in self._products:
            raise ValueError(f"duplicate sku {product.sku!r}")
        if product.slug in self._by_slug:
            raise ValueError(f"duplicate slug {product.slug!r}")
        self._products[product.sku] = product
        self._by_slug[product.slug] = product.sku
        self._last_modified = max(self._last_modified, product.last_modified)
        self._changed()

    def _changed(self) -> None:
        self._revision += 1
        self._ordered = None

    def _tick(self) -> datetime:
        now = self.clock().astimezone(UTC).replace(microsecond=0)
        if now <= self._last_modified:
            now = self._last_modified.replace(microsecond=0) + timedelta(seconds=1)
        self._last_modified = now
        return now

    def _replace(self, sku: str, **changes: object) -> DemoProduct:
        with self._lock:
            product = self.get(sku)
            stamp = self._tick()
            if "image_version" in changes:
                changes["image_modified"] = stamp
            updated = replace(product, last_modified=stamp, **changes)  # type: ignore[arg-type]
            self._products[sku] = updated
            self._changed()
            return updated

    # Reads

    @property
    def products(self) -> tuple[DemoProduct, ...]:
        """The current products in catalog order (an immutable snapshot)."""
        with self._lock:
            if self._ordered is None:
                self._ordered = tuple(self._products.values())
            return self._ordered

    @property
    def last_modified(self) -> datetime:
        """When anything in the catalog last changed (listings, sitemap)."""
        with self._lock:
            return self._last_modified

    @property
    def revision(self) -> int:
        """Increases with every change; cheap to compare."""
        with self._lock:
            return self._revision

    def snapshot(self) -> tuple[tuple[DemoProduct, ...], datetime]:
        """Products and ``last_modified`` read together, consistent with each other."""
        with self._lock:
            return self.products, self._last_modified

    def __len__(self) -> int:
        with self._lock:
            return len(self._products)

    def __iter__(self) -> Iterator[DemoProduct]:
        return iter(self.products)

    def __contains__(self, sku: object) -> bool:
        with self._lock:
            return sku in self._products

    def get(self, sku: str) -> DemoProduct:
        """The product with ``sku``; ``KeyError`` when there is none (or it was removed)."""
        with self._lock:
            try:
                return self._products[sku]
            except KeyError:
                raise KeyError(f"no product with sku {sku!r}") from None

    def find_by_slug(self, slug: str) -> DemoProduct | None:
        with self._lock:
            sku = self._by_slug.get(slug)
            return None if sku is None else self._products[sku]

    def in_category(self, category: str) -> tuple[DemoProduct, ...]:
        return tuple(product for product in self.products if product.category == category)

    # Mutations

    def add_product(
        self, product: DemoProduct | None = None, *, category: str | None = None
    ) -> DemoProduct:
        """Add ``product``, or generate the catalog's next product (optionally of ``category``).

        Generated additions continue the seed's sequence, so SKUs are never reused.
        """
        if category is not None and category not in CATEGORIES:
            raise ValueError(f"unknown category {category!r}")
        with self._lock:
            if product is None:
                while True:
                    index = self._next_index
                    self._next_index += 1
                    candidate = generate_product(
                        self.seed, index, category=category, currency=self.currency
                    )
                    if candidate.sku not in self._products and candidate.slug not in self._by_slug:
                        break
                product = candidate
            stamp = self._tick()
            product = replace(product, last_modified=stamp, image_modified=stamp)
            self._insert(product)
            return product

    def set_price(self, sku: str, price: Decimal | str | int | float) -> DemoProduct:
        return self._replace(sku, price=money(price))

    def set_availability(self, sku: str, availability: str) -> DemoProduct:
        if availability not in AVAILABILITY:
            raise ValueError(f"unknown availability {availability!r}")
        return self._replace(sku, availability=availability)

    def bump_image(self, sku: str) -> DemoProduct:
        """New pictures for ``sku``: ``image_version + 1`` changes image URLs and bytes."""
        with self._lock:
            return self._replace(sku, image_version=self.get(sku).image_version + 1)

    def remove(self, sku: str) -> DemoProduct:
        """Take ``sku`` off the shop; its page, images and listing entries disappear."""
        with self._lock:
            product = self.get(sku)
            del self._products[sku]
            del self._by_slug[product.slug]
            self._tick()
            self._changed()
            return product
