"""The ingest queue contract, and how producers (the scraper, the sweeper) put work on it.

Contract, shared by producers and the ingest workers (issue #5):

- task name :data:`INGEST_TASK` (``lookalike.ingest.process_images``), one positional
  argument: a list of ``product_images.id`` values, at most ``chunk_size`` of them;
- queue :data:`INGEST_QUEUE` (``ingest``), JSON serialised, no result stored;
- task name :data:`SYNC_TASK` (``lookalike.index.sync``), arguments ``(product_ids,
  image_ids)``: bring those products' and images' points in line with the catalog (a product
  became inactive or changed its price, an image left the product page); queue
  :data:`INDEX_QUEUE` (``index``), so a backlog of images never delays a deactivation.

Producers send the task *by name* with a small Celery app of their own, so they never import
the embedder (or torch). The catalog DB stays the source of truth: images are ``pending``
there before they are enqueued, so a lost message (or a broker that is down) only delays
them until the ingest sweeper re-enqueues stale pending rows.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import lru_cache

from celery import Celery
from kombu import Connection
from kombu.exceptions import KombuError
from sqlalchemy.exc import SQLAlchemyError

from shared.settings import Settings

log = logging.getLogger(__name__)

INGEST_TASK = "lookalike.ingest.process_images"
INGEST_QUEUE = "ingest"
SYNC_TASK = "lookalike.index.sync"
INDEX_QUEUE = "index"

CONNECT_TIMEOUT_S = 2.0
"""How long a producer waits for the broker before it gives up on this attempt."""

PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0.0,
    "interval_step": 0.25,
    "interval_max": 0.5,
}
"""Publishing retries briefly (about a second in all), then reports failure: the rows stay
``pending`` and a later sweep enqueues them, so blocking a crawl on the broker buys nothing."""


@lru_cache(maxsize=4)
def producer_app(broker_url: str) -> Celery:
    """A Celery app that only publishes to ``broker_url`` (no result backend, no tasks).

    Cached per broker URL so its connection pool is reused across calls.
    """
    app = Celery("lookalike-producer", broker=broker_url, set_as_current=False)
    app.conf.update(
        broker_connection_timeout=CONNECT_TIMEOUT_S,
        broker_connection_retry=False,
        broker_connection_max_retries=1,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
    )
    if broker_url.startswith(("redis://", "rediss://")):
        # The SQLAlchemy transport hands its options to create_engine: Redis only.
        app.conf.broker_transport_options = {
            "socket_connect_timeout": CONNECT_TIMEOUT_S,
            "socket_timeout": CONNECT_TIMEOUT_S * 2,
            "max_retries": 1,
        }
    return app


def enqueue_images(
    image_ids: Sequence[int],
    settings: Settings,
    *,
    chunk_size: int | None = None,
) -> bool:
    """Send :data:`INGEST_TASK` for ``image_ids`` in chunks; True when every chunk was sent.

    Never raises for an unreachable broker: it logs and returns False, and the images stay
    ``pending`` in the catalog for the sweeper. Call it after the transaction that created the
    rows has committed.
    """
    ids = [int(image_id) for image_id in image_ids]
    if not ids:
        return True
    size = chunk_size or settings.ingest.batch_size
    app = producer_app(settings.broker_url)
    sent = 0
    try:
        with app.producer_or_acquire() as producer:
            for start in range(0, len(ids), size):
                chunk = ids[start : start + size]
                app.send_task(
                    INGEST_TASK,
                    args=[chunk],
                    queue=INGEST_QUEUE,
                    producer=producer,
                    retry=True,
                    retry_policy=PUBLISH_RETRY_POLICY,
                    ignore_result=True,
                )
                sent += len(chunk)
    except (OSError, KombuError, SQLAlchemyError) as exc:
        log.warning(
            "broker %s unreachable (%s: %s): %d of %d images stay pending for the sweeper",
            _transport(settings.broker_url),
            exc.__class__.__name__,
            exc,
            len(ids) - sent,
            len(ids),
        )
        return False
    log.debug("enqueued %d images in chunks of %d", len(ids), size)
    return True


def _transport(url: str) -> str:
    """The broker URL without credentials, for log lines."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"


def request_index_sync(
    settings: Settings,
    *,
    product_ids: Sequence[int] = (),
    image_ids: Sequence[int] = (),
) -> bool:
    """Ask the index owner to sync these products and images (:data:`SYNC_TASK`).

    For producers that do not own the index (the scraper after ``upsert_products`` /
    ``mark_unseen``). Never raises for an unreachable broker: it logs and returns False; the
    sweeper reconciles inactive products and removed images later.
    """
    products = sorted({int(i) for i in product_ids})
    images = sorted({int(i) for i in image_ids})
    if not products and not images:
        return True
    app = producer_app(settings.broker_url)
    try:
        app.send_task(
            SYNC_TASK,
            args=[products, images],
            queue=INDEX_QUEUE,
            retry=True,
            retry_policy=PUBLISH_RETRY_POLICY,
            ignore_result=True,
        )
    except (OSError, KombuError, SQLAlchemyError) as exc:
        log.warning(
            "broker %s unreachable (%s: %s): index sync of %d products and %d images is left "
            "to the sweeper",
            _transport(settings.broker_url),
            exc.__class__.__name__,
            exc,
            len(products),
            len(images),
        )
        return False
    return True


def queue_depth(
    broker_url: str, queue: str = INGEST_QUEUE, *, timeout_s: float = 2.0
) -> int | None:
    """Messages waiting in ``queue`` (for Redis: ``LLEN``), 0 for a queue that does not exist,
    ``None`` when the broker does not answer. Reserved, unacknowledged messages are not
    counted."""
    try:
        with Connection(broker_url, connect_timeout=timeout_s) as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout_s)
            channel = conn.channel()
            try:
                return int(channel.queue_declare(queue=queue, passive=True).message_count)
            except conn.channel_errors:
                return 0
            finally:
                channel.close()
    except (OSError, KombuError, SQLAlchemyError) as exc:
        log.debug("queue depth of %s unavailable: %s", queue, exc)
        return None


def queue_depths(broker_url: str) -> dict[str, int | None]:
    """:func:`queue_depth` of the ingest and the index queue, by name."""
    return {name: queue_depth(broker_url, name) for name in (INGEST_QUEUE, INDEX_QUEUE)}
