"""Pydantic contracts of the catalog database API: what goes in, what comes out.

Rows never leave the facade as ORM objects; callers get these plain, validated values.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator

from shared.db.models import CrawlStatus, FeedbackKind, ImageState
from shared.taxonomy import MappingHow, class_named


class _In(BaseModel):
    model_config = ConfigDict(frozen=True, str_strip_whitespace=True)


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)

    @field_validator("*", mode="after")
    @classmethod
    def _aware(cls, value: Any) -> Any:
        """Times are UTC; SQLite hands them back without a zone, so they get one (RFC 3339)."""
        if isinstance(value, datetime) and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def _absolute_http_url(value: str) -> str:
    return str(HttpUrl(value))


class SourceIn(_In):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    base_url: str
    config: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True

    _check_url = field_validator("base_url")(_absolute_http_url)


class SourceOut(_Out):
    id: int
    name: str
    base_url: str
    config: dict[str, Any]
    enabled: bool
    created_at: datetime


class ImageIn(_In):
    url: str = Field(max_length=2048)
    view: str | None = Field(default=None, max_length=50)

    _check_url = field_validator("url")(_absolute_http_url)


def site_relative(url: str) -> str:
    """The URL's path and query: what stays the same when a shop moves to another scheme,
    host or port."""
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def identity_key(external_id: str | None, canonical_url: str) -> str:
    """A product's identity within its source: ``id:<external id>`` (the page's schema.org
    ``sku``, ``mpn``, ``gtin*`` or ``productID``), else ``url:<path?query>`` of its canonical
    URL (the scraper's canonical URL keeps only the query parameters the shop routes on)."""
    if external_id:
        return f"id:{external_id}"
    return f"url:{site_relative(canonical_url)}"


class ProductIn(_In):
    """A product as a crawler saw it; :attr:`identity_key` identifies it across crawls."""

    canonical_url: str = Field(max_length=2048)
    title: str = Field(min_length=1)
    external_id: str | None = Field(default=None, max_length=200)
    brand: str | None = Field(default=None, max_length=200)
    price: Decimal | None = Field(default=None, ge=0, max_digits=12, decimal_places=2)
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    category: str | None = Field(default=None, max_length=100)
    category_labels: tuple[str, ...] = ()
    attributes: dict[str, Any] = Field(default_factory=dict)
    images: tuple[ImageIn, ...] = ()
    available: bool = True
    """False: the shop lists it but cannot sell it (a feed's ``out of stock``); it is written
    inactive, so no answer shows it, and comes back when the shop sells it again."""

    _check_url = field_validator("canonical_url")(_absolute_http_url)

    @field_validator("currency", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("images")
    @classmethod
    def _dedupe_images(cls, images: tuple[ImageIn, ...]) -> tuple[ImageIn, ...]:
        seen: set[str] = set()
        unique = []
        for image in images:
            if image.url not in seen:
                seen.add(image.url)
                unique.append(image)
        return tuple(unique)

    @property
    def identity_key(self) -> str:
        return identity_key(self.external_id, self.canonical_url)

    def fingerprint(self) -> str:
        """A stable hash of everything a crawl can change; equal hashes mean nothing changed.
        (``available`` is left out: it is compared with the row's ``active`` flag.)"""
        payload = self.model_dump(mode="json", exclude={"available"})
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


class ImageOut(_Out):
    id: int
    product_id: int
    url: str
    view: str | None
    position: int
    active: bool
    state: ImageState
    error: str | None
    attempts: int
    content_hash: str | None
    width: int | None
    height: int | None
    n_bytes: int | None


class ProductOut(_Out):
    id: int
    source_id: int
    canonical_url: str
    identity_key: str
    external_id: str | None
    title: str
    brand: str | None
    price: Decimal | None
    currency: str | None
    category: str | None
    category_labels: list[str]
    attributes: dict[str, Any]
    active: bool
    first_seen: datetime
    last_seen: datetime
    images: list[ImageOut] = Field(default_factory=list)


class UpsertReport(BaseModel):
    """What one :meth:`Catalog.upsert_products` call changed, by product id."""

    created: list[int] = Field(default_factory=list)
    updated: list[int] = Field(default_factory=list)
    unchanged: list[int] = Field(default_factory=list)
    new_image_ids: list[int] = Field(default_factory=list)
    removed_image_ids: list[int] = Field(default_factory=list)


class ClaimedImage(_Out):
    """An image a worker now owns (state ``processing``) until it records done or failed."""

    id: int
    product_id: int
    url: str
    view: str | None
    attempts: int


class CropIn(_In):
    box: tuple[float, float, float, float]
    category: str | None = None
    score: float | None = Field(default=None, ge=0.0, le=1.0)
    garment: str | None = Field(
        default=None,
        max_length=40,
        description="The garment classifier's class for this crop (a shared.taxonomy class, "
        "in any spelling the taxonomy reads; stored as the class name).",
    )
    garment_p: float | None = Field(
        default=None, ge=0.0, le=1.0, description="The classifier's probability of `garment`."
    )
    point_id: str | None = None

    @field_validator("garment")
    @classmethod
    def _taxonomy_class(cls, garment: str | None) -> str | None:
        return class_named(garment).name if garment is not None else None

    @field_validator("box")
    @classmethod
    def _valid_box(cls, box: tuple[float, float, float, float]) -> tuple[float, ...]:
        x0, y0, x1, y1 = box
        if not (x1 > x0 and y1 > y0):
            raise ValueError(f"box {box} is empty or inverted (want x0 < x1 and y0 < y1)")
        return box


class ImageResult(_In):
    """What ingest learned about an image it processed."""

    content_hash: str = Field(min_length=1, max_length=64)
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    n_bytes: int = Field(ge=0)
    crops: tuple[CropIn, ...] = ()
    model_version: str | None = None


class CrawlRunOut(_Out):
    id: int
    source_id: int
    status: CrawlStatus
    started_at: datetime
    finished_at: datetime | None
    pages: int
    items: int
    errors: int
    stats: dict[str, Any]
    holder: str | None = None
    heartbeat_at: datetime | None = None


class ModelVersionIn(_In):
    name: str = Field(min_length=1, max_length=200)
    kind: str = Field(pattern=r"^(embedder|detector)$")
    backbone: str | None = None
    dim: int | None = Field(default=None, gt=0)
    card: dict[str, Any] = Field(default_factory=dict)


class ModelVersionOut(_Out):
    id: int
    name: str
    kind: str
    backbone: str | None
    dim: int | None
    card: dict[str, Any]
    active: bool
    created_at: datetime


class FeedbackIn(_In):
    kind: FeedbackKind
    product_id: int
    request_id: str | None = Field(default=None, max_length=64)
    session_id: str | None = Field(default=None, max_length=128)
    variant: str | None = Field(default=None, max_length=50)
    position: int | None = Field(default=None, ge=0)
    score: float | None = None
    model_version: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class CategoryGarment(_Out):
    """The garment class a source's category means, as the operator sees it (see
    :func:`shared.taxonomy.map_category`)."""

    source_id: int
    source: str = Field(description="The source's name.")
    category: str | None = Field(
        description="The products' category (after the source's category_map); None: products "
        "without one, whose crops' own votes place them when they are indexed and searched."
    )
    garment: str | None = Field(description="A shared.taxonomy class name, or None: unknown.")
    parent: str | None = Field(description="The class's parent (top, bottom, footwear ...).")
    how: MappingHow = Field(
        description="operator (the source's garment_map), name (the taxonomy reads the "
        "category), not a garment (the category names none: perfume, a football), votes (most "
        "of its crops were classified so) or unknown."
    )
    votes: int = Field(description="Crops of the category's active products with a vote.")
    share: float = Field(
        description="The fraction of those votes for the class's parent (for unknown: for the "
        "most voted parent)."
    )
    products: int = Field(description="Active products in the category.")


class Facets(BaseModel):
    """What a search of the active catalog can filter on."""

    categories: list[str] = Field(description="Categories of active products, A to Z.")
    brands: list[str] = Field(description="Brands of active products, A to Z (at most 500).")
    currency: str | None = Field(description="The most common currency of active products.")
    min_price: float | None = Field(description="The lowest price in ``currency``.")
    max_price: float | None = Field(description="The highest price in ``currency``.")


class CatalogStats(BaseModel):
    sources: int
    products_active: int
    products_inactive: int
    images: dict[ImageState, int]


class ShopStats(BaseModel):
    """One source's counts: its products and where their images' ingest stands."""

    source: str
    enabled: bool
    products: int = Field(description="Products, active or not.")
    products_active: int
    images_indexed: int = Field(description="Active images that are searchable.")
    images_pending: int = Field(description="Active images waiting or being indexed.")
    images_failed: int = Field(description="Active images that could not be indexed.")


SHOP_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
"""What a source (shop) name looks like: :class:`SourceIn`'s ``name``."""


class ApiKeyIn(_In):
    """A storefront key to make: its name and the shops (source names) it may see."""

    name: str = Field(min_length=1, max_length=100, pattern=SHOP_NAME)
    shops: tuple[str, ...] = Field(min_length=1, max_length=50)


class ApiKeyOut(_Out):
    """A storefront key as stored: never the key itself."""

    id: int
    name: str
    shops: list[str]
    created_at: datetime


class NewApiKey(ApiKeyOut):
    """A key just made, with the key itself: shown once, never stored in clear."""

    key: str


STALLED_AFTER_S = 300.0
"""Images waiting and none finished for this long: ingest is stalled."""


class IngestProgress(_Out):
    """Where ingest stands, from the catalog (the source of truth): active images per state,
    the most common failure reasons, and when an image last finished."""

    images: dict[ImageState, int]
    failure_reasons: dict[str, int] = Field(
        description="Failed images per reason (URLs replaced by <url>), most common first."
    )
    last_processed_at: datetime | None = Field(
        description="When an image last became done or failed (RFC 3339)."
    )
    waiting_since: datetime | None = Field(
        default=None,
        description="Since when the longest-waiting image has waited (RFC 3339); null: none.",
    )
    indexed_last_minute: int = Field(description="Images that became done in the last 60 s.")

    @property
    def total(self) -> int:
        return sum(self.images.values())

    @property
    def done(self) -> int:
        return self.images.get(ImageState.DONE, 0)

    @property
    def waiting(self) -> int:
        """Images not finished yet (pending or being processed)."""
        return self.images.get(ImageState.PENDING, 0) + self.images.get(ImageState.PROCESSING, 0)

    @property
    def failed(self) -> int:
        return self.images.get(ImageState.FAILED, 0)

    def seconds_since_progress(self, now: datetime | None = None) -> float | None:
        if self.last_processed_at is None:
            return None
        now = now or datetime.now(self.last_processed_at.tzinfo)
        return max(0.0, (now - self.last_processed_at).total_seconds())

    def stalled(self, after_s: float = STALLED_AFTER_S, now: datetime | None = None) -> bool:
        """An image has waited ``after_s`` and none has finished meanwhile: no worker is making
        progress (new images arriving after a quiet spell are not a stall)."""
        if self.waiting == 0 or self.waiting_since is None:
            return False
        now = now or datetime.now(self.waiting_since.tzinfo)
        if (now - self.waiting_since).total_seconds() <= after_s:
            return False
        since = self.seconds_since_progress(now)
        return since is None or since > after_s

    def summary(self) -> str:
        """One line for people: ``250 of 272 images indexed, 22 waiting, 0 failed; ...``."""
        line = f"{self.done} of {self.total} images indexed, {self.waiting} waiting"
        line += f", {self.failed} failed"
        since = self.seconds_since_progress()
        if since is None:
            line += "; none finished yet"
        else:
            ago = f"{since:.0f} s" if since < 120 else f"{since / 60:.0f} min"
            line += f"; last one {ago} ago, {self.indexed_last_minute} in the last minute"
        if self.stalled():
            line += " (stalled: is a worker running?)"
        return line
