"""``lookalike worker``, ``lookalike sweep``, ``lookalike reindex`` and ``lookalike
ingest-status``. Celery, torch and the index load inside the commands, so importing this
module stays cheap."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import click

from shared import index_holder
from shared.errors import LookalikeError
from shared.index_holder import Holder
from shared.reindex import ReindexProgress, ReindexRequest
from shared.settings import Settings, get_settings

log = logging.getLogger(__name__)


@click.command("worker")
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1),
    default=None,
    help="Tasks at once (LOOKALIKE_WORKER_CONCURRENCY, 2).",
)
@click.option(
    "--pool",
    type=click.Choice(["prefork", "threads", "solo"]),
    default=None,
    help="Celery pool (default: prefork with a Qdrant server, threads with the embedded "
    "index, which only one process may open).",
)
def worker_command(concurrency: int | None, pool: str | None) -> None:
    """Run a Celery ingest worker on the `ingest` and `index` queues."""
    from services.ingest.celery_app import QUEUES, configure
    from services.ingest.tasks import state
    from shared.vectors import IndexHeldError

    settings = get_settings()
    count = concurrency or settings.worker_concurrency
    embedded_index = settings.qdrant_url is None
    pool = pool or ("threads" if embedded_index else "prefork")
    if embedded_index and pool == "prefork" and count > 1:
        log.warning(
            "the embedded vector index can be opened by one process only: running 1 worker "
            "process (use --pool threads, or set QDRANT_URL for several processes)"
        )
        count = 1
    settings.ensure_dirs()
    app = configure(settings.model_copy(update={"worker_concurrency": count}))
    if pool != "prefork":
        try:
            state.get().warm()  # tasks run in this process: load the model before consuming
        except IndexHeldError as exc:  # the holder's /readyz learns that ingest is off
            index_holder.record_turned_away(exc.root, Holder.this_process(index_holder.WORKER))
            raise
    app.worker_main(
        [
            "worker",
            "--queues",
            ",".join(QUEUES),
            "--concurrency",
            str(count),
            "--pool",
            pool,
            "--loglevel",
            settings.log_level,
            "--without-gossip",
            "--without-mingle",
        ]
    )


def _open_index_for_cli(settings: Settings, *, required: bool) -> Any:
    """The configured index, or the :class:`~shared.vectors.IndexHeldError` that says who
    holds the embedded one when it is not ``required``."""
    from shared.vectors import IndexHeldError, open_index

    try:
        return open_index(settings.qdrant_url, settings.qdrant_path, settings.qdrant_api_key)
    except IndexHeldError as exc:
        if required:
            raise
        return exc


@click.command("sweep")
@click.option("--once", is_flag=True, help="Sweep once and exit (default: every --every s).")
@click.option("--every", default=60.0, show_default=True, help="Seconds between sweeps.")
@click.option(
    "--pending-after",
    default=120.0,
    show_default=True,
    help="Enqueue pending images untouched this long when the queue is empty.",
)
def sweep_command(once: bool, every: float, pending_after: float) -> None:
    """Return dead workers' claims to pending (checked every third of the claim lease) and
    re-enqueue pending images whose message was lost."""
    from services.ingest.sweeper import Sweeper
    from shared.db import Catalog

    settings = get_settings()
    catalog = Catalog.from_settings(settings)
    # A looping sweeper only reconciles a Qdrant server: it must not hold the embedded index,
    # which belongs to `lookalike run` (whose own sweeper reconciles it).
    index = _open_index_for_cli(settings, required=False) if once or settings.qdrant_url else None
    if isinstance(index, Exception):
        index = None  # held by another process (lookalike run), whose own sweeper reconciles
    sweeper = Sweeper(catalog, settings, index=index, pending_after_s=pending_after)
    try:
        if once:
            click.echo(json.dumps(sweeper.sweep().summary()))
        else:
            sweeper.run(
                threading.Event(), every, lambda report: click.echo(json.dumps(report.summary()))
            )
    finally:
        if index is not None:
            index.close()
        catalog.dispose()


@click.command("reindex")
@click.option(
    "--model",
    default=None,
    help="Registry backbone (ViT-B-16-SigLIP, ...), trained model directory or OpenCLIP "
    "directory (open_clip_config.json + weights) (default: the active model).",
)
@click.option(
    "--weights",
    default="imagenet",
    show_default=True,
    help="For a backbone name: imagenet, random, a weights file or directory, hf-hub:ORG/REPO.",
)
@click.option(
    "--runtime", type=click.Choice(["auto", "torch", "onnx"]), default="auto", show_default=True
)
@click.option(
    "--device", default="auto", show_default=True, help="auto (CUDA when present), cpu, cuda."
)
@click.option(
    "--licence",
    default="",
    help="The weights' licence, for the model card (default: embedder.weights_licence, else "
    "the weights directory's metadata, else unknown).",
)
@click.option(
    "--settle",
    default=5.0,
    show_default=True,
    help="Seconds to let workers switch to the new model before the last catch-up pass.",
)
@click.option("--drop-old", is_flag=True, help="Drop the previous collection after the switch.")
@click.option(
    "--all",
    "everything",
    is_flag=True,
    help="Re-embed every image, also those this model already embedded (a lost collection, or "
    "an index made before crops carried garment classes: this backfills them).",
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def reindex_command(
    model: str | None,
    weights: str,
    runtime: str,
    device: str,
    licence: str,
    settle: float,
    drop_old: bool,
    everything: bool,
    no_progress: bool,
) -> None:
    """Embed the catalog with a (new) model into a new collection, then switch the alias.

    While a process that serves a gateway holds the embedded index (``lookalike run``), that
    process reindexes (``POST /admin/reindex``) and this command follows its progress."""
    from pathlib import Path

    settings = get_settings()
    settings.ensure_dirs()
    if model is not None and Path(model).expanduser().exists():
        model = str(Path(model).expanduser().resolve())  # the holder has its own cwd
    if weights not in ("imagenet", "random") and Path(weights).expanduser().exists():
        weights = str(Path(weights).expanduser().resolve())
    request = ReindexRequest(
        model=model,
        weights=weights,
        runtime=runtime,
        device=device,
        licence=licence,
        settle_s=settle,
        drop_old=drop_old,
        everything=everything,
    )
    holder = None
    if settings.qdrant_url is None and settings.qdrant_path is not None:
        holder = index_holder.read(settings.qdrant_path)
    if holder is not None and holder.url:
        report = _reindex_in_holder(holder, request, settings, quiet=no_progress)
    else:
        report = _reindex_here(request, settings, progress=not no_progress)
    click.echo(report.model_dump_json(indent=2))
    if report.state == "failed":
        raise LookalikeError(f"reindex failed: {report.error}")


def _reindex_here(
    request: ReindexRequest, settings: Settings, *, progress: bool
) -> ReindexProgress:
    """This process opens the index (waiting a little for a short-lived holder) and reindexes."""
    from services.ingest.pipeline import IngestRuntime
    from services.ingest.reindex import reindex, requested_spec

    ingest = IngestRuntime.build(settings, role="lookalike reindex")
    try:
        return reindex(
            ingest.pipeline,
            requested_spec(ingest.pipeline, request),
            progress=progress,
            settle_s=request.settle_s,
            drop_previous=request.drop_old,
            everything=request.everything,
        )
    finally:
        ingest.close()


def _answer(response: Any, holder: Holder) -> ReindexProgress:
    """The progress in a gateway's answer, or its error in one line."""
    if response.status_code in (200, 202):
        return ReindexProgress.model_validate(response.json())
    try:
        detail = response.json()["detail"]
    except (ValueError, KeyError, TypeError):
        detail = f"HTTP {response.status_code}"
    raise LookalikeError(f"{holder.role} holds the index and answered: {detail}")


