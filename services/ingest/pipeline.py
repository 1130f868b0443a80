"""The ingest pipeline: pending product image -> garment crops -> searchable points.

This is the logic behind the Celery tasks (:mod:`services.ingest.tasks`, thin wrappers) and
``lookalike reindex``; it imports neither Celery nor FastAPI. For a chunk of image ids:

1. claim them in the catalog (``pending -> processing``; ids that are not pending are skipped,
   so a duplicate or redelivered message is harmless);
2. download each image with the safe fetcher (per-host rate limit, the source's
   ``allow_private_hosts`` or ``allow_private_addresses``), check and decode it with pixel
   limits;
3. find garment crops with a :class:`~shared.detection.GarmentDetector` (in process or the
   detector service; the whole image when nothing is found); in a photo of a model wearing
   several garments, the boxes of the product's own kind of garment (:mod:`.garments`);
4. embed the crops in batches of ``settings.ingest.batch_size``, compute each crop's colour
   descriptor and classify it with the query's garment classifier (its class is the product's
   shop category mapped to the taxonomy, else its own vote: searches are scoped by it);
5. replace the images' points in the model version's collection and record the crops
   (``done``, one transaction per chunk), or record a failure with its reason (``failed``, or
   back to ``pending`` for a transient error that the task retries with backoff).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx
import numpy as np
from PIL import Image
from sqlalchemy.exc import SQLAlchemyError

from services.embedder.provider import ModelProvider
from services.ingest import indexing
from services.ingest.garments import CategoryLabels, CropVote, crop_votes
from shared import index_holder, index_layout
from shared.crops import GarmentCrop, garment_crops
from shared.db import Catalog
from shared.db.models import ImageState
from shared.db.schemas import (
    ClaimedImage,
    CropIn,
    ImageResult,
    ProductOut,
    SourceOut,
)
from shared.detection import Detection, GarmentDetector, WholeImageDetector
from shared.download import DownloadError, fetch_image, make_client
from shared.errors import NotFoundError
from shared.images import DEFAULT_MAX_PIXELS, ImageError, content_hash, load_work_image
from shared.index_layout import COLOUR_VECTOR, SHAPE_VECTORS
from shared.ratelimit import MemoryRateLimiter, RateLimiter
from shared.ratelimit import make_rate_limiter as shared_rate_limiter
from shared.settings import Settings
from shared.taxonomy import parent
from shared.vectors import Point, VectorIndex, open_index
from shared.words import sentence_encoder

if TYPE_CHECKING:
    from services.embedder.inference import Embedder

__all__ = [
    "IngestPipeline",
    "IngestReport",
    "IngestRuntime",
    "SourcePolicy",
    "make_rate_limiter",
]

log = logging.getLogger(__name__)

DOWNLOAD_THREADS = 8
WAVE = 8
"""Images per model call within a chunk: the first wave embeds while the rest download."""
SOURCES_TTL_S = 60.0
INDEX_WAIT_S = 15.0
"""How long a starting worker waits for the embedded index while a short-lived command
(``lookalike sweep --once``, ``ingest-status``) holds it, before it gives up and says why."""


# ------------------------------------------------------------------------------ rate limits


@dataclass(frozen=True)
class SourcePolicy:
    """How a source's images may be fetched, from its ``sources.config``.

    Image downloads follow the crawl's politeness: at most one request per
    ``politeness.download_delay`` seconds per host, in bursts of ``politeness.concurrency``.
    The defaults mirror the scraper's (0.25 s and 4; no delay for the generated demo shop).
    """

    name: str | None = None
    allow_private: bool = False
    private_hosts: frozenset[str] = frozenset()
    """The source's ``allow_private_hosts``: exactly these ``host:port`` may be private."""
    rate_per_s: float = 4.0
    burst: int = 4

    @classmethod
    def of(cls, source: SourceOut | None) -> SourcePolicy:
        if source is None:
            return cls()
        config = source.config or {}
        politeness = config.get("politeness") or {}
        demo = bool(config.get("demo"))
        delay = float(politeness.get("download_delay", 0.0 if demo else 0.25))
        burst = int(politeness.get("concurrency", 8 if demo else 4))
        return cls(
            name=source.name,
            allow_private=bool(config.get("allow_private_addresses", False)),
            private_hosts=frozenset(config.get("allow_private_hosts") or ()),
            rate_per_s=0.0 if delay <= 0 else 1.0 / delay,
            burst=max(1, burst),
        )


