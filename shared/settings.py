"""One typed settings object, built from the environment.

With nothing set, Lookalike runs embedded: a SQLite catalog, an in-process Qdrant and a Celery
broker backed by SQLite, all under ``LOOKALIKE_DATA_DIR``. The well-known variables
``DATABASE_URL``, ``REDIS_URL``, ``CELERY_BROKER_URL``, ``CELERY_RESULT_BACKEND`` and
``QDRANT_URL`` switch the same code to Postgres, Redis and a Qdrant server. Everything else is
prefixed ``LOOKALIKE_``; nested groups use ``__`` (``LOOKALIKE_GATEWAY__MAX_UPLOAD_BYTES``).

Nothing here reads the environment at import time: call :func:`get_settings`.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import sys
from functools import lru_cache
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import annotated_types
from dotenv import dotenv_values
from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from shared.errors import InvalidSettingError
from shared.netsafe import host_port

log = logging.getLogger(__name__)


def _default_data_dir() -> Path:
    return Path("~/.local/share/lookalike").expanduser()


class ImageSettings(BaseModel):
    """Limits on any image a service takes in (the gateway's uploads and fetched ``image_url``
    pictures, the detector's and the embedder's inputs)."""

    max_upload_bytes: int = Field(default=15 * 1024 * 1024, gt=0)
    """Largest upload or fetched picture, in bytes (413 above; formerly
    ``gateway.max_upload_bytes``, still read when this one is not set)."""
    max_image_pixels: int = Field(default=40_000_000, gt=0)
    """Largest picture, in pixels (decompression bombs are refused; formerly
    ``gateway.max_image_pixels``)."""


class CropSettings(BaseModel):
    """How a photo becomes garment crops, the same for the catalog and a shopper's photo
    (:mod:`shared.crops`)."""

    detect: bool = False
    """Crop catalog photos to the garments the detector finds (in process, or the detector
    service when ``detector_url`` is set), and a shopper's product shot (plain background)
    likewise. Off (the default), each catalog photo is one whole-image crop and so is a
    product shot; street photos are cropped to their garments either way. On 2 cores
    detection costs ~23 ms a product shot and ~60 ms a photo of a person, against ~10 ms to
    embed an image (formerly ``ingest.detect``, still read when this one is not set)."""
    remove_background: bool = False
    """Embed (and describe the colour of) each crop's garment alone: everything outside its
    mask (:mod:`shared.mask`) painted white, on both sides alike; a crop whose mask falls back
    (a blank photo, a garment filling the frame) is kept whole. It changes the index's
    vectors, so it names them: the embedding model's version gets ``+cutout``
    (:attr:`variant`), and an index made otherwise is refused until ``lookalike reindex``
    (docs/lab/2026-12-colour.md, "Background removal")."""

    @property
    def variant(self) -> str:
        """What these settings add to the embedding model's version ("" for the default)."""
        return "cutout" if self.remove_background else ""