def _reindex_in_holder(
    holder: Holder, request: ReindexRequest, settings: Settings, *, quiet: bool
) -> ReindexProgress:
    """Ask the process that holds the embedded index to reindex, and follow it to the end."""
    import httpx

    click.echo(f"reindex: asking {holder.describe()}, which holds the index", err=True)
    headers = {"X-API-Key": settings.api_key} if settings.api_key else {}
    said = ""
    try:
        with httpx.Client(base_url=holder.url or "", headers=headers, timeout=30) as client:
            report = _answer(
                client.post("/admin/reindex", json=request.model_dump(mode="json")), holder
            )
            while True:
                line = report.line()
                if not quiet and line != said:
                    click.echo(line, err=True)
                    said = line
                if report.state != "running":
                    return report
                time.sleep(1.0)
                report = _answer(client.get("/admin/reindex"), holder)
    except httpx.HTTPError as exc:
        raise LookalikeError(
            f"could not reach {holder.describe()}, which holds the index: {exc}"
        ) from exc


@click.command("ingest-status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def ingest_status_command(as_json: bool) -> None:
    """Images per state, queue depths, common failure reasons and the live collection."""
    from shared.db import Catalog
    from shared.index_layout import ALIAS, live_collection
    from shared.queue import queue_depths
    from shared.vectors import IndexHeldError

    settings = get_settings()
    catalog = Catalog.from_settings(settings)
    progress = catalog.ingest_progress()
    active = catalog.active_model_version("embedder")
    catalog.dispose()
    index_info: dict[str, Any] = {"alias": ALIAS, "collection": None, "points": None}
    index = _open_index_for_cli(settings, required=False)
    if isinstance(index, IndexHeldError):
        by = index.holder.describe() if index.holder else "(it did not say which)"
        index_info["detail"] = f"embedded index held by another process: {by}"
    else:
        try:
            collection = live_collection(index)
            index_info["collection"] = collection
            index_info["points"] = index.count(collection) if collection else 0
        finally:
            index.close()
    images = {state.value: count for state, count in progress.images.items()}
    queues = queue_depths(settings.broker_url)
    failures = progress.failure_reasons
    model = active.name if active else None
    last = progress.last_processed_at
    body = {
        "images": images,
        "queues": queues,
        "failure_reasons": failures,
        "last_processed_at": last.isoformat() if last else None,
        "indexed_last_minute": progress.indexed_last_minute,
        "model": model,
        "index": index_info,
    }
    if as_json:
        click.echo(json.dumps(body, indent=2))
        return
    click.echo("images    " + ", ".join(f"{n} {state}" for state, n in images.items()))
    depths = ", ".join(
        f"{name} {'unreachable' if depth is None else depth}" for name, depth in queues.items()
    )
    click.echo(f"queues    {depths}")
    click.echo(f"progress  {progress.summary()}")
    click.echo(f"model     {model or '(none active yet)'}")
    detail = (
        index_info.get("detail") or f"{index_info['collection']}, {index_info['points']} points"
    )
    click.echo(f"index     {ALIAS} -> {detail}")
    for reason, count in failures.items():
        click.echo(f"failed    {count:>6}  {reason}")
