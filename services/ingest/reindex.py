"""``lookalike reindex``: embed the catalog with another model into a new collection, then
switch the alias to it; searches keep using the old collection until the switch (no downtime).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING

from services.ingest.indexing import ensure_collection
from shared.db import Catalog
from shared.db.models import utcnow
from shared.index_layout import ALIAS, live_collection
from shared.reindex import ReindexProgress, ReindexRequest, ReindexRunningError

if TYPE_CHECKING:
    from services.embedder.provider import ModelSpec
    from services.ingest.pipeline import IngestPipeline

__all__ = ["MAX_FAILURES", "ReindexJobs", "reindex", "requested_spec"]

log = logging.getLogger(__name__)

MAX_FAILURES = 20
"""Failed images listed by name in a report (the count has them all)."""


def _count_needing(catalog: Catalog, model_version_id: int, since: datetime | None) -> int:
    total, after = 0, 0
    while ids := catalog.images_without_crops_of(
        model_version_id, embedded_since=since, after_id=after, limit=10_000
    ):
        total += len(ids)
        after = ids[-1]
    return total


def reindex(
    pipeline: IngestPipeline,
    spec: ModelSpec,
    *,
    progress: bool = True,
    settle_s: float = 5.0,
    drop_previous: bool = False,
    everything: bool = False,
    report: ReindexProgress | None = None,
) -> ReindexProgress:
    """Embed every done image with ``spec``'s model into its own collection, then switch the
    alias and make the model the active one; queries use the old collection until then.

    Resumable: it embeds only images that have no crop of this model version yet (so a second
    run continues where an interrupted one stopped); ``everything`` re-embeds every image (the
    same model into a lost or damaged collection). After the switch it waits ``settle_s``
    (workers pick up the new model at their next task) and embeds the images that workers
    finished with the old model in the meantime. ``report`` is updated as it goes (another
    thread may read it).
    """
    from tqdm import tqdm

    started = time.perf_counter()
    report = report or ReindexProgress()
    report.started_at = report.started_at or utcnow()
    since = utcnow() if everything else None
    catalog, index = pipeline.catalog, pipeline.index
    model = pipeline.models.load(spec)
    info = model.info
    version_id = pipeline.models.register(model, spec, activate=False)
    previous = live_collection(index)
    target = ensure_collection(index, info.version, info.dim)
    report.model_version, report.collection, report.previous = info.version, target, previous
    total = report.total = _count_needing(catalog, version_id, since)
    report.phase = "embedding"
    log.info(
        "reindex: %d images into %s with %s (live collection: %s)",
        total,
        target,
        info.version,
        previous,
    )
    with tqdm(total=total, unit="img", disable=not progress, desc="reindex") as bar:

        def run_pass() -> int:
            after, handled = 0, 0
            batch = pipeline.batch_size
            while ids := catalog.images_without_crops_of(
                version_id, embedded_since=since, after_id=after, limit=batch
            ):
                after = ids[-1]
                outcome = pipeline.reembed(ids, model, target)
                report.embedded += len(outcome.done)
                report.failed += len(outcome.failed)
                report.skipped += len(outcome.retry)
                failures = [f"{i}: {reason}" for i, reason in outcome.failed.items()]
                report.failures += failures[: MAX_FAILURES - len(report.failures)]
                handled += len(outcome.done) + len(outcome.failed)
                bar.update(len(ids))
            report.passes += 1
            return handled

        # Catch-up passes pick up images that workers finished meanwhile.
        while run_pass() and report.passes < 3:
            pass
        report.phase = "switching"
        index.optimize(target)  # the new collection answers at full speed from the switch on
        index.set_alias(ALIAS, target)
        pipeline.models.register(model, spec, activate=True)
        log.info("alias %s -> %s; %s is the active model", ALIAS, target, info.version)
        report.phase = "catching up"
        if settle_s > 0:
            time.sleep(settle_s)
        late = _count_needing(catalog, version_id, since)
        bar.total = bar.n + late
        report.total += late
        run_pass()
    if drop_previous and previous is not None and previous != target:
        index.drop_collection(previous)
        log.info("dropped the previous collection %s", previous)
    report.seconds = round(time.perf_counter() - started, 2)
    report.phase, report.state = "done", "done"
    return report


def requested_spec(pipeline: IngestPipeline, request: ReindexRequest) -> ModelSpec:
    """The model a reindex request names, or the pipeline's active one."""
    from services.embedder.provider import ModelSpec

    if request.model is None:
        return pipeline.models.active_spec()[0]
    return ModelSpec.parse(
        request.model,
        weights=request.weights,
        runtime=request.runtime,
        device=request.device,
        licence=request.licence,
    )


class ReindexJobs:
    """Reindexes of the process that owns the index (``lookalike run``), one at a time, each
    in a background thread beside ingest and search: the ``app.state.reindex`` runner of
    :mod:`shared.reindex`."""

    def __init__(self, pipeline: IngestPipeline) -> None:
        self.pipeline = pipeline
        self._lock = threading.Lock()
        self._current: ReindexProgress | None = None
        self._thread: threading.Thread | None = None

    def start(self, request: ReindexRequest) -> ReindexProgress:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                raise ReindexRunningError(
                    f"a reindex is running (since {self._started()}): follow it with "
                    "GET /admin/reindex"
                )
            spec = requested_spec(self.pipeline, request)
            report = ReindexProgress(started_at=utcnow())
            self._current = report
            self._thread = threading.Thread(
                target=self._run, args=(spec, request, report), name="reindex", daemon=True
            )
            self._thread.start()
            return report.model_copy(deep=True)

    def _started(self) -> str:
        started = self._current.started_at if self._current else None
        return started.isoformat(timespec="seconds") if started else "now"

    def _run(self, spec: ModelSpec, request: ReindexRequest, report: ReindexProgress) -> None:
        began = time.perf_counter()
        try:
            reindex(
                self.pipeline,
                spec,
                progress=False,
                settle_s=request.settle_s,
                drop_previous=request.drop_old,
                everything=request.everything,
                report=report,
            )
        except Exception as exc:  # whatever stops it, the report must end (not stay running)
            log.exception("reindex failed")
            report.error = f"{exc.__class__.__name__}: {exc}"
            report.state = "failed"
            report.seconds = round(time.perf_counter() - began, 2)

    def progress(self) -> ReindexProgress | None:
        with self._lock:
            return self._current.model_copy(deep=True) if self._current else None

    def wait(self, timeout_s: float | None = None) -> ReindexProgress | None:
        """The report once the running reindex (if any) ended, or as it is at the timeout."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
        return self.progress()
