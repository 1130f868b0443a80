"""End to end: a labelled shop ingested by the real ingest pipeline, street and product photos
answered by the real recommend pipeline, scored per garment class of :mod:`shared.taxonomy`.

1. serve the catalog folder (``labels.csv`` + images) on 127.0.0.1 and upsert its products
   through :meth:`Catalog.upsert_products` (category = ``articleType``), holding back a seeded
   share of them as product-photo queries;
2. ingest the images with :class:`IngestRuntime` (in process, SQLite + Qdrant Edge in a fresh
   data dir), as a worker would;
3. answer every street photo (``boxes.csv`` + images) and every held-back product photo with
   :class:`RecommendPipeline` wired as the gateway wires it in process;
4. score: boxes by :func:`~lab.evaluate.matching.score_photo`, product photos by
   precision at 10 of the same article type, class, parent and type + colour (the exact
   ``baseColour`` label, and the shopper colour name it reads as, :mod:`shared.colour`),
   overall, per parent class, per colour and per article type.
"""

from __future__ import annotations

import csv
import functools
import random
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from lab.evaluate.matching import (
    MIN_SAME,
    TOP_K,
    Box,
    GroupAnswer,
    PhotoScore,
    score_photo,
)
from lab.evaluate.records import Answer, CatalogItem, StreetPhoto
from lab.wiring import gateway_pipeline
from services.gateway.schemas import Group, RecommendParams, RecommendResponse
from shared.colour import SHOPPER_COLOURS
from shared.db import Catalog, ImageIn, ProductIn, SourceIn
from shared.detection import HELD_OUT_PHOTOS, held_out
from shared.errors import ConfigurationError
from shared.settings import Settings, relocate
from shared.taxonomy import TARGET_PARENTS, garment_class, parent

__all__ = [
    "PHOTO_CHOICES",
    "Answer",
    "CatalogItem",
    "E2EConfig",
    "StreetPhoto",
    "choose_photos",
    "read_catalog",
    "read_street",
    "run",
]

Progress = Callable[[str], None]
CHUNK = 64
"""Images per ingest call (a worker's chunk)."""
VARIANT_GROUPS = ("recommender", "detector", "gateway")
"""Settings a variant may change: query time only (the catalog is indexed once)."""
EVERY = 25
"""Photos between progress lines."""


@dataclass
class E2EConfig:
    catalog: Path
    street: Path
    holdout: float = 0.1
    seed: int = 0
    limit: int | None = None
    """At most this many street photos and this many product photos."""
    photos: str = "all"
    """``all`` street photos, or the ``held-out`` ones: the classifier and the detector's split
    run never trained on them (the shipped detector, retrained on every photo, has)."""
    max_products: int | None = None
    """Index a seeded sample of this many catalog products (all by default)."""
    data_dir: Path | None = None
    sheets: Path | None = None
    sheets_max: int = 25
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Other query-time settings to score on the same indexed catalog (name -> overrides)."""


def read_catalog(folder: Path) -> list[CatalogItem]:
    """The rows of ``folder/labels.csv`` whose image is there."""
    with (folder / "labels.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    items = []
    for row in rows:
        path = folder / row["filename"]
        if path.is_file():
            items.append(
                CatalogItem(
                    item_id=row["item_id"],
                    path=path,
                    article_type=row.get("articleType") or "",
                    sub_category=row.get("subCategory") or "",
                    colour=row.get("baseColour") or "",
                    title=row.get("productDisplayName") or f"Product {row['item_id']}",
                    attributes={
                        k: v for k, v in row.items() if k not in {"filename", "item_id"} and v
                    },
                )
            )
    return items


PHOTO_CHOICES = ("all", "held-out")


def choose_photos(photos: Sequence[StreetPhoto], which: str) -> list[StreetPhoto]:
    """``all`` of ``photos`` (in name order), or those a training run holds out with the
    defaults of ``train-detector`` and ``train --holdout-photos`` (30%, seed 0): the shipped
    detector and classifier never saw them."""
    if which not in PHOTO_CHOICES:
        raise ConfigurationError(f"photos is one of {', '.join(PHOTO_CHOICES)}, not {which!r}")
    if which == "all":
        return list(photos)
    keep = held_out(len(photos), HELD_OUT_PHOTOS, 0)
    return [photo for index, photo in enumerate(photos) if index in keep]


def read_street(folder: Path) -> list[StreetPhoto]:
    """The photos of ``folder/boxes.csv`` with their boxes, in file order."""
    truth: dict[str, list[tuple[str, Box]]] = {}
    with (folder / "boxes.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            box = (float(row["x1"]), float(row["y1"]), float(row["x2"]), float(row["y2"]))
            truth.setdefault(row["filename"], []).append((row["category"], box))
    return [
        StreetPhoto(folder / name, tuple(boxes))
        for name, boxes in sorted(truth.items())
        if (folder / name).is_file()
    ]


COLOUR_COLUMNS = ("colour", "color", "basecolour")


def street_colour_column(folder: Path) -> str | None:
    """The column of ``folder/boxes.csv`` that labels a box's colour, if it has one (the dev
    street boxes have none: a class and a box)."""
    with (folder / "boxes.csv").open(newline="") as handle:
        header = next(csv.reader(handle), [])
    return next((name for name in header if name.strip().casefold() in COLOUR_COLUMNS), None)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """Serve the files of ``folder`` on 127.0.0.1 in a thread; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.daemon = True
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def embedded_settings(settings: Settings, data_dir: Path) -> Settings:
    """``settings`` (models, thresholds) on the embedded stores of ``data_dir``."""
    servers = (
        "database_url",
        "redis_url",
        "celery_broker_url",
        "celery_result_backend",
        "qdrant_url",
        "detector_url",
        "embedder_url",
        "recommender_url",
    )
    return settings.model_copy(update={"data_dir": data_dir, **dict.fromkeys(servers)})


