"""The catalog database API: one facade with typed methods, for services and for analysts.

>>> from shared.db import Catalog
>>> catalog = Catalog.from_settings()          # DATABASE_URL or the embedded SQLite file
>>> catalog.get_product(42)
>>> catalog.run_query("SELECT category, count(*) AS n FROM products GROUP BY category")

Every method opens and commits its own short transaction; nothing is held between calls.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Select, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, SQLAlchemyError, StatementError
from sqlalchemy.orm import Session, selectinload, sessionmaker
from sqlalchemy.sql import text

from shared.db.engine import SQLITE_IMMEDIATE, make_engine
from shared.db.models import (
    CrawlRun,
    CrawlStatus,
    FeedbackEvent,
    GarmentCrop,
    ImageState,
    ModelVersion,
    Product,
    ProductImage,
    Source,
    utcnow,
)
from shared.db.schemas import (
    CatalogStats,
    ClaimedImage,
    CrawlRunOut,
    FeedbackIn,
    ImageIn,
    ImageOut,
    ImageResult,
    IngestProgress,
    ModelVersionIn,
    ModelVersionOut,
    ProductIn,
    ProductOut,
    SourceIn,
    SourceOut,
    UpsertReport,
    site_relative,
)
from shared.errors import InvalidInputError, NotFoundError, ReadOnlyQueryError
from shared.settings import Settings, get_settings

_READ_KEYWORDS = frozenset({"select", "with", "explain", "values", "table", "show"})
_PG_READ_ONLY_VIOLATION = "25006"
_URL = re.compile(r"https?://\S+")
"""URLs in failure reasons: ``ingest_progress`` groups reasons without them."""


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; the catalog stores UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


class Catalog:
    """Typed access to sources, crawl runs, products, images, crops, models and feedback."""

    def __init__(self, engine: Engine | str) -> None:
        self.engine = make_engine(engine) if isinstance(engine, str) else engine
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        writer = self.engine.execution_options(**{SQLITE_IMMEDIATE: True})
        self._write = sessionmaker(writer, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Catalog:
        return cls((settings or get_settings()).catalog_url)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def migrate(self) -> None:
        """Bring the schema to the latest Alembic revision (safe to call on every start)."""
        from shared.db.migrate import upgrade

        upgrade(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with self._read() as session:
            yield session

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A write transaction: committed on success, rolled back on any error."""
        with self._write() as session, session.begin():
            yield session

    # -- sources and crawl runs -----------------------------------------------------------

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

    # -- products ---------------------------------------------------------------------------

    def upsert_products(
        self, source_id: int, items: Sequence[ProductIn], *, seen_at: datetime | None = None
    ) -> UpsertReport:
        """Insert or update the source's products by identity, in one transaction.

        An item is the product of this source with the same :attr:`ProductIn.identity_key`
        (else the one at the same canonical URL, re-keyed); a product the shop now serves
        from another address keeps its id, its URL and image URLs are updated in place (an
        image whose URL differs only by scheme, host or port keeps its ingest state).
        Unchanged products only get ``last_seen`` touched. New image URLs are added as
        ``pending``; image URLs a product no longer lists are marked inactive (the index drops
        their points). Running the same batch twice changes nothing the second time.
        """
        now = seen_at or utcnow()
        report = UpsertReport()
        by_key: dict[str, ProductIn] = {item.identity_key: item for item in items}
        with self.writing() as session:
            rows = self._matching_products(session, source_id, by_key)
            # Known products first: one moving off a URL frees it for a new one.
            for key in sorted(by_key, key=lambda key: key not in rows):
                item = by_key[key]
                fingerprint = item.fingerprint()
                row = rows.get(key)
                if row is None:
                    product_id = self._insert_product(session, source_id, item, fingerprint, now)
                    if product_id is not None:
                        report.created.append(product_id)
                        report.new_image_ids += self._add_images(session, product_id, item.images)
                        continue
                    row = session.scalar(  # another writer inserted it since our SELECT
                        select(Product)
                        .where(Product.source_id == source_id, Product.identity_key == key)
                        .options(selectinload(Product.images))
                    )
                    assert row is not None
                changed = row.fingerprint != fingerprint or not row.active
                row.last_seen, row.missed_runs, row.active = now, 0, True
                if not changed:
                    report.unchanged.append(row.id)
                    continue
                self._apply(row, item, fingerprint, now)
                added, removed = self._sync_images(session, row, item.images)
                report.updated.append(row.id)
                report.new_image_ids += added
                report.removed_image_ids += removed
        return report

    @staticmethod
    def _matching_products(
        session: Session, source_id: int, by_key: Mapping[str, ProductIn]
    ) -> dict[str, Product]:
        """The source's product for each key: the one with that key, else the one at the
        item's canonical URL unless its own key is among ``by_key`` (it is that item's)."""
        urls = {item.canonical_url: key for key, item in by_key.items()}
        query = (
            select(Product)
            .where(
                Product.source_id == source_id,
                Product.identity_key.in_(list(by_key)) | Product.canonical_url.in_(list(urls)),
            )
            .options(selectinload(Product.images))
        )
        found = list(session.scalars(query))
        matched = {row.identity_key: row for row in found if row.identity_key in by_key}
        for row in found:
            key = urls.get(row.canonical_url)
            if key is not None and key not in matched and row.identity_key not in by_key:
                matched[key] = row
        return matched

    @staticmethod
    def _product_fields(item: ProductIn) -> dict[str, Any]:
        return {
            "canonical_url": item.canonical_url,
            "identity_key": item.identity_key,
            "title": item.title,
            "external_id": item.external_id,
            "brand": item.brand,
            "price": item.price,
            "currency": item.currency,
            "category": item.category,
            "category_labels": list(item.category_labels),
            "attributes": dict(item.attributes),
        }

    def _insert_product(
        self, session: Session, source_id: int, item: ProductIn, fingerprint: str, now: datetime
    ) -> int | None:
        values = {
            "source_id": source_id,
            "fingerprint": fingerprint,
            "active": True,
            "missed_runs": 0,
            "first_seen": now,
            "last_seen": now,
            "updated_at": now,
            **self._product_fields(item),
        }
        stmt = (
            self._insert(Product)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["source_id", "identity_key"])
            .returning(Product.id)
        )
        return session.scalar(stmt)

    def _apply(self, row: Product, item: ProductIn, fingerprint: str, now: datetime) -> None:
        for key, value in self._product_fields(item).items():
            setattr(row, key, value)
        row.fingerprint = fingerprint
        row.updated_at = now

    def _sync_images(
        self, session: Session, row: Product, images: Sequence[ImageIn]
    ) -> tuple[list[int], list[int]]:
        wanted = {image.url: position for position, image in enumerate(images)}
        self._move_images(row, wanted)
        removed = []
        for image in row.images:
            should_be_active = image.url in wanted
            if image.active and not should_be_active:
                removed.append(image.id)
            if image.active != should_be_active:
                image.active = should_be_active
                if should_be_active and image.state is ImageState.DONE:
                    # Its points were dropped when it went inactive: index it again.
                    image.state = ImageState.PENDING
            if should_be_active:
                image.position = wanted[image.url]
        known = {image.url for image in row.images}
        added = self._add_images(session, row.id, [i for i in images if i.url not in known])
        return added, removed

    @staticmethod
    def _move_images(row: Product, wanted: Mapping[str, int]) -> None:
        """Give the product's images the new URLs of the same pictures (same path and query,
        another scheme, host or port), keeping their ingest state."""
        known = {image.url for image in row.images}
        new = {site_relative(url): url for url in wanted if url not in known}
        for image in sorted(row.images, key=lambda image: not image.active):
            if image.url not in wanted and (url := new.pop(site_relative(image.url), None)):
                image.url = url

    def _add_images(
        self, session: Session, product_id: int, images: Sequence[ImageIn], start: int = 0
    ) -> list[int]:
        ids: list[int] = []
        for offset, image in enumerate(images):
            stmt = (
                self._insert(ProductImage)
                .values(
                    product_id=product_id,
                    url=image.url,
                    view=image.view,
                    position=start + offset,
                    state=ImageState.PENDING,
                )
                .on_conflict_do_nothing(index_elements=["product_id", "url"])
                .returning(ProductImage.id)
            )
            image_id = session.scalar(stmt)
            if image_id is not None:
                ids.append(image_id)
        return ids

    def add_images(self, product_id: int, images: Sequence[ImageIn]) -> list[int]:
        """Add image URLs to a product as ``pending``; URLs it already has are skipped."""
        with self.writing() as session:
            if session.get(Product, product_id) is None:
                raise NotFoundError(f"no product {product_id}")
            count = session.scalar(
                select(func.count()).where(ProductImage.product_id == product_id)
            )
            return self._add_images(session, product_id, images, start=count or 0)

    def mark_unseen(
        self, source_id: int, *, seen_before: datetime, max_missed_runs: int
    ) -> list[int]:
        """After a full crawl: count a miss for products not seen since ``seen_before``.

        Products that missed ``max_missed_runs`` crawls in a row become inactive; their ids
        are returned so the index can drop them.
        """
        with self.writing() as session:
            stale = (Product.source_id == source_id) & (Product.last_seen < seen_before)
            session.execute(
                update(Product)
                .where(stale)
                .values(missed_runs=Product.missed_runs + 1)
                .execution_options(synchronize_session=False)
            )
            deactivated = session.scalars(
                update(Product)
                .where(stale, Product.active.is_(True), Product.missed_runs >= max_missed_runs)
                .values(active=False, updated_at=utcnow())
                .returning(Product.id)
                .execution_options(synchronize_session=False)
            ).all()
            return sorted(deactivated)

    def get_product(self, product_id: int) -> ProductOut:
        products = self.get_products([product_id])
        if product_id not in products:
            raise NotFoundError(f"no product {product_id}")
        return products[product_id]

    def get_products(self, product_ids: Sequence[int]) -> dict[int, ProductOut]:
        """Products by id with their images; unknown ids are simply absent."""
        if not product_ids:
            return {}
        query = (
            select(Product)
            .where(Product.id.in_(list(product_ids)))
            .options(selectinload(Product.images))
        )
        with self.reading() as session:
            return {row.id: ProductOut.model_validate(row) for row in session.scalars(query)}

    def get_product_by_url(self, canonical_url: str) -> ProductOut:
        query = (
            select(Product)
            .where(Product.canonical_url == canonical_url)
            .options(selectinload(Product.images))
        )
        with self.reading() as session:
            row = session.scalar(query)
            if row is None:
                raise NotFoundError(f"no product at {canonical_url}")
            return ProductOut.model_validate(row)

    def list_products(
        self,
        *,
        source_id: int | None = None,
        category: str | None = None,
        active: bool | None = True,
        limit: int = 100,
        offset: int = 0,
    ) -> list[ProductOut]:
        query = select(Product).options(selectinload(Product.images)).order_by(Product.id)
        if source_id is not None:
            query = query.where(Product.source_id == source_id)
        if category is not None:
            query = query.where(Product.category == category)
        if active is not None:
            query = query.where(Product.active.is_(active))
        with self.reading() as session:
            rows = session.scalars(query.limit(limit).offset(offset))
            return [ProductOut.model_validate(row) for row in rows]

    # -- image work queue ---------------------------------------------------------------------

    def claim_images(
        self, worker: str, *, limit: int = 1, image_ids: Sequence[int] | None = None
    ) -> list[ClaimedImage]:
        """Atomically move up to ``limit`` pending images to ``processing`` for ``worker``.

        Safe under concurrency: Postgres skips rows another transaction has locked
        (``FOR UPDATE SKIP LOCKED``); SQLite serialises writers (``BEGIN IMMEDIATE``). Two
        workers never get the same image. ``image_ids`` restricts the claim (a task naming its
        image); an image that is not pending any more is simply not returned.
        """
        pending = (ProductImage.state == ImageState.PENDING) & ProductImage.active.is_(True)
        pick: Select[int] = select(ProductImage.id).where(pending)
        if image_ids is not None:
            pick = pick.where(ProductImage.id.in_(list(image_ids)))
        pick = pick.order_by(ProductImage.id).limit(limit).with_for_update(skip_locked=True)
        with self.writing() as session:
            # Picked first, then updated, in one transaction: as a subquery of the UPDATE,
            # Postgres may run the pick more than once and claim more than ``limit`` rows.
            ids = list(session.scalars(pick))
            if not ids:
                return []
            rows = session.execute(self._claim_statement(ids, worker, pending)).all()
        claimed = [ClaimedImage.model_validate(row._mapping) for row in rows]
        return sorted(claimed, key=lambda image: image.id)

    @staticmethod
    def _claim_statement(ids: list[int], worker: str, pending: Any) -> Any:
        return (
            update(ProductImage)
            .where(ProductImage.id.in_(ids), pending)
            .values(
                state=ImageState.PROCESSING,
                claimed_by=worker,
                claimed_at=utcnow(),
                attempts=ProductImage.attempts + 1,
            )
            .returning(
                ProductImage.id,
                ProductImage.product_id,
                ProductImage.url,
                ProductImage.view,
                ProductImage.attempts,
            )
            .execution_options(synchronize_session=False)
        )

    def claim_image(self, image_id: int, worker: str) -> ClaimedImage | None:
        claimed = self.claim_images(worker, limit=1, image_ids=[image_id])
        return claimed[0] if claimed else None

    def record_image_done(self, image_id: int, result: ImageResult) -> list[int]:
        """Store what ingest found; replaces earlier crops, so re-running is harmless."""
        if image_id in self.record_images_done({image_id: result}):
            raise NotFoundError(f"no image {image_id}")
        with self.reading() as session:
            query = select(GarmentCrop.id).where(GarmentCrop.image_id == image_id)
            return list(session.scalars(query.order_by(GarmentCrop.id)))

    def record_images_done(self, results: Mapping[int, ImageResult]) -> list[int]:
        """:meth:`record_image_done` for many images in one transaction (an ingest chunk).

        Returns the ids among ``results`` that no longer exist (deleted meanwhile); the others
        are ``done`` with their crops."""
        if not results:
            return []
        with self.writing() as session:
            ids = sorted(results)
            images = {
                image.id: image
                for image in session.scalars(select(ProductImage).where(ProductImage.id.in_(ids)))
            }
            versions = {r.model_version for r in results.values() if r.model_version}
            named = select(ModelVersion.name, ModelVersion.id).where(
                ModelVersion.name.in_(sorted(versions))
            )
            model_ids = {name: model_id for name, model_id in session.execute(named)}
            present = sorted(images)
            session.execute(delete(GarmentCrop).where(GarmentCrop.image_id.in_(present)))
            now = utcnow()
            crops: list[GarmentCrop] = []
            for image_id in present:
                result, image = results[image_id], images[image_id]
                model_id = model_ids.get(result.model_version) if result.model_version else None
                crops += [
                    GarmentCrop(
                        image_id=image_id,
                        model_version_id=model_id,
                        x0=crop.box[0],
                        y0=crop.box[1],
                        x1=crop.box[2],
                        y1=crop.box[3],
                        category=crop.category,
                        score=crop.score,
                        point_id=crop.point_id,
                    )
                    for crop in result.crops
                ]
                image.state = ImageState.DONE
                image.error = None
                image.content_hash = result.content_hash
                image.width, image.height = result.width, result.height
                image.n_bytes = result.n_bytes
                image.processed_at = now
                image.claimed_by = image.claimed_at = None
            session.add_all(crops)
            return [image_id for image_id in ids if image_id not in images]

    def record_image_failed(
        self, image_id: int, reason: str, *, retryable: bool = False, max_attempts: int = 5
    ) -> ImageState:
        """Record a failure with its reason; a retryable one goes back to ``pending`` until
        ``max_attempts`` is reached. Returns the state the image is now in."""
        with self.writing() as session:
            image = session.get(ProductImage, image_id)
            if image is None:
                raise NotFoundError(f"no image {image_id}")
            retry = retryable and image.attempts < max_attempts
            image.state = ImageState.PENDING if retry else ImageState.FAILED
            image.error = reason[:2000]
            if not retry:
                image.processed_at = utcnow()
            image.claimed_by = image.claimed_at = None
            return image.state

    def claims_of(self, image_ids: Sequence[int]) -> dict[int, str | None]:
        """Who holds each of these images that is ``processing`` (others are absent)."""
        query = select(ProductImage.id, ProductImage.claimed_by).where(
            ProductImage.id.in_(list(image_ids)), ProductImage.state == ImageState.PROCESSING
        )
        with self.reading() as session:
            return {image_id: owner for image_id, owner in session.execute(query)}

    def release_claims(self, owners: Mapping[int, str]) -> list[int]:
        """Return images to ``pending`` if each is still ``processing`` under the given owner
        (a worker known to be dead); returns the ids released."""
        released: list[int] = []
        with self.writing() as session:
            for image_id, owner in owners.items():
                row = session.execute(
                    update(ProductImage)
                    .where(
                        ProductImage.id == image_id,
                        ProductImage.state == ImageState.PROCESSING,
                        ProductImage.claimed_by == owner,
                    )
                    .values(state=ImageState.PENDING, claimed_by=None, claimed_at=None)
                    .returning(ProductImage.id)
                    .execution_options(synchronize_session=False)
                ).scalar()
                if row is not None:
                    released.append(row)
        return sorted(released)

    def renew_claims(self, worker: str, image_ids: Sequence[int]) -> int:
        """A live worker's heartbeat: its claims on these images are fresh again (so that
        :meth:`requeue_stale` leaves them alone). Returns how many it still holds."""
        stmt = (
            update(ProductImage)
            .where(
                ProductImage.id.in_(list(image_ids)),
                ProductImage.state == ImageState.PROCESSING,
                ProductImage.claimed_by == worker,
            )
            .values(claimed_at=utcnow())
            .returning(ProductImage.id)
            .execution_options(synchronize_session=False)
        )
        with self.writing() as session:
            return len(session.scalars(stmt).all())

    def requeue_stale(self, *, older_than: timedelta) -> list[int]:
        """Return images whose claim was not renewed for ``older_than`` (their worker died)
        to ``pending``."""
        cutoff = utcnow() - older_than
        stmt = (
            update(ProductImage)
            .where(ProductImage.state == ImageState.PROCESSING, ProductImage.claimed_at < cutoff)
            .values(state=ImageState.PENDING, claimed_by=None, claimed_at=None)
            .returning(ProductImage.id)
            .execution_options(synchronize_session=False)
        )
        with self.writing() as session:
            return sorted(session.scalars(stmt).all())

    def pending_image_ids(self, *, limit: int = 1000, after_id: int = 0) -> list[int]:
        query = (
            select(ProductImage.id)
            .where(
                ProductImage.state == ImageState.PENDING,
                ProductImage.active.is_(True),
                ProductImage.id > after_id,
            )
            .order_by(ProductImage.id)
            .limit(limit)
        )
        with self.reading() as session:
            return list(session.scalars(query))

    def get_image(self, image_id: int) -> ImageOut:
        with self.reading() as session:
            image = session.get(ProductImage, image_id)
            if image is None:
                raise NotFoundError(f"no image {image_id}")
            return ImageOut.model_validate(image)

    def image_state_counts(self) -> dict[ImageState, int]:
        query = (
            select(ProductImage.state, func.count())
            .where(ProductImage.active.is_(True))
            .group_by(ProductImage.state)
        )
        counts = dict.fromkeys(ImageState, 0)
        with self.reading() as session:
            for state, count in session.execute(query):
                counts[ImageState(state)] = count
        return counts

    def categories(self) -> list[str]:
        """The shop categories of active products, A to Z (what a search can filter on)."""
        query = (
            select(Product.category)
            .where(Product.active.is_(True), Product.category.is_not(None))
            .group_by(Product.category)
            .order_by(Product.category)
        )
        with self.reading() as session:
            return [str(category) for category in session.scalars(query)]

    def ingest_progress(self, *, max_reasons: int = 10) -> IngestProgress:
        """Active images per state, the most common failure reasons (URLs folded), and the
        pace: when an image last finished and how many were indexed in the last minute."""
        active = ProductImage.active.is_(True)
        finished = ProductImage.state.in_([ImageState.DONE, ImageState.FAILED])
        since = utcnow() - timedelta(seconds=60)
        reasons: dict[str, int] = {}
        with self.reading() as session:
            failed = session.execute(
                select(ProductImage.error, func.count())
                .where(active, ProductImage.state == ImageState.FAILED)
                .group_by(ProductImage.error)
            )
            for error, count in failed:
                reason = _URL.sub("<url>", error or "unknown")
                reasons[reason] = reasons.get(reason, 0) + count
            last = session.scalar(select(func.max(ProductImage.processed_at)).where(finished))
            recent = session.scalar(
                select(func.count())
                .select_from(ProductImage)
                .where(ProductImage.state == ImageState.DONE, ProductImage.processed_at >= since)
            )
        top = sorted(reasons.items(), key=lambda item: (-item[1], item[0]))[:max_reasons]
        return IngestProgress(
            images=self.image_state_counts(),
            failure_reasons=dict(top),
            last_processed_at=_aware(last),
            indexed_last_minute=recent or 0,
        )

    def stats(self) -> CatalogStats:
        with self.reading() as session:
            sources = session.scalar(select(func.count()).select_from(Source)) or 0
            rows = session.execute(select(Product.active, func.count()).group_by(Product.active))
            by_active = {bool(active): count for active, count in rows}
        return CatalogStats(
            sources=sources,
            products_active=by_active.get(True, 0),
            products_inactive=by_active.get(False, 0),
            images=self.image_state_counts(),
        )

    # -- models and feedback ------------------------------------------------------------------

    def register_model_version(
        self, model: ModelVersionIn, *, activate: bool = False
    ) -> ModelVersionOut:
        """Record a model artifact (idempotent by name); ``activate`` makes it the one in use
        for its kind."""
        with self.writing() as session:
            row = session.scalar(select(ModelVersion).where(ModelVersion.name == model.name))
            if row is None:
                row = ModelVersion(**model.model_dump())
                session.add(row)
            if activate:
                session.execute(
                    update(ModelVersion)
                    .where(ModelVersion.kind == model.kind, ModelVersion.name != model.name)
                    .values(active=False)
                    .execution_options(synchronize_session=False)
                )
                row.active = True
            session.flush()
            return ModelVersionOut.model_validate(row)

    def active_model_version(self, kind: str) -> ModelVersionOut | None:
        query = select(ModelVersion).where(ModelVersion.kind == kind, ModelVersion.active)
        with self.reading() as session:
            row = session.scalar(query)
            return None if row is None else ModelVersionOut.model_validate(row)

    def record_feedback(self, event: FeedbackIn) -> int:
        with self.writing() as session:
            if session.get(Product, event.product_id) is None:
                raise NotFoundError(f"no product {event.product_id}")
            row = FeedbackEvent(**event.model_dump())
            session.add(row)
            session.flush()
            return row.id

    # -- analysts -------------------------------------------------------------------------------

    def run_query(
        self, sql: str, params: dict[str, Any] | None = None, *, max_rows: int = 10_000
    ) -> list[dict[str, Any]]:
        """Run one read-only SQL statement with bound ``:name`` parameters.

        Refuses anything but a single SELECT/WITH/EXPLAIN/VALUES statement, and runs it in a
        read-only transaction (Postgres ``READ ONLY``, SQLite ``query_only``), so a data-
        modifying CTE or function is refused by the database itself. Raises
        :class:`ReadOnlyQueryError` for writes and :class:`InvalidInputError` for bad SQL,
        missing parameters, or more than ``max_rows`` rows.
        """
        statement = _single_statement(sql)
        keyword = statement.split(None, 1)[0].lower() if statement else ""
        if keyword not in _READ_KEYWORDS:
            raise ReadOnlyQueryError(
                f"only read queries are allowed (SELECT, WITH, EXPLAIN, VALUES), got {keyword!r}"
            )
        with self.engine.connect() as conn:
            try:
                if self.dialect == "postgresql":
                    conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                    conn.exec_driver_sql("SET LOCAL statement_timeout = '60s'")
                else:
                    conn.exec_driver_sql("PRAGMA query_only = ON")
                try:
                    result = conn.execute(text(statement), params or {})
                    rows = result.fetchmany(max_rows + 1) if result.returns_rows else []
                finally:
                    conn.rollback()
                    if self.dialect == "sqlite":
                        conn.exec_driver_sql("PRAGMA query_only = OFF")
            except StatementError as exc:
                if isinstance(exc, DBAPIError):
                    raise _query_error(exc) from exc
                raise InvalidInputError(f"query could not be run: {exc.orig or exc}") from exc
            except SQLAlchemyError as exc:
                raise InvalidInputError(f"query could not be run: {exc}") from exc
        if len(rows) > max_rows:
            raise InvalidInputError(f"query returned more than {max_rows} rows; add a LIMIT")
        return [dict(row._mapping) for row in rows]

    # -- helpers -----------------------------------------------------------------------------

    def _insert(self, model: type[Any]) -> Any:
        dialect = postgresql if self.dialect == "postgresql" else sqlite
        return dialect.insert(model)


def _query_error(exc: DBAPIError) -> InvalidInputError:
    message = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate == _PG_READ_ONLY_VIOLATION or "readonly" in message or "read-only" in message:
        return ReadOnlyQueryError(f"query tried to write: {message}")
    return InvalidInputError(f"query failed: {message}")


_TOKEN = re.compile(
    r"""
      '(?:[^']|'')*'         # string literal
    | "(?:[^"]|"")*"         # quoted identifier
    | \$(\w*)\$.*?\$\1\$     # Postgres dollar-quoted string
    | --[^\n]*               # line comment
    | /\*.*?\*/              # block comment
    | ;                      # statement separator
    | [^'"$;/-]+ | .         # anything else
    """,
    re.VERBOSE | re.DOTALL,
)


def _single_statement(sql: str) -> str:
    """The statement without comments or a trailing ``;``; refuses several statements."""
    parts: list[str] = []
    ended = False
    for match in _TOKEN.finditer(sql):
        piece = match.group(0)
        if piece.startswith(("--", "/*")):
            parts.append(" ")
            continue
        if piece == ";":
            ended = True
            continue
        if ended and piece.strip():
            raise ReadOnlyQueryError("only one SQL statement may be run at a time")
        parts.append(piece)
    return "".join(parts).strip()