def make_rate_limiter(settings: Settings) -> RateLimiter:
    """Budgets per host in Redis when the broker is Redis (one budget for all workers), else
    per process (the embedded mode runs a single consumer)."""
    broker = settings.broker_url
    redis_url = broker if broker.startswith(("redis://", "rediss://", "unix://")) else None
    return shared_rate_limiter(redis_url, prefix="lookalike:ratelimit:", timeout_s=2.0)


# ---------------------------------------------------------------------------------- pipeline


_Job = tuple[ClaimedImage, ProductOut, SourcePolicy]
"""An image to ingest, its product and its source's download policy."""


@dataclass
class _Decoded:
    claim: ClaimedImage
    product: ProductOut
    policy: SourcePolicy
    image: Image.Image
    sha256: str
    n_bytes: int
    width: int
    height: int


@dataclass(frozen=True)
class _Crop:
    """A garment crop of an image being ingested."""

    image_id: int
    garment: GarmentCrop


@dataclass
class IngestReport:
    """What happened to a chunk of image ids."""

    done: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    retry: dict[int, str] = field(default_factory=dict)
    skipped: list[int] = field(default_factory=list)
    points: int = 0

    def summary(self) -> dict[str, int]:
        return {
            "done": len(self.done),
            "failed": len(self.failed),
            "retry": len(self.retry),
            "skipped": len(self.skipped),
            "points": self.points,
        }