def split(
    items: Sequence[CatalogItem], config: E2EConfig
) -> tuple[list[CatalogItem], list[CatalogItem]]:
    """(indexed, held back): a seeded share of the typed products is held back as queries, in
    random order (``limit`` takes a random few)."""
    rng = random.Random(config.seed)  # noqa: S311 - a reproducible split, not a secret
    chosen = list(items)
    if config.max_products is not None and config.max_products < len(chosen):
        chosen = sorted(rng.sample(chosen, config.max_products), key=lambda i: i.item_id)
    typed = [item for item in chosen if item.article_type]
    queries = rng.sample(typed, min(len(typed), round(config.holdout * len(chosen))))
    kept = {item.item_id for item in queries}
    return [item for item in chosen if item.item_id not in kept], queries


def _product_url(base: str, item: CatalogItem) -> str:
    return f"{base}/products/{item.item_id}"


def _products(base: str, folder: Path, items: Sequence[CatalogItem]) -> list[ProductIn]:
    return [
        ProductIn(
            canonical_url=_product_url(base, item),
            external_id=item.item_id,
            title=item.title,
            category=item.article_type or None,
            category_labels=tuple(
                label for label in (item.sub_category, item.article_type) if label
            ),
            attributes=item.attributes,
            images=(ImageIn(url=f"{base}/{item.path.relative_to(folder).as_posix()}"),),
        )
        for item in items
    ]


class _Meter:
    """Progress lines with a rate and the time left."""

    def __init__(self, what: str, total: int, progress: Progress) -> None:
        self.what, self.total, self.progress = what, total, progress
        self.started = time.perf_counter()

    def tick(self, done: int, *, force: bool = False) -> None:
        if not force and done % EVERY and done != self.total:
            return
        seconds = time.perf_counter() - self.started
        rate = done / seconds if seconds > 0 else 0.0
        left = (self.total - done) / rate if rate > 0 else 0.0
        self.progress(
            f"{self.what}: {done}/{self.total} ({rate:.1f}/s, {seconds:.0f}s, ~{left:.0f}s left)"
        )


def _ingest(
    settings: Settings,
    catalog: Catalog,
    index: Any,
    base: str,
    config: E2EConfig,
    items: Sequence[CatalogItem],
    progress: Progress,
    *,
    source_name: str = "eval-catalog",
) -> dict[str, Any]:
    from services.ingest.pipeline import IngestRuntime

    started = time.perf_counter()
    source = catalog.upsert_source(
        SourceIn(
            name=source_name,
            base_url=base,
            config={
                "allow_private_addresses": True,
                "politeness": {"download_delay": 0, "concurrency": 8},
            },
        )
    )
    image_ids: list[int] = []
    for start in range(0, len(items), 1000):
        chunk = _products(base, config.catalog, items[start : start + 1000])
        image_ids += catalog.upsert_products(source.id, chunk).new_image_ids
    runtime = IngestRuntime.build(settings, catalog=catalog, index=index)
    done = failed = points = 0
    meter = _Meter("ingest", len(image_ids), progress)
    try:
        for start in range(0, len(image_ids), CHUNK):
            report = runtime.pipeline.process(image_ids[start : start + CHUNK])
            done, failed = done + len(report.done), failed + len(report.failed) + len(report.retry)
            points += report.points
            count = min(start + CHUNK, len(image_ids))
            meter.tick(count, force=count % (CHUNK * 8) == 0 or count == len(image_ids))
    finally:
        runtime.close()
    seconds = time.perf_counter() - started
    return {
        "products": len(items),
        "images_done": done,
        "images_failed": failed,
        "points": points,
        "detect": settings.crops.detect,
        "remove_background": settings.crops.remove_background,
        "seconds": round(seconds, 1),
        "images_per_s": round(done / seconds, 1) if seconds > 0 else 0.0,
    }


