"""Sources (the shops) and their crawl runs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from shared.db.models import (
    CrawlRun,
    CrawlStatus,
    Source,
    utcnow,
)
from shared.db.schemas import (
    CrawlRunOut,
    SourceIn,
    SourceOut,
)
from shared.db.store import Store
from shared.errors import NotFoundError


class SourcesRepository(Store):
    """Sources (the shops) and their crawl runs."""

    def upsert_source(self, source: SourceIn) -> SourceOut:
        """Create the source, or update its URL/config/enabled flag if the name exists."""
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
            return SourceOut.model_validate(row)

    def get_source(self, name: str) -> SourceOut:
        with self.reading() as session:
            row = session.scalar(select(Source).where(Source.name == name))
            if row is None:
                raise NotFoundError(f"no source named {name!r}")
            return SourceOut.model_validate(row)

    def list_sources(self, *, enabled_only: bool = False) -> list[SourceOut]:
        query = select(Source).order_by(Source.id)
        if enabled_only:
            query = query.where(Source.enabled.is_(True))
        with self.reading() as session:
            return [SourceOut.model_validate(row) for row in session.scalars(query)]

    def start_crawl_run(self, source_id: int) -> CrawlRunOut:
        with self.writing() as session:
            run = CrawlRun(source_id=source_id, status=CrawlStatus.RUNNING)
            session.add(run)
            session.flush()
            return CrawlRunOut.model_validate(run)

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
            return CrawlRunOut.model_validate(run)

    def crawl_runs(self, source_id: int, *, limit: int = 20) -> list[CrawlRunOut]:
        query = (
            select(CrawlRun)
            .where(CrawlRun.source_id == source_id)
            .order_by(CrawlRun.id.desc())
            .limit(limit)
        )
        with self.reading() as session:
            return [CrawlRunOut.model_validate(row) for row in session.scalars(query)]
