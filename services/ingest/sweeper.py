"""Recovery: the catalog DB is the source of truth, so the queue can always be rebuilt from it.

Each sweep

1. returns claims not renewed for ``settings.ingest.claim_lease_s`` (a worker died holding
   them: live workers renew theirs every third of that) to ``pending`` and enqueues them at
   once. Between sweeps :meth:`Sweeper.run` repeats this step alone every third of the lease,
   so a dead worker's images are back in the queue about a lease and a third after it died;
2. when the ingest queue is empty, enqueues ``pending`` images nobody touched for
   ``pending_after_s`` (their message was lost: Redis restarted, a producer could not reach
   the broker). While the queue still holds messages it waits, so a long backlog is never
   enqueued twice; a retry waiting out its backoff stays within ``pending_after_s``;
3. after a model switch (the alias points at the active model's collection), re-ingests done
   images that a worker still embedded with the previous model;
4. with an index at hand, reconciles it with the catalog in case a sync message was lost: on
   its first sweep every inactive product gets ``active=0`` and every inactive image's points
   are deleted; later sweeps sync the products and images changed since the previous one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from kombu.exceptions import KombuError
from sqlalchemy.exc import SQLAlchemyError

from services.ingest import indexing
from shared import index_layout
from shared.db import Catalog
from shared.db.models import utcnow
from shared.errors import LookalikeError
from shared.queue import enqueue_images, queue_depth
from shared.settings import Settings
from shared.vectors import VectorIndex

__all__ = [
    "PENDING_AFTER_S",
    "SWEEP_EVERY_S",
    "SweepReport",
    "Sweeper",
    "SweeperThread",
]

log = logging.getLogger(__name__)

SWEEP_EVERY_S = 60.0
PENDING_AFTER_S = 120.0
"""Longer than the longest retry backoff (60 s), so images waiting for a retry are left alone."""
MAX_ENQUEUE_PER_SWEEP = 20_000
RECONCILE_MARGIN = timedelta(seconds=5)


@dataclass
class SweepReport:
    requeued_stale: int = 0
    enqueued_pending: int = 0
    stragglers: int = 0
    queue_depth: int | None = None
    products_reconciled: int = 0
    images_reconciled: int = 0
    texts_backfilled: int = 0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        return {
            "requeued_stale": self.requeued_stale,
            "enqueued_pending": self.enqueued_pending,
            "stragglers": self.stragglers,
            "queue_depth": self.queue_depth,
            "products_reconciled": self.products_reconciled,
            "images_reconciled": self.images_reconciled,
            "texts_backfilled": self.texts_backfilled,
            "errors": self.errors,
        }


class Sweeper:
    """One sweep at a time (:meth:`sweep`); keeps the reconcile watermark between sweeps."""

    def __init__(
        self,
        catalog: Catalog,
        settings: Settings,
        *,
        index: VectorIndex | None = None,
        pending_after_s: float = PENDING_AFTER_S,
    ) -> None:
        self.catalog = catalog
        self.settings = settings
        self.index = index
        self.pending_after_s = pending_after_s
        self._reconciled_at: datetime | None = None
        self._texts_from: int | None = 0 if settings.ingest.index_text else None

    def requeue_dead(self) -> int:
        """Step 1 alone: claims whose lease ran out go back to ``pending`` and the queue."""
        lease = timedelta(seconds=self.settings.ingest.claim_lease_s)
        stale = self.catalog.requeue_stale(older_than=lease)
        if stale:
            log.info("sweep: %d claims of dead workers returned to pending", len(stale))
            enqueue_images(stale, self.settings)
        return len(stale)

    def run(
        self, stop: threading.Event, every_s: float, report: Callable[[SweepReport], None]
    ) -> None:
        """Sweep now and every ``every_s`` seconds, checking leases in between, until ``stop``
        is set; each sweep's report goes to ``report``."""
        check_every_s = min(every_s, self.settings.ingest.claim_lease_s / 3)
        next_sweep = 0.0
        while True:
            try:
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + every_s
                    report(self.sweep())
                else:
                    self.requeue_dead()
            except (KombuError, OSError, LookalikeError, SQLAlchemyError) as exc:
                log.warning("sweep failed (%s: %s); trying again later", type(exc).__name__, exc)
            if stop.wait(check_every_s):
                return

    def sweep(self) -> SweepReport:
        report = SweepReport()
        try:
            report.requeued_stale = self.requeue_dead()
        except SQLAlchemyError as exc:
            report.errors.append(f"catalog: {exc.__class__.__name__}")
            log.warning("sweep: catalog unavailable (%s)", exc)
            return report
        report.queue_depth = queue_depth(self.settings.broker_url)
        try:
            if report.queue_depth == 0:
                self._enqueue_lost(report)
            if self.index is not None:
                self._reconcile(report)
                self._backfill_texts(report)
        except SQLAlchemyError as exc:
            report.errors.append(f"catalog: {exc.__class__.__name__}")
            log.warning("sweep: catalog unavailable (%s)", exc)
        return report

    def _backfill_texts(self, report: SweepReport) -> None:
        """Text points for products indexed without one (an index made before text indexing):
        the first sweeps of each index owner walk the catalog, 1,000 products a sweep."""
        if self._texts_from is None:
            return
        assert self.index is not None
        written, self._texts_from = indexing.backfill_texts(
            self.index, self.catalog, offset=self._texts_from
        )
        report.texts_backfilled += written
        if written:
            log.info("sweep: wrote %d missing product text points", written)

    def _enqueue_lost(self, report: SweepReport) -> None:
        lost = self._untouched_pending()
        stragglers = self._stragglers()
        if (lost or stragglers) and enqueue_images(lost + stragglers, self.settings):
            report.enqueued_pending, report.stragglers = len(lost), len(stragglers)
            if lost:
                log.info("sweep: enqueued %d pending images that had no message", len(lost))

    def _untouched_pending(self) -> list[int]:
        return self.catalog.untouched_pending(
            older_than=timedelta(seconds=self.pending_after_s), limit=MAX_ENQUEUE_PER_SWEEP
        )

    def _stragglers(self) -> list[int]:
        """Done images still embedded by a previous model after the alias moved to the active
        one: back to pending (they leave the old collection behind, not the live one)."""
        if self.index is None:
            return []
        active = self.catalog.active_model_version("embedder")
        if active is None:
            return []
        live = index_layout.live_collection(self.index)
        if live != index_layout.collection_name(active.name):
            return []  # a reindex is filling the new collection, or none was switched yet
        ids = self.catalog.images_without_crops_of(active.id, limit=MAX_ENQUEUE_PER_SWEEP)
        if not ids:
            return []
        self.catalog.requeue_done(ids)
        log.info("sweep: %d images embedded by an older model go back to pending", len(ids))
        return ids

    def _reconcile(self, report: SweepReport) -> None:
        assert self.index is not None
        started = utcnow()
        since = None if self._reconciled_at is None else self._reconciled_at - RECONCILE_MARGIN
        products, images = self.catalog.changed_since(since)
        if products and since is None:
            indexing.deactivate_products(self.index, products)
        elif products:
            indexing.sync_products(self.index, self.catalog, products)
        if images:
            indexing.remove_images(self.index, images)
        report.products_reconciled, report.images_reconciled = len(products), len(images)
        self._reconciled_at = started


class SweeperThread:
    """Runs :meth:`Sweeper.sweep` every ``every_s`` seconds in a daemon thread."""

    def __init__(self, sweeper: Sweeper, every_s: float = SWEEP_EVERY_S) -> None:
        self.sweeper = sweeper
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ingest-sweeper", daemon=True)

    def start(self) -> SweeperThread:
        self._thread.start()
        return self

    def _run(self) -> None:
        if self._stop.wait(self.every_s):  # the first sweep one interval after start
            return
        self.sweeper.run(self._stop, self.every_s, self._swept)

    def _swept(self, report: SweepReport) -> None:
        log.debug("sweep: %s", report.summary())
        if self.sweeper.index is not None:
            self.sweeper.index.flush()
            self.sweeper.index.maintain()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)