class GatewaySettings(BaseModel):
    allow_private_image_hosts: list[str] = Field(default_factory=list)
    """``host:port`` pairs that ``image_url`` may reach although they are private/loopback
    (JSON list: ``LOOKALIKE_GATEWAY__ALLOW_PRIVATE_IMAGE_HOSTS='["127.0.0.1:8001"]'``;
    ``lookalike run`` adds its demo shop's)."""
    allow_private_image_urls: bool = False
    """Let ``image_url`` point at any private/loopback address (never in public)."""
    download_timeout_s: float = Field(default=10.0, gt=0)
    """How long fetching a request's ``image_url`` may take."""
    embedder_timeout_s: float = Field(default=5.0, gt=0)
    """Per-call timeout of the HTTP client of the embedder service (503 past it)."""
    trusted_proxies: list[str] = Field(default_factory=list)
    """Addresses or networks (``10.0.0.0/8``) of reverse proxies whose ``X-Forwarded-For`` and
    ``X-Forwarded-Proto`` are believed; from any other peer they are ignored (JSON list in the
    environment: ``LOOKALIKE_GATEWAY__TRUSTED_PROXIES='["10.0.0.5"]'``)."""
    rate_limit_per_minute: int = Field(default=120, ge=0)
    """Per client on ``POST /recommend``; 0 turns the limit off (formerly
    ``recommender.rate_limit_per_minute``, still read when this one is not set)."""
    feedback_rate_limit_per_minute: int = Field(default=60, ge=0)
    """Per client on ``POST /feedback`` without an API key; 0 turns the limit off."""
    feedback_window_s: int = Field(default=3600, gt=0)
    """How long after a ``/recommend`` answer feedback without an API key may refer to it."""

    # How a query is scoped and ranked (read by shared/scope.py and services/gateway/service.py).
    default_k: int = Field(default=12, gt=0, le=100)
    """Products per garment when a request does not set ``k``."""
    color_weight: float = Field(default=0.45, ge=0.0, le=1.0)
    """Colour's share of the score when a request does not set ``color_weight`` (0: shape
    alone; from 0.5 the nearest colours are the candidates). Within the kind the search
    decided: the categories a product shot's nearest products vote for are chosen by shape
    alone. Chosen by BENCHMARKS.md, what ships now: same type + colour P@10 of the catalog's
    own photos with same type kept."""
    colour_share: float = Field(default=0.75, ge=0.0, le=1.0)
    """The share of the colour similarity that is the chance the two garments have the same
    named colour (``shared/colour_names.json``'s probabilities), the colour descriptors'
    coefficient the rest. Chosen by BENCHMARKS.md with ``color_weight``."""
    category_threshold: float = Field(default=0.8, ge=0.0, le=1.0)
    """A crop whose most probable garment class reaches this probability searches that class
    alone; below it the top ``max_categories`` classes share the places. Chosen by
    BENCHMARKS.md, what ships now: street garment hit@10."""
    max_categories: int = Field(default=2, gt=0)
    """How many garment classes an unsure crop searches (see ``category_threshold``)."""
    detector_weight: float = Field(default=0.8, ge=0.0, le=1.0)
    """The detector's share of a street crop's garment class, the classifier's the rest
    (``shared/scope.py``); at 0.8 the detector's class is always searched first.
    Chosen by BENCHMARKS.md, what ships now: street garment hit@10."""
    neighbour_weight: float = Field(default=1.0, ge=0.0, le=1.0)
    """The nearest catalog products' share of a product shot's garment class, the
    classifier's the rest (a street-trained classifier knows shop photos least). Chosen by
    BENCHMARKS.md, what ships now: product photos' P@10 same parent."""
    neighbours: int = Field(default=10, ge=0, le=50)
    """Nearest catalog products (of any class) that vote on a product shot's garment class
    (0: none, one search less)."""
    category_votes: int = Field(default=3, ge=0, le=10)
    """A garment's results start with the shop categories of its this many nearest products
    of the classes searched (0: by score alone). Chosen by BENCHMARKS.md, what ships now:
    product photos' P@10 same type."""
    unlikely_class: float = Field(default=0.1, ge=0.0, le=1.0)
    """Within the classes searched, the products of a finer class (skirts, leggings ...) that
    the crop classifier gives less than this probability come after the others (0: by score
    alone; ``shared/scope.py``). Chosen by BENCHMARKS.md, what ships now: street
    class P@10."""

    words_paths: Literal["both", "text", "pictures"] = "both"
    """Which paths answer words alone: the products' text, the pictures (a foundation model's
    text tower, or the word bridge of the shop's model), or both fused by rank."""
    words_pictures_weight: float = Field(default=1.0, ge=0.0, le=4.0)
    """When words alone are fused, the text path counts by its evidence (the share of its hits
    whose own words share a word with the query) and the pictures path by the rest, times this
    (0: the pictures never answer words alone). Chosen by BENCHMARKS.md, words
    (``lookalike eval-text``)."""
    words_colour_weight: float = Field(default=0.5, ge=0.0, le=1.0)
    """Colour's share of the pictures path's score when the words name a colour. Chosen by
    BENCHMARKS.md, words (``lookalike eval-text``)."""
    session_half_life_h: float = Field(default=24.0, gt=0.0, le=24.0 * 365)
    """ "Based on what you viewed": a view's weight halves every this many hours since it was
    seen (``seen_at``), so recent views count more. A shopping day by default; the simulated
    sessions of ``lookalike eval-sessions`` carry no times, so no figure chose it yet."""

    @field_validator("allow_private_image_hosts")
    @classmethod
    def _host_ports(cls, hosts: list[str]) -> list[str]:
        return [host_port(host) for host in hosts]


