"""Thin Celery wrappers around the ingest pipeline (:mod:`services.ingest.pipeline`).

Each worker process holds one :class:`~services.ingest.pipeline.IngestRuntime` (catalog,
vector index, model, HTTP client): built when a prefork child starts (``worker_process_init``,
so the model loads once per process and never at import), before consuming for the threads and
solo pools (``lookalike worker``), or installed by the embedded stack, whose consumer is an
:class:`InProcessWorker` in the process that owns the embedded index.
"""

from __future__ import annotations

import logging
import secrets
import socket
import threading
from typing import Any

from celery import Task
from celery.signals import worker_process_init, worker_process_shutdown
from celery.worker import WorkController
from qdrant_client.http.exceptions import ResponseHandlingException
from sqlalchemy.exc import OperationalError

from services.ingest import indexing
from services.ingest.celery_app import QUEUES, app, configure
from services.ingest.pipeline import IngestRuntime, model_threads
from services.ingest.sweeper import SWEEP_EVERY_S, Sweeper, SweeperThread
from shared.db import Catalog
from shared.errors import ServiceUnavailableError
from shared.health import Check
from shared.queue import INGEST_TASK, SYNC_TASK
from shared.settings import Settings, get_settings
from shared.vectors import VectorIndex

__all__ = [
    "TRANSIENT_ERRORS",
    "InProcessWorker",
    "WorkerState",
    "process_images",
    "state",
    "sync_index",
]

log = logging.getLogger(__name__)

TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    OperationalError,  # the catalog database is unreachable
    ServiceUnavailableError,
    ResponseHandlingException,  # the Qdrant server is unreachable
)
"""Infrastructure errors a whole task is retried for (download errors are per image)."""

BACKOFF_BASE_S = 2.0
BACKOFF_MAX_S = 60.0
RESTART_AFTER_S = 1.0
MAX_RESTART_AFTER_S = 60.0
"""The in-process consumer is restarted after 1, 2, 4 ... 60 s when it dies."""


class WorkerState:
    """The ingest runtime of this process."""

    def __init__(self) -> None:
        self._runtime: IngestRuntime | None = None
        self._lock = threading.Lock()

    def install(self, runtime: IngestRuntime) -> None:
        """Use a runtime built by the caller (the embedded stack shares its index)."""
        with self._lock:
            self._runtime = runtime

    def get(self) -> IngestRuntime:
        with self._lock:
            if self._runtime is None:
                self._runtime = IngestRuntime.build(get_settings())
            return self._runtime

    def close(self) -> None:
        with self._lock:
            runtime, self._runtime = self._runtime, None
        if runtime is not None:
            runtime.close()


state = WorkerState()


def backoff_s(retries: int) -> float:
    """Exponential backoff with jitter: 2, 4, 8 ... 60 s, each between 50% and 100%."""
    ceiling = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2**retries)
    return ceiling / 2 + ceiling / 2 * secrets.randbelow(1001) / 1000


@worker_process_init.connect
def _init_process(**_: Any) -> None:
    """A prefork child: share the cores with its siblings, open the runtime, load the model."""
    import torch

    torch.set_num_threads(model_threads(get_settings()))
    state.get().warm()


@worker_process_shutdown.connect
def _shutdown_process(**_: Any) -> None:
    state.close()


@app.task(
    bind=True,
    name=INGEST_TASK,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    max_retries=None,
)
def process_images(self: Task, image_ids: list[int]) -> dict[str, int]:
    """Ingest these images (those still pending); retry the transiently failed ones later."""
    runtime = state.get()
    try:
        report = runtime.pipeline.process(image_ids)
    except TRANSIENT_ERRORS as exc:
        log.warning("ingest of %d images hit %s; retrying", len(image_ids), exc.__class__.__name__)
        raise self.retry(
            exc=exc,
            countdown=backoff_s(self.request.retries),
            max_retries=runtime.settings.ingest.max_attempts,
        ) from exc
    if report.retry:
        # Back in `pending` with their attempt counted; the catalog caps the attempts.
        raise self.retry(args=[sorted(report.retry)], countdown=backoff_s(self.request.retries))
    return report.summary()


