"""Writing scraped products to the catalog, in a process of its own.

:class:`CatalogWriter` is the logic: upsert a batch in one transaction (falling back to one
transaction per product), then enqueue the new images and ask for an index sync of changed
products and removed images. :class:`WriterProcess` runs it in a
child process fed through a bounded queue. Why a process and not a thread: the catalog's
upserts spend most of their time in Python (SQLAlchemy), so a thread fights the crawl for
the GIL and the two run one after the other; in a process they use two cores. Measured on
the 5,000-product demo shop into Postgres (2 cores, ``lab/benchmarks/crawl.py``): about
145 product pages/s with a writer thread, 200 with this process; the crawl alone, writing
nothing, does about 345.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

from sqlalchemy.exc import OperationalError, SQLAlchemyError

from shared.db import Catalog, ProductIn, UpsertReport
from shared.errors import InvalidInputError

log = logging.getLogger(__name__)

Enqueue = Callable[[Sequence[int]], bool]
IndexSync = Callable[[Sequence[int], Sequence[int]], bool]
"""``sync(product_ids, image_ids)``: ask the index owner to refresh those products' points
(price, category ... changed) and drop those images' points (gone from the product page)."""
"""Hands image ids to the ingest queue; False when the broker is unreachable."""


class Stats(Protocol):
    def inc_value(self, key: str, count: int = 1, start: int = 0) -> None: ...

    def set_value(self, key: str, value: Any) -> None: ...

    def get_value(self, key: str, default: Any = None) -> Any: ...


@dataclass
class CountingStats:
    """The part of Scrapy's stats API the writer uses, as a plain dict."""

    values: dict[str, Any] = field(default_factory=dict)

    def inc_value(self, key: str, count: int = 1, start: int = 0) -> None:
        self.values[key] = self.values.get(key, start) + count

    def set_value(self, key: str, value: Any) -> None:
        self.values[key] = value

    def get_value(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)


class CatalogWriter:
    """Writes batches of products through the catalog and enqueues their new images.

    A batch is one transaction. If it fails (a constraint, a value the database refuses),
    its products are retried one transaction each, so a bad product costs only itself and
    none is ever half-written. If the database is unreachable, ``on_fatal`` is called once
    and nothing more is written: the crawl cannot be complete. New images are enqueued after
    the commit; when the broker is down they stay ``pending`` for the sweeper.
    """

    def __init__(
        self,
        catalog: Catalog,
        source_id: int,
        stats: Stats,
        *,
        enqueue: Enqueue | None = None,
        sync: IndexSync | None = None,
        on_fatal: Callable[[], None] | None = None,
        name: str = "crawl",
    ) -> None:
        self.catalog = catalog
        self.source_id = source_id
        self.stats = stats
        self.enqueue = enqueue
        self.sync = sync
        self.on_fatal = on_fatal
        self.name = name
        self.failed = False
        self.broker_down = False

    def write(self, batch: Sequence[ProductIn]) -> None:
        if not batch or self.failed:
            return
        started = time.perf_counter()
        try:
            report = self.catalog.upsert_products(self.source_id, batch)
        except OperationalError as exc:
            self._fatal(len(batch), exc)
            return
        except (SQLAlchemyError, InvalidInputError) as exc:
            log.warning(
                "batch of %d products failed (%s); writing them one by one", len(batch), exc
            )
            report = self._one_by_one(batch)
        self._record(report, time.perf_counter() - started)
        self._enqueue(report.new_image_ids)
        self._sync(report.updated, report.removed_image_ids)

    def _one_by_one(self, batch: Sequence[ProductIn]) -> UpsertReport:
        total = UpsertReport()
        for row in batch:
            try:
                report = self.catalog.upsert_products(self.source_id, [row])
            except OperationalError as exc:
                self._fatal(1, exc)
                break
            except (SQLAlchemyError, InvalidInputError) as exc:
                self.stats.inc_value("lookalike/errors/write_failed")
                log.error("could not write %s: %s", row.canonical_url, exc)
                continue
            for name in ("created", "updated", "unchanged", "new_image_ids", "removed_image_ids"):
                getattr(total, name).extend(getattr(report, name))
        return total

    def _fatal(self, count: int, exc: OperationalError) -> None:
        self.failed = True
        self.stats.inc_value("lookalike/errors/write_failed", count)
        self.stats.set_value("lookalike/catalog_unavailable", str(exc.orig or exc)[:500])
        log.error("catalog unavailable, stopping the crawl: %s", exc.orig or exc)
        if self.on_fatal is not None:
            self.on_fatal()

    def _record(self, report: UpsertReport, seconds: float) -> None:
        stats = self.stats
        stats.inc_value("lookalike/products/created", len(report.created))
        stats.inc_value("lookalike/products/updated", len(report.updated))
        stats.inc_value("lookalike/products/unchanged", len(report.unchanged))
        stats.inc_value("lookalike/images/new", len(report.new_image_ids))
        stats.inc_value("lookalike/images/removed", len(report.removed_image_ids))
        written = len(report.created) + len(report.updated) + len(report.unchanged)
        stats.inc_value("lookalike/products/written", written)
        log.info(
            "%s: wrote %d products in %.2fs (%d new, %d changed, %d unchanged, %d new images); "
            "%d so far",
            self.name,
            written,
            seconds,
            len(report.created),
            len(report.updated),
            len(report.unchanged),
            len(report.new_image_ids),
            stats.get_value("lookalike/products/written", 0),
        )

    def _enqueue(self, image_ids: list[int]) -> None:
        if not image_ids or self.enqueue is None:
            return
        if self.broker_down:
            self.stats.inc_value("lookalike/images/left_pending", len(image_ids))
        elif self.enqueue(image_ids):
            self.stats.inc_value("lookalike/images/enqueued", len(image_ids))
        else:
            # Stop trying for this crawl; the sweeper enqueues pending rows later.
            self.broker_down = True
            self.stats.inc_value("lookalike/images/left_pending", len(image_ids))

    def _sync(self, product_ids: list[int], image_ids: list[int]) -> None:
        if self.sync is None or self.broker_down or not (product_ids or image_ids):
            return
        if self.sync(product_ids, image_ids):
            self.stats.inc_value(
                "lookalike/index/sync_requested", len(product_ids) + len(image_ids)
            )
        else:
            self.broker_down = True  # the sweeper reconciles the index later


