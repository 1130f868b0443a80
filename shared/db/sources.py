"""Sources (the shops) and their crawl runs.

A source's products follow its ``enabled`` flag: disabling (or re-adding it with
``enabled: false``) marks them inactive in the same transaction, so no search answers with
them from that commit on; removing deletes them. A ``running`` crawl run is the source's crawl
lock (see :meth:`SourcesRepository.start_crawl_run`).
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.db.models import (
    CrawlRun,
    CrawlStatus,
    Product,
    Source,
    utcnow,
)
from shared.db.offers import forget_source
from shared.db.schemas import (
    CrawlRunOut,
    SourceIn,
    SourceOut,
)
from shared.db.store import Store
from shared.errors import ConflictError, NotFoundError


def this_process() -> str:
    """A crawl lock's holder: ``pid N on HOST``."""
    return f"pid {os.getpid()} on {socket.gethostname()}"[:200]


class CrawlInProgressError(ConflictError):
    """Another process holds the source's crawl lock (a live lease)."""

    def __init__(self, source: str, run: CrawlRunOut) -> None:
        since = f"{run.started_at:%Y-%m-%d %H:%M:%S} UTC"
        super().__init__(
            f"{source} is being crawled by {run.holder or 'another process'} since {since} "
            f"(crawl {run.id}); try again when it ends"
        )
        self.run = run


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class SourcesRepository(Store):
    """Sources (the shops) and their crawl runs."""

    def upsert_source(self, source: SourceIn) -> SourceOut:
        """Create the source, or update its URL/config/enabled flag if the name exists; a
        disabled source's products become inactive in the same transaction."""
        with self.writing() as session:
            row = session.scalar(select(Source).where(Source.name == source.name))
            if row is None:
                row = Source(**source.model_dump())
                session.add(row)
            else:
                row.base_url = source.base_url
                row.config = dict(source.config)
                row.enabled = source.enabled
            session.flush()
            if not row.enabled:
                _deactivate(session, row.id)
            return SourceOut.model_validate(row)

    def disable_source(self, name: str) -> tuple[SourceOut, list[int]]:
        """Stop crawling and serving ``name``: its products become inactive in the same
        transaction. Returns the source and the ids of the products it deactivated."""
        with self.writing() as session:
            row = _source(session, name)
            row.enabled = False
            session.flush()
            return SourceOut.model_validate(row), _deactivate(session, row.id)

    def enable_source(self, name: str, *, max_missed_runs: int) -> tuple[SourceOut, list[int]]:
        """Crawl and serve ``name`` again: its products that had not missed
        ``max_missed_runs`` crawls come back at once (the next crawl settles the rest).
        Returns the source and the ids of the products it reactivated."""
        with self.writing() as session:
            row = _source(session, name)
            row.enabled = True
            session.flush()
            back = session.scalars(
                update(Product)
                .where(
                    Product.source_id == row.id,
                    Product.active.is_(False),
                    Product.missed_runs < max_missed_runs,
                )
                .values(active=True, updated_at=utcnow())
                .returning(Product.id)
                .execution_options(synchronize_session=False)
            ).all()
            return SourceOut.model_validate(row), sorted(back)

    def remove_source(self, name: str) -> list[int]:
        """Delete ``name`` with its products, images, crops and crawl runs, in one transaction;
        returns the ids of the products it had (for the index to drop their points)."""
        with self.writing() as session:
            row = _source(session, name)
            ids = sorted(session.scalars(select(Product.id).where(Product.source_id == row.id)))
            _deactivate(session, row.id)
            forget_source(session, row.id)
            session.execute(delete(Source).where(Source.id == row.id))
            return ids

    def source_product_ids(self, source_id: int) -> list[int]:
        with self.reading() as session:
            query = select(Product.id).where(Product.source_id == source_id).order_by(Product.id)
            return list(session.scalars(query))

    def get_source(self, name: str) -> SourceOut:
        with self.reading() as session:
            return SourceOut.model_validate(_source(session, name))

    def list_sources(self, *, enabled_only: bool = False) -> list[SourceOut]:
        query = select(Source).order_by(Source.id)
        if enabled_only:
            query = query.where(Source.enabled.is_(True))
        with self.reading() as session:
            return [SourceOut.model_validate(row) for row in session.scalars(query)]

    def start_crawl_run(
        self, source_id: int, *, lease_s: float = 60.0, holder: str | None = None
    ) -> CrawlRunOut:
        """Take the source's crawl lock: a new ``running`` run held by ``holder`` (this
        process by default). A running run whose lease (``heartbeat_at``, renewed with
        :meth:`renew_crawl_lease`) is older than ``lease_s`` is failed and taken over; a live
        one raises :class:`CrawlInProgressError`."""
        holder = holder or this_process()
        try:
            with self.writing() as session:
                held = session.scalar(
                    select(CrawlRun).where(
                        CrawlRun.source_id == source_id, CrawlRun.status == CrawlStatus.RUNNING
                    )
                )
                now = utcnow()
                if held is not None:
                    lease = _aware(held.heartbeat_at or held.started_at)
                    if lease + timedelta(seconds=lease_s) > now:
                        raise CrawlInProgressError(_name(session, source_id), _run(held))
                    held.status = CrawlStatus.FAILED
                    held.finished_at = now
                    held.stats = {
                        **held.stats,
                        "outcome": f"lease expired: taken over by {holder}",
                        "complete": False,
                    }
                    session.flush()
                run = CrawlRun(
                    source_id=source_id,
                    status=CrawlStatus.RUNNING,
                    holder=holder,
                    started_at=now,
                    heartbeat_at=now,
                )
                session.add(run)
                session.flush()
                return _run(run)
        except IntegrityError:  # another process took the lock between our read and insert
            with self.reading() as session:
                held = session.scalar(
                    select(CrawlRun).where(
                        CrawlRun.source_id == source_id, CrawlRun.status == CrawlStatus.RUNNING
                    )
                )
                if held is None:
                    raise
                raise CrawlInProgressError(_name(session, source_id), _run(held)) from None

    def renew_crawl_lease(self, run_id: int, *, holder: str | None = None) -> bool:
        """Renew a running crawl's lease (and, with ``holder``, hand it to that process);
        False when the run no longer holds the lock (it ended or was taken over)."""
        values: dict[str, Any] = {"heartbeat_at": utcnow()}
        if holder is not None:
            values["holder"] = holder
        with self.writing() as session:
            renewed = session.execute(
                update(CrawlRun)
                .where(CrawlRun.id == run_id, CrawlRun.status == CrawlStatus.RUNNING)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            return bool(getattr(renewed, "rowcount", 0))

    def finish_crawl_run(
        self,
        run_id: int,
        *,
        status: CrawlStatus,
        pages: int,
        items: int,
        errors: int,
        stats: dict[str, Any] | None = None,
    ) -> CrawlRunOut:
        with self.writing() as session:
            run = session.get(CrawlRun, run_id)
            if run is None:
                raise NotFoundError(f"no crawl run {run_id}")
            run.status = status
            run.finished_at = utcnow()
            run.pages, run.items, run.errors = pages, items, errors
            run.stats = dict(stats or {})
            session.flush()
            return _run(run)

    def crawl_runs(self, source_id: int, *, limit: int = 20) -> list[CrawlRunOut]:
        query = (
            select(CrawlRun)
            .where(CrawlRun.source_id == source_id)
            .order_by(CrawlRun.id.desc())
            .limit(limit)
        )
        with self.reading() as session:
            return [_run(row) for row in session.scalars(query)]


def _source(session: Session, name: str) -> Source:
    row = session.scalar(select(Source).where(Source.name == name))
    if row is None:
        raise NotFoundError(f"no source named {name!r}")
    return row


def _name(session: Session, source_id: int) -> str:
    name = session.scalar(select(Source.name).where(Source.id == source_id))
    return name or f"source {source_id}"


def _run(row: CrawlRun) -> CrawlRunOut:
    return CrawlRunOut.model_validate(row)


def _deactivate(session: Session, source_id: int) -> list[int]:
    """Mark the source's active products inactive; their ids."""
    ids = session.scalars(
        update(Product)
        .where(Product.source_id == source_id, Product.active.is_(True))
        .values(active=False, updated_at=utcnow())
        .returning(Product.id)
        .execution_options(synchronize_session=False)
    ).all()
    return sorted(ids)