class DetectorSettings(BaseModel):
    model: str | None = None
    """A detector artifact directory, a torchvision detection checkpoint or an ultralytics YOLO
    file; unset means the shipped default."""
    min_score: float = Field(default=0.35, ge=0.0, le=1.0)
    """A detected box's lowest score to count as a garment. Chosen by BENCHMARKS.md, what ships
    now: street garment hit@10 against spurious garments a photo."""
    class_min_score: dict[str, float] = Field(default_factory=lambda: {"accessory": 1.0})
    """A detector class's own lowest score (``top``, ``bag`` ...), above or below
    ``min_score`` (1.0: the class is off); classes not listed keep ``min_score``. The shipped
    detector keeps ``min_score`` for every class but ``accessory``, which is off. Chosen by
    BENCHMARKS.md, what ships now: street garment hit@10 against spurious garments a photo."""
    margin: float = Field(default=0.08, ge=0.0, le=1.0)
    max_detections: int = Field(default=8, gt=0)
    """The most garments a photo is read as (the most prominent first)."""
    overlap_iou: float = Field(default=0.4, gt=0.0, le=1.0)
    """Garments whose boxes overlap more than this (IoU) are one garment, whatever classes the
    model gave them: the best-scored box stays (1.0: no suppression across classes). Chosen by
    BENCHMARKS.md, what ships now: duplicate garments a photo against street garment
    hit@10."""
    remove_background: bool = False
    timeout_s: float = Field(default=5.0, gt=0)
    """Per-call timeout of the HTTP client of the detector service (503 past it)."""

    @field_validator("class_min_score")
    @classmethod
    def _known_classes(cls, scores: dict[str, float]) -> dict[str, float]:
        from shared.detection import COARSE_CATEGORIES

        for name, score in scores.items():
            if name not in COARSE_CATEGORIES:
                known = ", ".join(COARSE_CATEGORIES)
                raise ValueError(f"no detector class {name!r}; the classes are {known}")
            if not 0.0 <= score <= 1.0:
                raise ValueError(f"{name}: a score is between 0 and 1, not {score}")
        return scores


class RecommenderSettings(BaseModel):
    """The recommender service's own knobs (the gateway decides what a query searches)."""

    candidates: int = Field(default=100, gt=0)
    """Index hits fetched per query before one hit per product and re-ranking."""
    timeout_s: float = Field(default=5.0, gt=0)
    """Per-call timeout of the HTTP client of the recommender service (503 past it)."""


class EmbedderSettings(BaseModel):
    """Which models embed and classify crops, the catalog's and the queries' alike."""

    model: str = "street-lite2"
    """The embedding model a catalog starts with when it has no active one: a registry backbone
    (ImageNet weights), a shipped model's name or a trained model directory. ``lookalike
    reindex --model`` switches a catalog that has one. Chosen by BENCHMARKS.md, what ships
    now: product photos' P@10 same type."""
    classifier: str | None = "street-lite0"
    """The garment classifier of query and catalog crops when the embedding model has no head
    (unset: none; searches are then scoped by the detector and the neighbours alone)."""
    allow_download: bool = False
    """Whether a foundation model's ``hf-hub:ORG/REPO`` weights may be downloaded when they are
    not in the Hugging Face cache (off: nothing is downloaded while serving; ``HF_HUB_OFFLINE``
    keeps it off either way)."""
    weights_licence: str = ""
    """The licence of a foundation model's weights, for its model card (unset: what the weights
    directory's metadata says, else ``unknown``)."""
    bridge: Path | None = None
    """A folder holding a word bridge (``bridge.npz`` + ``bridge.json``, ``lookalike
    train-bridge``) to read words as pictures with, instead of the one beside the model's card;
    used only with the model version it was learnt for."""