def _group_answer(group: Group) -> GroupAnswer:
    box = tuple(group.box) if group.box else (0.0, 0.0, 0.0, 0.0)
    return GroupAnswer(
        box=(box[0], box[1], box[2], box[3]),
        category=group.category,
        searched=tuple(group.searched),
        products=tuple(r.category for r in group.recommendations),
        notice=group.notice,
    )


def _main_group(response: RecommendResponse) -> Group | None:
    """The largest garment of a product photo (a shop photo shows one product)."""

    def area(group: Group) -> float:
        x0, y0, x1, y1 = group.box or (0.0, 0.0, 0.0, 0.0)
        return (x1 - x0) * (y1 - y0)

    return max(response.groups, key=area, default=None)


def _own_first(item: CatalogItem, response: RecommendResponse) -> bool | None:
    """The answer's first group is of the product's own parent class (``None``: the product's
    type names no garment class)."""
    own = parent(item.article_type)
    if own is None:
        return None
    return bool(response.groups) and parent(response.groups[0].category) == own


def _timing(answers: Sequence[Answer]) -> dict[str, Any]:
    if not answers:
        return {}
    walls = sorted(a.wall_ms for a in answers)
    stages: dict[str, list[float]] = {}
    for answer in answers:
        for stage, ms in answer.response.timings_ms.items():
            stages.setdefault(stage, []).append(ms)
    return {
        "p50_ms": round(statistics.median(walls), 1),
        "p95_ms": round(walls[min(len(walls) - 1, int(0.95 * len(walls)))], 1),
        "mean_ms": round(statistics.fmean(walls), 1),
        "stages_p50_ms": {k: round(statistics.median(v), 1) for k, v in stages.items()},
    }


def _rate(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 3) if denominator else None


def street_figures(
    scores: Sequence[PhotoScore], shop: Mapping[str, int] | None = None
) -> dict[str, Any]:
    """Per parent class (the targets, ``overall`` over them, ``other`` for the rest), per
    finer class (``shop``: the indexed products of each class) and per photo."""
    rows: dict[str, dict[str, Any]] = {}
    buckets = [*TARGET_PARENTS, "overall", "other"]
    for name in buckets:
        truths = [
            t
            for s in scores
            for t in s.truths
            if (name == "overall" and t.parent in TARGET_PARENTS)
            or (name == "other" and t.parent not in TARGET_PARENTS)
            or t.parent == name
        ]
        found = [t for t in truths if t.found]
        rows[name] = {
            "boxes": len(truths),
            "found": len(found),
            "found_rate": _rate(len(found), len(truths)),
            "class_right": sum(t.class_right for t in found),
            "class_right_rate": _rate(sum(t.class_right for t in found), len(found)),
            "searched_right_rate": _rate(sum(t.searched_right for t in found), len(found)),
            "hit10": sum(t.hit for t in truths),
            "hit10_rate": _rate(sum(t.hit for t in truths), len(truths)),
            "duplicate_groups": sum(t.duplicates for t in truths),
            "flagged_rate": _rate(sum(t.flagged for t in found), len(found)),
            "hit10_when_flagged": _rate(
                sum(t.hit for t in found if t.flagged), sum(t.flagged for t in found)
            ),
        }
    photos = len(scores)
    main_found = [s.main_first for s in scores if s.main_first is not None]
    return {
        "photos": photos,
        "main_found": len(main_found),
        "main_first_rate": _rate(sum(main_found), len(main_found)),
        "per_class": rows,
        "per_fine_class": _fine_class_figures(scores, shop or {}),
        "groups_per_photo": _rate(sum(s.groups for s in scores), photos),
        "spurious_per_photo": _rate(sum(s.spurious for s in scores), photos),
        "spurious_flagged_rate": _rate(
            sum(s.spurious_flagged for s in scores), sum(s.spurious for s in scores)
        ),
        "duplicates_per_photo": _rate(sum(t.duplicates for s in scores for t in s.truths), photos),
    }


