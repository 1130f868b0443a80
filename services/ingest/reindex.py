"""``lookalike reindex``: embed the catalog with another model into a new collection, then
switch the alias to it; searches keep using the old collection until the switch (no downtime).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from services.ingest.indexing import ensure_collection
from shared.db import Catalog
from shared.db.models import utcnow
from shared.index_layout import ALIAS, live_collection

if TYPE_CHECKING:
    from services.embedder.provider import ModelSpec
    from services.ingest.pipeline import IngestPipeline

__all__ = ["ReindexReport", "reindex"]

log = logging.getLogger(__name__)


@dataclass
class ReindexReport:
    model_version: str
    collection: str
    previous: str | None
    embedded: int = 0
    failed: int = 0
    skipped: int = 0
    passes: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)


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
) -> ReindexReport:
    """Embed every done image with ``spec``'s model into its own collection, then switch the
    alias and make the model the active one; queries use the old collection until then.

    Resumable: it embeds only images that have no crop of this model version yet (so a second
    run continues where an interrupted one stopped); ``everything`` re-embeds every image (the
    same model into a lost or damaged collection). After the switch it waits ``settle_s``
    (workers pick up the new model at their next task) and embeds the images that workers
    finished with the old model in the meantime.
    """
    from tqdm import tqdm

    started = time.perf_counter()
    since = utcnow() if everything else None
    catalog, index = pipeline.catalog, pipeline.index
    model = pipeline.models.load(spec)
    info = model.info
    version_id = pipeline.models.register(model, spec, activate=False)
    previous = live_collection(index)
    target = ensure_collection(index, info.version, info.dim)
    report = ReindexReport(info.version, target, previous)
    total = _count_needing(catalog, version_id, since)
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
                report.failures += [f"{i}: {reason}" for i, reason in outcome.failed.items()]
                handled += len(outcome.done) + len(outcome.failed)
                bar.update(len(ids))
            report.passes += 1
            return handled

        # Catch-up passes pick up images that workers finished meanwhile.
        while run_pass() and report.passes < 3:
            pass
        index.optimize(target)  # the new collection answers at full speed from the switch on
        index.set_alias(ALIAS, target)
        pipeline.models.register(model, spec, activate=True)
        log.info("alias %s -> %s; %s is the active model", ALIAS, target, info.version)
        if settle_s > 0:
            time.sleep(settle_s)
        bar.total = bar.n + _count_needing(catalog, version_id, since)
        run_pass()
    if drop_previous and previous is not None and previous != target:
        index.drop_collection(previous)
        log.info("dropped the previous collection %s", previous)
    report.seconds = round(time.perf_counter() - started, 2)
    return report