class IngestSettings(BaseModel):
    batch_size: int = Field(default=32, gt=0)
    """Crops per model batch (the embedder's, in ingest and at query time)."""
    download_timeout_s: float = Field(default=15.0, gt=0)
    """How long downloading one catalog image may take."""
    max_image_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    """Largest catalog image downloaded, in bytes (larger ones fail with a reason)."""
    stale_claim_after_s: int = Field(default=600, gt=0)
    """The longest one ingest task may run (Celery's time limit)."""
    claim_lease_s: float = Field(default=30.0, gt=0)
    """A worker renews its claims every third of this; claims not renewed for this long (the
    worker died) go back to ``pending`` at the sweeper's next lease check (every third too)."""
    max_attempts: int = Field(default=5, gt=0)
    index_text: bool = True
    """Write each indexed product's text point (words on ``/recommend``,
    :mod:`shared.words`) beside its image points."""


class ScraperSettings(BaseModel):
    """The crawl scheduler's knobs (``LOOKALIKE_SCRAPER__POLL_INTERVAL_S=10`` and friends); a
    source's own politeness and limits are in its config."""

    poll_interval_s: float = Field(default=30.0, gt=0)
    """How often the scheduler looks for sources that are due."""
    max_concurrent_crawls: int = Field(default=2, ge=1)
    """Crawls the scheduler runs at once (one per source at a time)."""
    crawl_timeout_s: float = Field(default=6 * 3600.0, gt=0)
    """A crawl still running after this is stopped (and recorded as failed)."""
    crawl_lease_s: float = Field(default=60.0, gt=0)
    """A crawl holds its source's crawl lock while it renews this lease (every third of it);
    a lease not renewed for this long (the crawl died) may be taken over by another crawl."""
    write_batch_size: int = Field(default=100, ge=1, le=5000)
    """Products per catalog transaction."""
    http_cache: bool = True
    """Keep pages and revalidate them (ETag / Last-Modified) on the next crawl."""
    log_stats_interval_s: float = Field(default=30.0, gt=0)
    """How often a running crawl logs its page and item counts."""
    scrapy_log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"
    """Scrapy's own loggers (settings, stats, a line per page at DEBUG); the crawl's own
    start and finish lines follow ``LOOKALIKE_LOG_LEVEL``."""


MOVED: dict[tuple[str, str], str] = {
    ("recommender", "rate_limit_per_minute"): "gateway",
    ("gateway", "max_upload_bytes"): "images",
    ("gateway", "max_image_pixels"): "images",
    ("recommender", "default_k"): "gateway",
    ("recommender", "color_weight"): "gateway",
    ("recommender", "category_threshold"): "gateway",
    ("recommender", "max_categories"): "gateway",
    ("recommender", "detector_weight"): "gateway",
    ("recommender", "neighbour_weight"): "gateway",
    ("recommender", "neighbours"): "gateway",
    ("recommender", "category_votes"): "gateway",
    ("recommender", "unlikely_class"): "gateway",
    ("recommender", "embedder"): "embedder.model",
    ("recommender", "classifier"): "embedder.classifier",
    ("ingest", "detect"): "crops",
}
"""(old group, setting) -> where it lives now: a group (the same name there) or
``group.name``. The old environment variables and group keys still set it."""


def moved_to(old_group: str, name: str) -> tuple[str, str] | None:
    """The (group, setting) that ``old_group.name`` moved to, or ``None`` if it did not move."""
    where = MOVED.get((old_group, name))
    if where is None:
        return None
    group, _, new_name = where.partition(".")
    return group, new_name or name