@dataclass(frozen=True)
class WriterSpec:
    """What the writer process needs (picklable: it crosses into the child)."""

    database_url: str
    source_id: int
    name: str
    enqueue: Enqueue | None
    sync: IndexSync | None = None
    log_level: str = "INFO"


Message = tuple[str, dict[str, Any]]
"""``("stats", values)`` after every batch, ``("fatal", values)``, then ``("done", values)``;
``values`` are the writer's cumulative stats."""


def _writer_main(spec: WriterSpec, inbox: Any, outbox: Any) -> None:
    from shared.logging import configure_logging

    configure_logging(spec.log_level)
    catalog = Catalog(spec.database_url)
    stats = CountingStats()
    writer = CatalogWriter(
        catalog,
        spec.source_id,
        stats,
        enqueue=spec.enqueue,
        sync=spec.sync,
        on_fatal=lambda: outbox.put(("fatal", dict(stats.values))),
        name=spec.name,
    )
    try:
        while (batch := inbox.get()) is not None:
            writer.write(batch)
            outbox.put(("stats", dict(stats.values)))
    finally:
        catalog.dispose()
        outbox.put(("done", dict(stats.values)))


class WriterProcess:
    """A :class:`CatalogWriter` in a child process; at most ``max_pending`` batches wait."""

    def __init__(self, spec: WriterSpec, *, max_pending: int = 4) -> None:
        context = multiprocessing.get_context("spawn")
        self.spec = spec
        self._inbox: Any = context.Queue(max_pending)
        self._outbox: Any = context.Queue()
        self._process: BaseProcess = context.Process(
            target=_writer_main,
            args=(spec, self._inbox, self._outbox),
            name=f"catalog-writer-{spec.name}",
            daemon=True,
        )
        self.done = False

    def start(self) -> None:
        self._process.start()

    @property
    def alive(self) -> bool:
        return self._process.is_alive()

    def submit(self, batch: list[ProductIn]) -> bool:
        """Queue ``batch``, waiting while the writer is behind; False if the writer died."""
        while self._process.is_alive():
            try:
                self._inbox.put(batch, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def poll(self) -> list[Message]:
        """Messages the writer sent so far (never blocks)."""
        messages = []
        while True:
            try:
                messages.append(self._outbox.get_nowait())
            except queue.Empty:
                return messages

    def close(self, timeout_s: float = 600.0) -> list[Message]:
        """Let the writer finish what is queued, stop it, and return its last messages."""
        messages: list[Message] = []
        if self._process.is_alive():
            self.submit_end()
        deadline = time.monotonic() + timeout_s
        while not self.done and time.monotonic() < deadline:
            try:
                message = self._outbox.get(timeout=0.5)
            except queue.Empty:
                if not self._process.is_alive():
                    messages.extend(self.poll())
                    break
                continue
            messages.append(message)
            self.done = message[0] == "done"
        self._process.join(timeout=10)
        if self._process.is_alive():
            log.error("catalog writer did not stop; terminating it")
            self._process.terminate()
            self._process.join(timeout=10)
        return messages

    def submit_end(self) -> None:
        while self._process.is_alive():
            try:
                self._inbox.put(None, timeout=0.5)
                return
            except queue.Full:
                continue