@app.task(
    bind=True,
    name=SYNC_TASK,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    max_retries=5,
)
def sync_index(self: Task, product_ids: list[int], image_ids: list[int]) -> None:
    """Bring these products' and images' points in line with the catalog."""
    runtime = state.get()
    try:
        indexing.sync_products(runtime.index, runtime.catalog, product_ids)
        indexing.sync_images(runtime.index, runtime.catalog, image_ids)
    except TRANSIENT_ERRORS as exc:
        raise self.retry(exc=exc, countdown=backoff_s(self.request.retries)) from exc


class InProcessWorker:
    """The ingest consumer of the embedded stack: a Celery worker with the threads pool in a
    background thread of the process that owns the vector index, plus the sweeper on a timer.

    ``settings.worker_concurrency`` tasks run at once in threads sharing one runtime (one
    model, one index): while one task downloads, decodes or writes, another runs the model
    (ONNX Runtime and Pillow release the GIL). A prefork pool is not an option here: only
    this process may open the embedded index.
    """

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        index: VectorIndex,
        *,
        sweep_every_s: float = SWEEP_EVERY_S,
    ) -> None:
        self.settings = settings
        self.runtime = IngestRuntime.build(
            settings, catalog=catalog, index=index, threads=model_threads(settings)
        )
        self.sweeper = SweeperThread(Sweeper(catalog, settings, index=index), sweep_every_s)
        self._worker: WorkController | None = None
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ingest-worker", daemon=True)
        self.restarts = 0
        self.last_error: str | None = None

    def start(self) -> InProcessWorker:
        configure(self.settings)
        state.install(self.runtime)
        self._thread.start()
        self.sweeper.start()
        return self

    def _run(self) -> None:
        """Serve until stopped; a consumer that dies (a model that fails to load, a crash in
        Celery) is restarted with backoff, and :meth:`check` says so meanwhile."""
        delay = RESTART_AFTER_S
        while not self._stopping.is_set():
            try:
                self._serve()
            except Exception as exc:
                self.restarts += 1
                self.last_error = f"{exc.__class__.__name__}: {exc}"
                log.exception("ingest consumer stopped (%s); restarting in %.0f s", exc, delay)
            else:
                if self._stopping.is_set():
                    return
                self.restarts += 1
                self.last_error = "the consumer stopped by itself"
                log.warning("ingest consumer stopped by itself; restarting in %.0f s", delay)
            self._ready.clear()
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, MAX_RESTART_AFTER_S)

    def _serve(self) -> None:
        self.runtime.warm()  # the model loads here, not in the gateway's start-up path
        if self._stopping.is_set():
            return
        concurrency = self.settings.worker_concurrency
        worker = app.WorkController(
            pool_cls="threads" if concurrency > 1 else "solo",
            concurrency=concurrency,
            queues=list(QUEUES),
            hostname=f"embedded@{socket.gethostname()}",
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
        )
        self._worker = worker
        if not self._stopping.is_set():
            log.info("ingest consumer running in process (queues %s)", ", ".join(QUEUES))
            self._ready.set()
            worker.start()

    @property
    def alive(self) -> bool:
        """The consumer thread runs and takes tasks."""
        return self._thread.is_alive() and self._ready.is_set()

    def check(self) -> Check:
        """``/readyz``'s view of ingest: ok while the consumer takes tasks."""
        if self.alive:
            detail = f"consuming with {self.settings.worker_concurrency} tasks at once"
            if self.restarts:
                detail += f" (restarted {self.restarts}x; last: {self.last_error})"
            return Check("ingest", True, detail, 0.0)
        if not self._thread.is_alive() and not self._stopping.is_set():
            return Check("ingest", False, "the consumer thread is not running", 0.0)
        detail = "starting: loading the model"
        if self.last_error:
            detail = f"restarting after {self.last_error}"
        return Check("ingest", False, detail, 0.0)

    def wait_ready(self, timeout_s: float | None = None) -> bool:
        """Wait until the model is loaded and the consumer starts; False on timeout."""
        return self._ready.wait(timeout_s)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Finish the running task, stop consuming, close the runtime (not the index)."""
        self._stopping.set()
        self.sweeper.stop()
        if self._worker is not None:
            self._worker.stop(in_sighandler=False)
        self._thread.join(timeout_s)
        state.close()

    def __enter__(self) -> InProcessWorker:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