def _fine_class_figures(
    scores: Sequence[PhotoScore], shop: Mapping[str, int]
) -> dict[str, dict[str, Any]]:
    """The boxes whose label is finer than its parent (jeans, skirt, boots ...), in the target
    parents: how many of the top 10 are of that very class, per class (with the shop's
    products of it), ``overall`` and ``overall, stocked`` (the classes of which the shop has at
    least 10 products, so that a full top 10 is possible)."""
    fine = [
        t for s in scores for t in s.truths if t.garment is not None and t.parent in TARGET_PARENTS
    ]
    names = sorted({t.garment for t in fine if t.garment is not None})
    groups = {name: [t for t in fine if t.garment == name] for name in names}
    groups["overall"] = fine
    groups["overall, stocked"] = [t for t in fine if shop.get(t.garment or "", 0) >= TOP_K]
    rows: dict[str, dict[str, Any]] = {}
    for name, truths in groups.items():
        found = [t for t in truths if t.found]
        rows[name] = {
            "shop_products": shop.get(name, 0) if name in names else None,
            "boxes": len(truths),
            "found": len(found),
            "class_p10": _rate(sum(t.same_class_in_top for t in found), len(found) * TOP_K),
            "class_hit10_rate": _rate(
                sum(t.same_class_in_top >= MIN_SAME for t in truths), len(truths)
            ),
            "hit10_rate": _rate(sum(t.hit for t in truths), len(truths)),
        }
    return rows


MIN_TYPE_QUERIES = 10
"""Article types with fewer product-photo queries get no row of their own."""
NO_COLOUR = "no one colour"
"""The per-colour row of queries whose ``baseColour`` names no shopper colour (``Multi``)."""


def _product_row(chosen: Sequence[Answer]) -> dict[str, Any]:
    """Precision at 10 of these answered product photos. The colour-name figures count only
    the queries whose label names a shopper colour (``named``)."""
    n = len(chosen)
    named = [a for a in chosen if a.extra.get("colour") is not None]
    judged = [right for a in chosen if (right := a.extra.get("said_colour_right")) is not None]
    return {
        "queries": n,
        **{
            key: _rate(sum(a.extra[key] for a in chosen), n * TOP_K)
            for key in ("same_type", "same_class", "same_parent", "same_type_colour")
        },
        "named": len(named),
        **{
            key: _rate(sum(a.extra[key] for a in named), len(named) * TOP_K)
            for key in ("same_type_colour_name", "same_colour_name")
        },
        "said_colour": len(judged),
        "said_colour_right_rate": _rate(sum(judged), len(judged)),
        "no_products": sum(a.extra["products"] == 0 for a in chosen),
        "own_first_rate": _rate(
            sum(a.extra["own_first"] is True for a in chosen),
            sum(a.extra["own_first"] is not None for a in chosen),
        ),
        "flagged": sum(a.extra.get("flagged", False) for a in chosen),
    }


def product_figures(answers: Sequence[Answer]) -> dict[str, Any]:
    """Precision at 10 of the held-back product photos: overall, per parent class, per
    shopper colour of the query's label (in :data:`~shared.colour.SHOPPER_COLOURS` order,
    then :data:`NO_COLOUR`) and per article type with at least :data:`MIN_TYPE_QUERIES`
    queries (most queried first)."""
    per_parent = {
        name: _product_row([a for a in answers if a.extra["parent"] == name])
        for name in TARGET_PARENTS
    }
    per_colour = {}
    for name in (*SHOPPER_COLOURS, None):
        chosen = [a for a in answers if a.extra.get("colour") == name]
        if chosen:
            per_colour[name or NO_COLOUR] = _product_row(chosen)
    types = Counter(a.extra.get("article_type") for a in answers)
    per_type = {
        name: _product_row([a for a in answers if a.extra.get("article_type") == name])
        for name, count in sorted(types.items(), key=lambda t: (-t[1], str(t[0])))
        if name and count >= MIN_TYPE_QUERIES
    }
    return {
        **_product_row(answers),
        "per_class": per_parent,
        "per_colour": per_colour,
        "per_type": per_type,
        "per_type_min_queries": MIN_TYPE_QUERIES,
        "other_type_queries": sum(
            count for name, count in types.items() if not name or count < MIN_TYPE_QUERIES
        ),
    }


