"""Readiness probes of the infrastructure a service depends on.

Each probe answers within its timeout with a :class:`Check`; none raises. Services combine
them in ``/readyz`` and ``lookalike status``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from kombu import Connection
from kombu.exceptions import KombuError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from shared.db import Catalog
from shared.db.migrate import current_revision, head_revision


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    latency_ms: float


def _timed(name: str, started: float, ok: bool, detail: str) -> Check:
    return Check(name, ok, detail, round((time.perf_counter() - started) * 1000, 1))


def check_database(catalog: Catalog) -> Check:
    """The catalog answers and its schema is at the latest migration."""
    started = time.perf_counter()
    try:
        with catalog.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        revision, head = current_revision(catalog.engine), head_revision()
    except SQLAlchemyError as exc:
        return _timed("database", started, False, f"{catalog.dialect}: {exc.__class__.__name__}")
    if revision != head:
        detail = f"schema at {revision}, code expects {head}: run `lookalike migrate`"
        return _timed("database", started, False, detail)
    return _timed("database", started, True, f"{catalog.dialect}, schema {revision}")


def check_broker(url: str, *, timeout_s: float = 2.0) -> Check:
    """The Celery broker accepts a connection (Redis, or the serverless SQLite transport)."""
    started = time.perf_counter()
    transport = url.split(":", 1)[0]
    try:
        with Connection(url, connect_timeout=timeout_s) as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout_s)
    except (OSError, KombuError, SQLAlchemyError) as exc:
        return _timed("broker", started, False, f"{transport}: {exc.__class__.__name__}: {exc}")
    return _timed("broker", started, True, transport)