def _pid_alive(pid: int) -> bool:
    """Whether a process of this host (pid namespace) still runs; zombies count as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


class ClaimHeartbeat:
    """While a chunk runs, renew its claims every third of ``ingest.claim_lease_s`` in a
    background thread: a worker that dies stops renewing, and the sweeper hands its images
    to others one lease later (not ``stale_claim_after_s``); a live one is never robbed."""

    def __init__(
        self, catalog: Catalog, worker: str, image_ids: Sequence[int], settings: Settings
    ) -> None:
        self.catalog = catalog
        self.worker = worker
        self.image_ids = list(image_ids)
        self.every_s = settings.ingest.claim_lease_s / 3
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="claim-heartbeat", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.catalog.renew_claims(self.worker, self.image_ids)
            except SQLAlchemyError as exc:
                log.warning("could not renew %d claims (%s)", len(self.image_ids), exc)

    def __enter__(self) -> ClaimHeartbeat:
        if self.image_ids:
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


class IngestPipeline:
    """Claim, download, crop, embed and index images (one chunk per call)."""

    def __init__(
        self,
        catalog: Catalog,
        index: VectorIndex,
        models: ModelProvider,
        *,
        settings: Settings,
        detector: GarmentDetector | None = None,
        limiter: RateLimiter | None = None,
        client: httpx.Client | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.catalog = catalog
        self.index = index
        self.models = models
        self.settings = settings
        self.detector: GarmentDetector = detector or WholeImageDetector()
        self.limiter: RateLimiter = limiter or MemoryRateLimiter()
        self.client = client or make_client(timeout_s=settings.ingest.download_timeout_s)
        self.host = socket.gethostname()
        self.worker_id = worker_id or f"{self.host}:{os.getpid()}"
        self._pool = ThreadPoolExecutor(DOWNLOAD_THREADS, thread_name_prefix="ingest-io")
        self._sources: dict[int, SourceOut] = {}
        self._sources_at = 0.0
        self._ensured: set[str] = set()
        self.labels = CategoryLabels(catalog)

    @property
    def batch_size(self) -> int:
        return self.settings.ingest.batch_size

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.client.close()

    # -- live ingest --------------------------------------------------------------------

    def process(self, image_ids: Iterable[int]) -> IngestReport:
        """Ingest the pending images among ``image_ids`` (others are skipped)."""
        ids = sorted({int(i) for i in image_ids})
        if not ids:
            return IngestReport()
        model = self.models.indexing()
        collection = self._collection(model)
        claimed = self.catalog.claim_images(self.worker_id, limit=len(ids), image_ids=ids)
        if len(claimed) < len(ids):
            claimed += self._reclaim_orphans(set(ids) - {c.id for c in claimed})
        report = IngestReport(skipped=sorted(set(ids) - {c.id for c in claimed}))
        max_attempts = self.settings.ingest.max_attempts
        work: list[ClaimedImage] = []
        for claim in claimed:
            if claim.attempts > max_attempts:
                reason = (
                    f"gave up: claimed {claim.attempts} times without finishing "
                    "(the worker stopped each time)"
                )
                self.catalog.record_image_failed(claim.id, reason, retryable=False)
                report.failed[claim.id] = reason
            else:
                work.append(claim)
        if report.failed:
            indexing.remove_images(self.index, sorted(report.failed))
        finished = False
        try:
            with ClaimHeartbeat(self.catalog, self.worker_id, [c.id for c in work], self.settings):
                outcome = self._ingest(work, model, collection, claimed=True)
            finished = True
        finally:
            if not finished:
                self._release(work)
        report.done, report.points = outcome.done, outcome.points
        report.failed.update(outcome.failed)
        report.retry = outcome.retry
        return report

    def _collection(self, model: Embedder) -> str:
        """The model's collection, created (and aliased on a fresh index) once per process."""
        name = index_layout.collection_name(model.info.version)
        if name not in self._ensured:
            indexing.ensure_collection(self.index, model.info.version, model.info.dim)
            self._ensured.add(name)
        return name

    def reembed(self, image_ids: Sequence[int], model: Embedder, collection: str) -> IngestReport:
        """Embed done images again with ``model`` into ``collection`` (reindex); no claims.

        Permanent failures (the image is gone now) are recorded and leave the index; transient
        ones are left for a later pass."""
        images = self.catalog.images_as_claims(image_ids)
        return self._ingest(images, model, collection, claimed=False)

    def _reclaim_orphans(self, ids: set[int]) -> list[ClaimedImage]:
        """Take back images claimed by a process of this host that has died (a killed pool
        child whose message came back): no need to wait for the sweeper."""
        dead: dict[int, str] = {}
        for image_id, owner in self.catalog.claims_of(sorted(ids)).items():
            host, _, pid = (owner or "").rpartition(":")
            mine = host == self.host and pid.isdigit() and int(pid) != os.getpid()
            if owner and mine and not _pid_alive(int(pid)):
                dead[image_id] = owner
        if not dead:
            return []
        self.catalog.release_claims(dead)
        log.info("took back %d images claimed by dead processes of this host", len(dead))
        return self.catalog.claim_images(self.worker_id, limit=len(dead), image_ids=sorted(dead))

    def _release(self, claims: Sequence[ClaimedImage]) -> None:
        """Return claimed images to ``pending`` after an error that stopped the chunk."""
        for claim in claims:
            try:
                self.catalog.record_image_failed(
                    claim.id,
                    "ingest interrupted; will retry",
                    retryable=True,
                    max_attempts=self.settings.ingest.max_attempts,
                )
            except (SQLAlchemyError, NotFoundError) as exc:
                log.warning("could not release image %d (%s); the sweeper will", claim.id, exc)

    # -- the stages ---------------------------------------------------------------------

    def _ingest(
        self,
        images: Sequence[ClaimedImage],
        model: Embedder,
        collection: str,
        *,
        claimed: bool,
    ) -> IngestReport:
        """Download, crop and embed ``images`` into ``collection``, then record the outcome."""
        report = IngestReport()
        if not images:
            return report
        jobs = self._jobs(images, report)
        decoded, crops, embeddings, probabilities = self._embed_as_they_arrive(jobs, model, report)
        votes = (
            crop_votes(model.info.classes, probabilities)
            if probabilities is not None
            else self._classify(crops, model)
        )
        version = model.info.version
        points, by_image = self._points(decoded, crops, embeddings, votes, version)
        if decoded:
            self._upsert(collection, points, sorted(by_image), version)
        self._record(decoded, by_image, version, report)
        self._record_failures(report, claimed=claimed)
        if self.settings.ingest.index_text:
            self._index_texts(decoded, by_image, report)
        return report

    def _index_texts(
        self,
        decoded: list[_Decoded],
        by_image: dict[int, list[tuple[_Crop, CropVote, str]]],
        report: IngestReport,
    ) -> None:
        """The text point of each product with an image done in this chunk, under the garment
        class of its first crop (layout: :mod:`shared.index_layout`)."""
        done = set(report.done)
        items: dict[int, indexing.ProductText] = {}
        for item in decoded:
            if item.claim.id not in done or item.product.id in items:
                continue
            crops = by_image[item.claim.id]
            garment = self.labels.label(item.product, crops[0][1]) if crops else None
            items[item.product.id] = indexing.ProductText(
                item.product, item.policy.name, garment, item.claim.url
            )
        indexing.index_texts(self.index, sentence_encoder(), list(items.values()))

    def _jobs(self, images: Sequence[ClaimedImage], report: IngestReport) -> list[_Job]:
        """Each image with its product and its source's download policy; an image whose
        product is gone fails here."""
        products = self.catalog.get_products(sorted({i.product_id for i in images}))
        jobs = []
        for image in images:
            product = products.get(image.product_id)
            if product is None:
                report.failed[image.id] = "the product no longer exists"
                continue
            jobs.append((image, product, SourcePolicy.of(self._source(product.source_id))))
        return jobs

    def _embed_as_they_arrive(
        self, jobs: list[_Job], model: Embedder, report: IngestReport
    ) -> tuple[list[_Decoded], list[_Crop], np.ndarray, np.ndarray | None]:
        """Every download starts now and the model embeds wave after wave as the images arrive:
        downloads, detection, crops and colour run in the embedder's prefetch thread while the
        model runs the previous wave (its throughput is flat from batches of 8 on). A model
        with a classifier head classifies in the same pass (its class probabilities come
        back; else ``None``)."""
        fetches = [(job, self._pool.submit(self._fetch, job)) for job in jobs]
        decoded: list[_Decoded] = []
        crops: list[_Crop] = []

        def waves() -> Iterator[list[Image.Image]]:
            for start in range(0, len(jobs), WAVE):
                arrived: list[_Decoded] = []
                for job, fetch in fetches[start : start + WAVE]:
                    fetched = fetch.result()
                    if isinstance(fetched, _Decoded):
                        arrived.append(fetched)
                    else:
                        reason, retryable = fetched
                        (report.retry if retryable else report.failed)[job[0].id] = reason
                found = self._crops(arrived)
                decoded.extend(arrived)
                crops.extend(found)
                yield [crop.garment.picture for crop in found]

        empty = np.zeros((0, model.info.dim), np.float32)
        if not model.info.classes:
            return decoded, crops, np.concatenate([empty, *model.embed_stream(waves())]), None
        outputs = list(model.classify_stream(waves()))
        embeddings = np.concatenate([empty, *(embedding for embedding, _ in outputs)])
        probabilities = np.concatenate(
            [np.zeros((0, len(model.info.classes)), np.float32), *(p for _, p in outputs)]
        )
        return decoded, crops, embeddings, probabilities

    def _classify(self, crops: list[_Crop], model: Embedder) -> list[CropVote]:
        """The query's garment classifier, separate from ``model`` (which has no head), on
        every crop (no votes without a classifier)."""
        classifier = self.models.classifier(model)
        if classifier is None or not crops:
            return [CropVote(()) for _ in crops]
        _, probabilities = classifier.classify([crop.garment.picture for crop in crops])
        return crop_votes(classifier.info.classes, probabilities)

    def _points(
        self,
        decoded: list[_Decoded],
        crops: list[_Crop],
        embeddings: np.ndarray,
        votes: list[CropVote],
        version: str,
    ) -> tuple[list[Point], dict[int, list[tuple[_Crop, CropVote, str]]]]:
        """One index point per crop (layout: :mod:`shared.index_layout`), and each image's
        crops with their votes and point ids."""
        by_image: dict[int, list[tuple[_Crop, CropVote, str]]] = {d.claim.id: [] for d in decoded}
        points: list[Point] = []
        owners = {d.claim.id: d for d in decoded}
        for crop, vector, vote in zip(crops, embeddings, votes, strict=True):
            owner = owners[crop.image_id]
            pid = index_layout.point_id(owner.product.id, crop.image_id, crop.garment.box, version)
            by_image[crop.image_id].append((crop, vote, pid))
            garment = self.labels.label(owner.product, vote)
            embedding = vector.astype(np.float32).tolist()
            points.append(
                Point(
                    id=pid,
                    vectors={
                        **dict.fromkeys(SHAPE_VECTORS.values(), embedding),
                        COLOUR_VECTOR: crop.garment.colour.astype(np.float32).tolist(),
                    },
                    payload=index_layout.crop_payload(
                        owner.product,
                        image_id=crop.image_id,
                        image_url=owner.claim.url,
                        box=crop.garment.box,
                        category=crop.garment.category,
                        score=crop.garment.score,
                        model_version=version,
                        source=owner.policy.name,
                        garment=garment,
                        votes=vote.top,
                        colour=(crop.garment.colour_name, crop.garment.colour_p),
                    ),
                )
            )
        return points, by_image

    def _upsert(
        self, collection: str, points: list[Point], image_ids: list[int], version: str
    ) -> None:
        """Write the points; delete those an earlier run of this model made for boxes that are
        gone (the image changed), known from the recorded crops, so a first ingest deletes
        nothing."""
        self.index.upsert(collection, points)
        fresh = {point.id for point in points}
        stale = [p for p in self.catalog.crop_point_ids(image_ids, version) if p not in fresh]
        if stale:
            self.index.delete(collection, stale)

    def _record(
        self,
        decoded: list[_Decoded],
        by_image: dict[int, list[tuple[_Crop, CropVote, str]]],
        version: str,
        report: IngestReport,
    ) -> None:
        """Each embedded image done in the catalog, with its crops."""
        results = {
            item.claim.id: ImageResult(
                content_hash=item.sha256,
                width=item.width,
                height=item.height,
                n_bytes=item.n_bytes,
                crops=tuple(
                    CropIn(
                        box=crop.garment.box,
                        category=crop.garment.category,
                        score=crop.garment.score,
                        point_id=pid,
                        garment=vote.garment,
                        garment_p=vote.probability,
                    )
                    for crop, vote, pid in by_image[item.claim.id]
                ),
                model_version=version,
            )
            for item in decoded
        }
        gone = set(self.catalog.record_images_done(results))
        for image_id in results:
            if image_id in gone:
                report.failed[image_id] = "the image was deleted while it was processed"
            else:
                report.done.append(image_id)
                report.points += len(by_image[image_id])

    def _record_failures(self, report: IngestReport, *, claimed: bool) -> None:
        max_attempts = self.settings.ingest.max_attempts
        for image_id, reason in list(report.retry.items()):
            if not claimed:
                continue  # reindex: the image stays done; a later pass tries again
            state = self.catalog.record_image_failed(
                image_id, reason, retryable=True, max_attempts=max_attempts
            )
            if state is ImageState.FAILED:
                del report.retry[image_id]
                report.failed[image_id] = reason
        gone = []
        for image_id, reason in report.failed.items():
            with contextlib.suppress(NotFoundError):  # deleted with its product meanwhile
                self.catalog.record_image_failed(image_id, reason, retryable=False)
            gone.append(image_id)
        if gone:
            indexing.remove_images(self.index, gone)
        for image_id, reason in report.failed.items():
            log.info("image %d failed: %s", image_id, reason)

    def _source(self, source_id: int) -> SourceOut | None:
        now = time.monotonic()
        if source_id not in self._sources or now - self._sources_at > SOURCES_TTL_S:
            self._sources = {s.id: s for s in self.catalog.list_sources()}
            self._sources_at = now
        return self._sources.get(source_id)

    def _fetch(self, job: _Job) -> _Decoded | tuple[str, bool]:
        """Download and decode one image: the decoded image, or ``(reason, retryable)``."""
        claim, product, policy = job
        host = (urlsplit(claim.url).hostname or "").lower()
        self.limiter.acquire(host, policy.rate_per_s, policy.burst)
        max_bytes = self.settings.ingest.max_image_bytes
        try:
            downloaded = fetch_image(
                claim.url,
                client=self.client,
                allow_private=policy.allow_private,
                allow_hosts=policy.private_hosts,
                max_bytes=max_bytes,
            )
        except DownloadError as exc:
            return f"download failed: {exc.message}", exc.retryable
        data = downloaded.content
        try:
            image, (width, height) = load_work_image(
                data, max_bytes=max_bytes, max_pixels=DEFAULT_MAX_PIXELS
            )
        except ImageError as exc:
            return f"{exc.code}: {exc.message}", False
        return _Decoded(
            claim=claim,
            product=product,
            policy=policy,
            image=image,
            sha256=content_hash(data),
            n_bytes=len(data),
            width=width,
            height=height,
        )

    def _crops(self, decoded: Sequence[_Decoded]) -> list[_Crop]:
        """Garments from the detector, framed, cropped and described as a query's are
        (:func:`shared.crops.garment_crops`; on the calling thread: ingest calls this while
        the model runs)."""
        if not decoded:
            return []
        found = self.detector.detect([item.image for item in decoded])
        crops = self.settings.crops
        return [
            _Crop(item.claim.id, crop)
            for item, result in zip(decoded, found, strict=True)
            for crop in garment_crops(
                item.image,
                (item.width, item.height),
                result,
                detect=crops.detect,
                select=functools.partial(self._own_garments, item.product),
                name=f"image {item.claim.id}",
                remove_background=crops.remove_background,
            )
        ]

    def _own_garments(
        self, product: ProductOut, detections: Sequence[Detection]
    ) -> Sequence[Detection]:
        """The boxes of the product's own kind of garment (trousers worn with a T-shirt: the
        trousers), or every box when its kind is unknown or none of them is of that kind."""
        if len(detections) < 2:
            return detections
        garment = self.labels.product_class(product)
        if garment is None:
            return detections
        own = [d for d in detections if parent(d.category) == garment.parent]
        return own or detections