def variant_settings(settings: Settings, overrides: dict[str, Any]) -> Settings:
    """``settings`` with query-time overrides (``{"gateway": {...}, "detector": {...},
    "recommender": {...}}``; a moved setting's old group still works): the catalog stays as it
    was indexed."""
    overrides = relocate(overrides)
    unknown = sorted(set(overrides) - set(VARIANT_GROUPS))
    if unknown:
        raise ConfigurationError(
            f"a variant may set only {', '.join(VARIANT_GROUPS)} (query time), not "
            f"{', '.join(unknown)}"
        )
    groups: dict[str, BaseModel] = {}
    for group, values in overrides.items():
        if not isinstance(values, dict):
            raise ConfigurationError(f"variant group {group!r} must be an object of settings")
        current: BaseModel = getattr(settings, group)
        unknown = sorted(set(values) - set(type(current).model_fields))
        if unknown:
            raise ConfigurationError(f"{group} has no setting {', '.join(unknown)}")
        try:
            groups[group] = type(current).model_validate({**current.model_dump(), **values})
        except ValidationError as exc:
            raise ConfigurationError(f"invalid {group} settings: {exc}") from exc
    return settings.model_copy(update=groups)


def run(config: E2EConfig, settings: Settings, progress: Progress = print) -> dict[str, Any]:
    """Index the catalog, answer the photos, score them; returns the report (JSON-ready)."""
    from shared.download import make_client
    from shared.vectors import open_index

    started = time.perf_counter()
    items = read_catalog(config.catalog)
    photos = choose_photos(read_street(config.street), config.photos)[: config.limit]
    indexed, queries = split(items, config)
    queries = queries[: config.limit]
    variants = {name: variant_settings(settings, o) for name, o in config.variants.items()}
    progress(
        f"catalog: {len(items)} products ({len(indexed)} indexed, {len(queries)} held back as "
        f"queries); street: {len(photos)} photos"
    )
    with ExitStack() as stack:
        if config.data_dir is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="eval-e2e-")))
            shared_models = settings.models_dir
            if shared_models.is_dir():  # the models' export cache, as every run shares it
                data_dir.joinpath("models").symlink_to(shared_models, target_is_directory=True)
        else:
            data_dir = config.data_dir
            if (data_dir / "catalog.sqlite3").exists() or (data_dir / "qdrant").exists():
                raise ConfigurationError(f"{data_dir} already holds a catalog; give a fresh folder")
        local = embedded_settings(settings, data_dir)
        local.ensure_dirs()
        catalog = Catalog.from_settings(local)
        stack.callback(catalog.dispose)
        catalog.migrate()
        index = open_index(None, local.qdrant_path)
        stack.callback(index.close)
        base = stack.enter_context(serve_folder(config.catalog))
        ingest = _ingest(local, catalog, index, base, config, indexed, progress)
        progress(f"ingest: {ingest}")

        http = stack.enter_context(make_client(timeout_s=local.gateway.download_timeout_s))
        by_url = {_product_url(base, item): item for item in items}
        answer = functools.partial(
            _answer_all, catalog=catalog, index=index, http=http, by_url=by_url, progress=progress
        )
        keep = config.sheets_max if config.sheets is not None else 0
        street, products = answer(local, photos, queries, keep_crops=keep)
        shop_counts = Counter(
            known.name for item in indexed if (known := garment_class(item.article_type))
        )
        compared = {}
        for name, chosen in variants.items():
            progress(f"variant {name}: {config.variants[name]}")
            other = embedded_settings(chosen, data_dir)
            street_v, products_v = answer(other, photos, queries)
            compared[name] = {
                "settings": config.variants[name],
                "street": street_figures([a.score for a in street_v if a.score], shop_counts),
                "products": product_figures(products_v),
            }

        if config.sheets is not None:
            from lab.evaluate.sheets import write_sheets

            written = write_sheets(
                config.sheets,
                street,
                products,
                by_url,
                config.sheets_max,
                catalog_masks=not local.crops.detect,
            )
            progress(f"sheets: {written} in {config.sheets}")

        model_version = next((a.response.model_version for a in [*street, *products]), None)
    return {
        "config": {
            "catalog": str(config.catalog),
            "street": str(config.street),
            "holdout": config.holdout,
            "seed": config.seed,
            "limit": config.limit,
            "photos": config.photos,
            "max_products": config.max_products,
            "k": TOP_K,
            "min_iou": 0.5,
            "hit_min_same": MIN_SAME,
            "model_version": model_version,
            "detector": local.detector.model or "shipped default",
            "classifier": local.embedder.classifier,
        },
        "ingest": ingest,
        "street": {
            **street_figures([a.score for a in street if a.score], shop_counts),
            "colour_column": street_colour_column(config.street),
            **_timing(street),
        },
        "products": {**product_figures(products), **_timing(products)},
        **({"variants": compared} if compared else {}),
        "seconds": round(time.perf_counter() - started, 1),
    }