def _moves() -> list[tuple[str, str, str, str]]:
    """Every move as (old group, old name, new group, new name)."""
    return [(g, n, *(moved_to(g, n) or (g, n))) for g, n in MOVED]


def relocate(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (settings by group, as the environment or a config gives them) with every moved
    setting under its new group and name; a setting given under both names keeps the new one."""
    data = dict(data)
    for old_group, name, group, new_name in _moves():
        old = data.get(old_group)
        if not isinstance(old, dict) or name not in old:
            continue
        new = data.get(group, {})
        if not isinstance(new, dict):
            continue
        data[old_group] = {k: v for k, v in old.items() if k != name}
        data[group] = {new_name: old[name], **new}
    return data


class Settings(BaseSettings):
    """Every setting of every service, with embedded defaults."""

    model_config = SettingsConfigDict(
        env_prefix="LOOKALIKE_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    data_dir: Path = Field(default_factory=_default_data_dir)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    demo_port: int = Field(default=8001, ge=0, le=65535)
    """Where ``lookalike run`` serves the generated demo shop (when no real shop is set up)."""
    api_key: str | None = None
    access_log: bool = False
    """A log line per HTTP request (also on with ``--verbose`` or at ``DEBUG``); off, only
    errors and slow start-up steps reach the console."""
    header_timeout_s: float = Field(default=10.0, gt=0)
    """A connection that has not sent its whole request head in this long gets 408 and is
    closed (slow-header clients cannot hold the server's connections)."""

    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "LOOKALIKE_DATABASE_URL")
    )
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "LOOKALIKE_REDIS_URL")
    )
    celery_broker_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CELERY_BROKER_URL", "LOOKALIKE_CELERY_BROKER_URL"),
    )
    celery_result_backend: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CELERY_RESULT_BACKEND", "LOOKALIKE_CELERY_RESULT_BACKEND"),
    )
    qdrant_url: str | None = Field(
        default=None, validation_alias=AliasChoices("QDRANT_URL", "LOOKALIKE_QDRANT_URL")
    )
    qdrant_api_key: str | None = Field(
        default=None, validation_alias=AliasChoices("QDRANT_API_KEY", "LOOKALIKE_QDRANT_API_KEY")
    )

    detector_url: str | None = None
    embedder_url: str | None = None
    recommender_url: str | None = None
    worker_concurrency: int = Field(default=2, gt=0)

    images: ImageSettings = Field(default_factory=ImageSettings)
    crops: CropSettings = Field(default_factory=CropSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    detector: DetectorSettings = Field(default_factory=DetectorSettings)
    recommender: RecommenderSettings = Field(default_factory=RecommenderSettings)
    embedder: EmbedderSettings = Field(default_factory=EmbedderSettings)
    scraper: ScraperSettings = Field(default_factory=ScraperSettings)

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, data: Any) -> Any:
        """Settings that moved (:data:`MOVED`) are still read under their old names
        (``LOOKALIKE_RECOMMENDER__DETECTOR_WEIGHT`` and friends) unless the new name is set
        too."""
        return relocate(data) if isinstance(data, dict) else data

    @field_validator("data_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def catalog_url(self) -> str:
        """SQLAlchemy URL of the catalog DB (SQLite in the data dir unless DATABASE_URL is set)."""
        if self.database_url:
            return normalize_database_url(self.database_url)
        return f"sqlite:///{self.data_dir / 'catalog.sqlite3'}"

    @property
    def broker_url(self) -> str:
        """Celery broker: CELERY_BROKER_URL, else REDIS_URL, else a serverless SQLite broker."""
        if self.celery_broker_url:
            return self.celery_broker_url
        if self.redis_url:
            return self.redis_url
        return f"sqla+sqlite:///{self.data_dir / 'broker.sqlite3'}"

    @property
    def result_backend(self) -> str:
        if self.celery_result_backend:
            return self.celery_result_backend
        if self.redis_url:
            return self.redis_url
        return f"db+sqlite:///{self.data_dir / 'results.sqlite3'}"

    @property
    def qdrant_path(self) -> Path | None:
        """Where the embedded vector index lives; ``None`` when a Qdrant server is configured."""
        return None if self.qdrant_url else self.data_dir / "qdrant"

    @property
    def logs_requests(self) -> bool:
        """A log line per HTTP request: ``access_log``, or everything at ``DEBUG``."""
        return self.access_log or self.log_level == "DEBUG"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def mode(self) -> Literal["embedded", "server"]:
        """``embedded`` when no server-backed store is configured at all."""
        servers = (self.database_url, self.redis_url, self.celery_broker_url, self.qdrant_url)
        return "server" if any(servers) else "embedded"

    def ensure_dirs(self) -> None:
        """Create the data directory tree (only needed by the embedded stores)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.models_dir.mkdir(parents=True, exist_ok=True)


def normalize_database_url(url: str) -> str:
    """Map the ``postgres://`` spellings that hosting platforms hand out to psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


OTHER_VARIABLES = ("LOOKALIKE_BENCH_", "LOOKALIKE_TEST_")
"""Prefixes of ``LOOKALIKE_`` variables that are not :class:`Settings`: benchmark and test
knobs."""

S = TypeVar("S", bound=BaseSettings)


def _env_prefix(model: type[BaseSettings]) -> str:
    return str(model.model_config.get("env_prefix", "")).upper()


def _annotation(field: FieldInfo) -> Any:
    """The field's type without ``None`` (``int | None`` -> ``int``)."""
    annotation = field.annotation
    if get_origin(annotation) in (Union, UnionType):
        args = [arg for arg in get_args(annotation) if arg is not NoneType]
        annotation = args[0] if len(args) == 1 else annotation
    return annotation


def env_names(model: type[BaseSettings]) -> dict[str, FieldInfo]:
    """Every environment variable that sets a field of ``model`` (nested groups with ``__``,
    the old names of moved settings too), with the field it sets."""
    names: dict[str, FieldInfo] = {}

    def walk(fields: dict[str, FieldInfo], prefix: str) -> None:
        for name, field in fields.items():
            alias = field.validation_alias
            if not prefix and isinstance(alias, AliasChoices):
                names.update({str(choice).upper(): field for choice in alias.choices})
                continue
            annotation = _annotation(field)
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                walk(annotation.model_fields, f"{prefix}{name.upper()}__")
            names[f"{prefix}{name.upper()}"] = field

    walk(model.model_fields, _env_prefix(model))
    prefix = _env_prefix(model)
    for old_group, name, group, new_name in _moves() if model is Settings else ():
        names[f"{prefix}{old_group.upper()}__{name.upper()}"] = names[
            f"{prefix}{group.upper()}__{new_name.upper()}"
        ]
    return names


def accepts(field: FieldInfo) -> str:
    """What a setting takes, in words: ``a whole number from 0 to 65535``."""
    annotation = _annotation(field)
    origin = get_origin(annotation)
    if origin is Literal:
        return "one of " + ", ".join(str(arg) for arg in get_args(annotation))
    if annotation is bool:
        return "true or false"
    if origin is list or annotation is list:
        return 'a JSON list, e.g. ["a", "b"]'
    if origin is dict or annotation is dict:
        return 'a JSON object, e.g. {"name": 0.5}'
    kind = {int: "a whole number", float: "a number"}.get(annotation, "text")
    low = high = ""
    for item in field.metadata:
        if isinstance(item, annotated_types.Ge):
            low = f"from {item.ge}"
        elif isinstance(item, annotated_types.Gt):
            low = f"above {item.gt}"
        elif isinstance(item, annotated_types.Le):
            high = f"to {item.le}" if low.startswith("from") else f"up to {item.le}"
        elif isinstance(item, annotated_types.Lt):
            high = f"below {item.lt}"
    return " ".join(part for part in (kind, low, high) if part)


def _error_name(model: type[BaseSettings], loc: tuple[Any, ...]) -> tuple[str, FieldInfo | None]:
    """The environment variable and the field an error's location points at."""
    fields: dict[str, FieldInfo] = model.model_fields
    parts: list[str] = []
    field: FieldInfo | None = None
    for part in loc:
        if not isinstance(part, str) or part not in fields:
            break
        field = fields[part]
        if not parts and isinstance(field.validation_alias, AliasChoices):
            return str(field.validation_alias.choices[0]), field
        parts.append(part.upper())
        annotation = _annotation(field)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            break
        fields = annotation.model_fields
    return _env_prefix(model) + "__".join(parts), field


def _name_given(model: type[BaseSettings], name: str) -> str:
    """``name``, or the old name of a moved setting when only the old one is set."""
    prefix = _env_prefix(model)
    for old_group, old_name, group, new_name in _moves() if model is Settings else ():
        old = f"{prefix}{old_group.upper()}__{old_name.upper()}"
        if name == f"{prefix}{group.upper()}__{new_name.upper()}" and old in os.environ:
            return name if name in os.environ else old
    return name


def invalid_setting(model: type[BaseSettings], exc: ValidationError) -> InvalidSettingError:
    """One line for every bad value: the variable, what was given and what it accepts."""
    problems = []
    for error in exc.errors():
        name, field = _error_name(model, tuple(error["loc"]))
        name = _name_given(model, name)
        given = error.get("input")
        shown = f"={given}" if isinstance(given, str) else ""
        if error["type"] == "value_error" or field is None:
            reason = str(error["msg"]).removeprefix("Value error, ")
        else:
            reason = f"it takes {accepts(field)}"
        problems.append(f"{name}{shown} is not valid: {reason}")
    return InvalidSettingError("; ".join(problems))


def _undecodable(model: type[BaseSettings]) -> InvalidSettingError:
    """A list or map setting whose value is not JSON (pydantic-settings names only its group)."""
    names = env_names(model)
    problems = []
    for name, value in os.environ.items():
        field = names.get(name.upper())
        takes = accepts(field) if field is not None else ""
        if not takes.startswith("a JSON"):
            continue
        try:
            json.loads(value)
        except ValueError:
            problems.append(f"{name.upper()}={value} is not valid: it takes {takes}")
    return InvalidSettingError("; ".join(problems) or "a setting is not valid JSON")


def load_settings(model: type[S]) -> S:
    """``model()`` from the environment, a bad value raised as :class:`InvalidSettingError`,
    and a warning for each ``LOOKALIKE_`` variable under its prefix that sets nothing."""
    try:
        settings = model()
    except ValidationError as exc:
        raise invalid_setting(model, exc) from None
    except SettingsError as exc:
        raise _undecodable(model) from exc
    warn_unknown(model)
    return settings


def warn_unknown(model: type[BaseSettings]) -> None:
    """Warn about each variable under ``model``'s prefix (in the environment or the ``.env``
    file) that names no setting, with the closest real name (a misspelt name would otherwise
    be silently ignored)."""
    known = env_names(model)
    prefix = _env_prefix(model)
    others = OTHER_VARIABLES if model is Settings else ()
    env_file = Path(str(model.model_config.get("env_file") or ".env"))
    in_file = dotenv_values(env_file) if env_file.is_file() else {}
    for name in sorted({*os.environ, *in_file}):
        upper = name.upper()
        if not upper.startswith(prefix) or upper in known or upper.startswith(others):
            continue
        close = difflib.get_close_matches(upper, list(known), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        log.warning("%s is not a Lookalike setting and is ignored%s", name, hint)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read and checked once per process); tests build their own
    ``Settings(...)`` or clear this cache. Raises :class:`InvalidSettingError`."""
    return load_settings(Settings)


def settings_or_exit() -> Settings:
    """For a ``python -m`` entry point: the settings, or the bad value in one line on stderr
    and exit status 2."""
    try:
        return get_settings()
    except InvalidSettingError as exc:
        print(f"Error: {exc.message}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