# ----------------------------------------------------------------------------------- runtime


def model_threads(settings: Settings) -> int:
    """Model threads per call for ingest workers: the cores shared among the tasks that run at
    once (prefork children set torch's count to it; the threads pool passes it to the models).
    With 2 tasks on 2 cores, two single-threaded calls side by side beat two 2-thread calls
    fighting over the cores (and over the decode threads): measured 63-67 vs 53-55 images/s
    end to end, bare model 68-80."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // settings.worker_concurrency)


@dataclass
class IngestRuntime:
    """Everything one ingest process holds: catalog, index, models, HTTP client, limiter."""

    settings: Settings
    catalog: Catalog
    index: VectorIndex
    pipeline: IngestPipeline
    owns_catalog: bool = True
    owns_index: bool = True

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        catalog: Catalog | None = None,
        index: VectorIndex | None = None,
        detector: GarmentDetector | None = None,
        threads: int | None = None,
        role: str = index_holder.WORKER,
    ) -> IngestRuntime:
        """Open what is not given (the embedded stack passes its own catalog and index).
        ``threads``: model threads per call (default: torch's), see :func:`model_threads`;
        ``role``: this process in the embedded index's holder record."""
        own_catalog = catalog is None
        own_index = index is None
        if index is None:  # first: a process turned away says so before loading anything
            index = open_index(
                settings.qdrant_url,
                settings.qdrant_path,
                settings.qdrant_api_key,
                wait_s=INDEX_WAIT_S,
                role=role,
            )
        if detector is None and settings.crops.detect:
            from services.detector.client import make_detector

            detector = make_detector(settings)
        catalog = catalog or Catalog.from_settings(settings)
        pipeline = IngestPipeline(
            catalog,
            index,
            ModelProvider(catalog, settings, threads=threads),
            settings=settings,
            detector=detector,
            limiter=make_rate_limiter(settings),
        )
        return cls(settings, catalog, index, pipeline, own_catalog, own_index)

    def warm(self) -> None:
        """Load the active model now (a worker process does this at start)."""
        try:
            self.pipeline.models.current()
        except SQLAlchemyError as exc:
            log.warning(
                "catalog unavailable at start (%s); the model loads with the first task", exc
            )

    def close(self) -> None:
        self.pipeline.close()
        self.pipeline.models.close()
        self.pipeline.limiter.close()
        if self.owns_index:
            self.index.close()
        if self.owns_catalog:
            self.catalog.dispose()