def _answer_all(
    settings: Settings,
    photos: Sequence[StreetPhoto],
    queries: Sequence[CatalogItem],
    *,
    catalog: Catalog,
    index: Any,
    http: Any,
    by_url: dict[str, CatalogItem],
    progress: Progress,
    keep_crops: int = 0,
) -> tuple[list[Answer], list[Answer]]:
    """Every street and product photo answered by the recommend pipeline as the gateway wires
    it in process with ``settings``, and scored; the first ``keep_crops`` of each kind keep
    their garment crops (masks, named colours) for the contact sheets."""
    from services.gateway.service import Timings

    with gateway_pipeline(settings, catalog, index, http) as pipeline:
        params = RecommendParams(k=TOP_K)

        def answer(path: Path, truth: tuple[tuple[str, Box], ...], keep: bool) -> Answer:
            data = path.read_bytes()
            began = time.perf_counter()
            response = pipeline.from_bytes(data, params)
            wall = (time.perf_counter() - began) * 1000
            result = Answer(path, truth, response, round(wall, 1))
            if keep:  # cut again, untimed: the same detector on the same bytes cuts the same
                result.crops = tuple(pipeline.crops(data, Timings()))
            return result

        street: list[Answer] = []
        meter = _Meter("street photos", len(photos), progress)
        for photo in photos:
            result = answer(photo.path, photo.truth, len(street) < keep_crops)
            result.score = score_photo(
                photo.truth, [_group_answer(g) for g in result.response.groups]
            )
            street.append(result)
            meter.tick(len(street))

        products: list[Answer] = []
        meter = _Meter("product photos", len(queries), progress)
        for item in queries:
            result = answer(item.path, (), len(products) < keep_crops)
            result.extra = _product_score(item, _main_group(result.response), by_url)
            result.extra["own_first"] = _own_first(item, result.response)
            products.append(result)
            meter.tick(len(products))
    return street, products


def said_colour(group: Group | None) -> str | None:
    """The colour an answer group names for its garment (``None``: no group, or no colour)."""
    return group.colour.name if group is not None and group.colour is not None else None


def _product_score(
    item: CatalogItem, group: Group | None, by_url: dict[str, CatalogItem]
) -> dict[str, Any]:
    """How many of a product photo's top 10 share its type, class, parent, type + colour (the
    exact ``baseColour`` label, and the shopper colour name it reads as); the colour name alone;
    the colour the answer named for the photo's garment and whether it is the label's."""
    recs = group.recommendations[:TOP_K] if group else []
    found = [by_url.get(r.url) for r in recs]
    own = garment_class(item.article_type)
    name = item.colour_name
    said = said_colour(group)
    same_name = [f is not None and name is not None and f.colour_name == name for f in found]
    return {
        "parent": parent(own),
        "article_type": item.article_type,
        "colour": name,
        "products": len(recs),
        "flagged": group is not None and group.notice is not None,
        "same_type": sum(f is not None and f.article_type == item.article_type for f in found),
        "same_class": sum(
            f is not None and own is not None and garment_class(f.article_type) == own
            for f in found
        ),
        "same_parent": sum(
            f is not None and own is not None and parent(f.article_type) == own.parent
            for f in found
        ),
        "same_type_colour": sum(
            f is not None and f.article_type == item.article_type and f.colour == item.colour
            for f in found
        ),
        "same_type_colour_name": None
        if name is None
        else sum(
            same and f is not None and f.article_type == item.article_type
            for f, same in zip(found, same_name, strict=True)
        ),
        "same_colour_name": None if name is None else sum(same_name),
        "said_colour": said,
        "said_colour_right": None if said is None or name is None else said == name,
    }
