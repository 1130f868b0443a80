"""Product images as a work queue (claims, leases, outcomes) and where ingest stands."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, delete, exists, func, select, update

from shared.db.models import (
    GarmentCrop,
    ImageState,
    ModelVersion,
    Product,
    ProductImage,
    utcnow,
)
from shared.db.schemas import (
    ClaimedImage,
    ImageOut,
    ImageResult,
    IngestProgress,
)
from shared.db.store import Store
from shared.errors import NotFoundError

_URL = re.compile(r"https?://\S+")
"""URLs in failure reasons: ``ingest_progress`` groups reasons without them."""


class ImagesRepository(Store):
    """Product images as a work queue (claims, leases, outcomes) and where ingest stands."""

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
                        garment=crop.garment,
                        garment_p=crop.garment_p,
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

    def untouched_pending(self, *, older_than: timedelta, limit: int = 20_000) -> list[int]:
        """Active pending images nobody touched for ``older_than`` (their message was lost)."""
        cutoff = utcnow() - older_than
        query = (
            select(ProductImage.id)
            .where(
                ProductImage.state == ImageState.PENDING,
                ProductImage.active.is_(True),
                ProductImage.updated_at < cutoff,
            )
            .order_by(ProductImage.id)
            .limit(limit)
        )
        with self.reading() as session:
            return list(session.scalars(query))

    def images_without_crops_of(
        self,
        model_version_id: int,
        *,
        embedded_since: datetime | None = None,
        after_id: int = 0,
        limit: int = 1000,
    ) -> list[int]:
        """Done, active images with no crop embedded by this model version (since
        ``embedded_since``, when given), by id: what a reindex still has to embed."""
        condition = and_(
            GarmentCrop.image_id == ProductImage.id,
            GarmentCrop.model_version_id == model_version_id,
        )
        if embedded_since is not None:
            condition = and_(condition, GarmentCrop.created_at >= embedded_since)
        query = (
            select(ProductImage.id)
            .where(
                ProductImage.state == ImageState.DONE,
                ProductImage.active.is_(True),
                ProductImage.id > after_id,
                ~exists().where(condition),
            )
            .order_by(ProductImage.id)
            .limit(limit)
        )
        with self.reading() as session:
            return list(session.scalars(query))

    def requeue_done(self, image_ids: Sequence[int]) -> None:
        """Send done images back to ``pending`` (embedded by a model that is no longer active)."""
        with self.writing() as session:
            session.execute(
                update(ProductImage)
                .where(ProductImage.id.in_(list(image_ids)), ProductImage.state == ImageState.DONE)
                .values(state=ImageState.PENDING)
                .execution_options(synchronize_session=False)
            )

    def images_as_claims(self, image_ids: Sequence[int]) -> list[ClaimedImage]:
        """These images in the shape a claim has, without claiming them (a reindex embeds
        done images again), by id."""
        query = select(
            ProductImage.id,
            ProductImage.product_id,
            ProductImage.url,
            ProductImage.view,
            ProductImage.attempts,
        ).where(ProductImage.id.in_(list(image_ids)))
        with self.reading() as session:
            images = [ClaimedImage.model_validate(row._mapping) for row in session.execute(query)]
        return sorted(images, key=lambda image: image.id)

    def crop_point_ids(self, image_ids: Sequence[int], model_version: str) -> list[str]:
        """Index point ids of the crops recorded for these images by this model version."""
        query = (
            select(GarmentCrop.point_id)
            .join(ModelVersion, GarmentCrop.model_version_id == ModelVersion.id)
            .where(GarmentCrop.image_id.in_(list(image_ids)), ModelVersion.name == model_version)
        )
        with self.reading() as session:
            return [point for point in session.scalars(query) if point]

    def searchable_images(self, image_ids: Sequence[int]) -> set[int]:
        """Those of these images whose points belong in the index (active, not failed)."""
        query = select(ProductImage.id).where(
            ProductImage.id.in_(list(image_ids)),
            ProductImage.active.is_(True),
            ProductImage.state != ImageState.FAILED,
        )
        with self.reading() as session:
            return set(session.scalars(query))

    def changed_since(self, since: datetime | None) -> tuple[list[int], list[int]]:
        """Products changed since ``since`` and images that became inactive since then; with
        ``since=None``: every inactive product and every inactive image (what the index must
        be reconciled with when a sync message may have been lost)."""
        products = select(Product.id)
        images = select(ProductImage.id).where(ProductImage.active.is_(False))
        if since is None:
            products = products.where(Product.active.is_(False))
        else:
            products = products.where(Product.updated_at >= since)
            images = images.where(ProductImage.updated_at >= since)
        with self.reading() as session:
            return list(session.scalars(products)), list(session.scalars(images))

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
            waiting_since = session.scalar(
                select(func.min(ProductImage.updated_at)).where(
                    active,
                    ProductImage.state.in_([ImageState.PENDING, ImageState.PROCESSING]),
                )
            )
            recent = session.scalar(
                select(func.count())
                .select_from(ProductImage)
                .where(ProductImage.state == ImageState.DONE, ProductImage.processed_at >= since)
            )
        top = sorted(reasons.items(), key=lambda item: (-item[1], item[0]))[:max_reasons]
        return IngestProgress(
            images=self.image_state_counts(),
            failure_reasons=dict(top),
            last_processed_at=last,
            waiting_since=waiting_since,
            indexed_last_minute=recent or 0,
        )
