"""The Celery app of the ingest workers (``lookalike worker``, or
``celery -A services.ingest.celery_app worker``).

The app object exists at import, but its configuration is a promise evaluated from
:func:`~shared.settings.get_settings` the first time Celery needs it: importing this module
reads no environment and opens no connection. :func:`configure` applies explicit settings
(the embedded stack, ``lookalike worker``).

Delivery guarantees: tasks are acknowledged after they finish (``acks_late``), a task whose
worker process dies is requeued (``task_reject_on_worker_lost``), and each worker process
reserves one message at a time (prefetch multiplier 1). Tasks are idempotent: they claim
images in the catalog first, and point ids are deterministic.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import setup_logging
from kombu.transport import sqlalchemy as kombu_sqlalchemy

from shared.logging import configure_logging
from shared.queue import INDEX_QUEUE, INGEST_QUEUE, INGEST_TASK, SYNC_TASK
from shared.settings import Settings, get_settings

__all__ = ["QUEUES", "SQLBrokerTransport", "app", "celery", "celery_config", "configure"]

QUEUES = (INGEST_QUEUE, INDEX_QUEUE)


class SQLBrokerTransport(kombu_sqlalchemy.Transport):
    """kombu's SQLAlchemy transport (the serverless broker), polling every 0.1 s, not 1 s.

    A consumer with more than one thread only sees a freed prefetch slot at its next poll: at
    1 s, a threads-pool worker measured 10.3 s for 20 tasks of 0.3 s on 2 threads, at 0.1 s
    3.5 s. The interval cannot go through the transport options, which this transport hands
    to ``create_engine``. An idle poll is one small query on the broker's own SQLite file.
    """

    polling_interval = 0.1


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings derived from Lookalike's settings."""
    stale = settings.ingest.stale_claim_after_s
    broker_url = settings.broker_url
    config: dict[str, Any] = {
        "broker_url": broker_url,
        "result_backend": settings.result_backend,
        "task_ignore_result": True,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": INGEST_QUEUE,
        "task_routes": {
            INGEST_TASK: {"queue": INGEST_QUEUE},
            SYNC_TASK: {"queue": INDEX_QUEUE},
        },
        # A task may not outlive its claim: past this the sweeper hands the images to others.
        "task_time_limit": stale,
        "task_soft_time_limit": max(1, int(stale * 0.9)),
        "worker_concurrency": settings.worker_concurrency,
        "worker_hijack_root_logger": False,
        "broker_connection_retry_on_startup": True,
        # Let running tasks finish when the broker goes away: their writes are idempotent and
        # recorded in the catalog, which is what counts (the message is lost with Redis anyway).
        "worker_cancel_long_running_tasks_on_connection_loss": False,
    }
    if broker_url.startswith("sqla+"):
        # The same database as `sqla+...` producers use, read by the faster-polling transport.
        config["broker_url"] = broker_url.removeprefix("sqla+")
        config["broker_transport"] = f"{__name__}:SQLBrokerTransport"
    if broker_url.startswith(("redis://", "rediss://", "unix://")):
        # Unacknowledged messages of a worker that vanished come back after this long (the
        # sweeper usually gets there first, after stale_claim_after_s).
        config["broker_transport_options"] = {"visibility_timeout": max(3600, 2 * stale)}
    return config


app = Celery("lookalike", include=["services.ingest.tasks"], set_as_current=False)
app.add_defaults(lambda: celery_config(get_settings()))
celery = app


def configure(settings: Settings) -> Celery:
    """Configure :data:`app` from ``settings`` (instead of the environment) and return it."""
    app.conf.update(celery_config(settings))
    return app


@setup_logging.connect
def _setup_logging(**_: Any) -> None:
    """Workers log like every other Lookalike process (Celery leaves the root logger alone),
    a line per task rather than one per downloaded image."""
    configure_logging(get_settings().log_level)
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))
