"""Products: upserted by identity, read one or many, what searches filter on."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, selectinload

from shared.db.models import (
    ImageState,
    Product,
    ProductImage,
    Source,
    utcnow,
)
from shared.db.schemas import (
    Facets,
    ImageIn,
    ProductIn,
    ProductOut,
    UpsertReport,
    site_relative,
)
from shared.db.store import Store
from shared.errors import InvalidInputError, NotFoundError


class ProductsRepository(Store):
    """Products: upserted by identity, read one or many, what searches filter on."""

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
        their points). Running the same batch twice changes nothing the second time. The
        products of a disabled source are written inactive.
        """
        now = seen_at or utcnow()
        report = UpsertReport()
        by_key: dict[str, ProductIn] = {item.identity_key: item for item in items}
        with self.writing() as session:
            # Locked against a disable in flight: a disabled source's products stay inactive.
            enabled = bool(
                session.scalar(
                    select(Source.enabled).where(Source.id == source_id).with_for_update()
                )
            )
            rows = self._matching_products(session, source_id, by_key)
            # Known products first: one moving off a URL frees it for a new one.
            for key in sorted(by_key, key=lambda key: key not in rows):
                item = by_key[key]
                fingerprint = item.fingerprint()
                active = enabled and item.available
                row = rows.get(key)
                if row is None:
                    product_id = self._insert_product(
                        session, source_id, item, fingerprint, now, active=active
                    )
                    if product_id is not None:
                        report.created.append(product_id)
                        report.new_image_ids += self._add_images(session, product_id, item.images)
                        continue
                    row = session.scalar(  # another writer inserted it since our SELECT
                        select(Product)
                        .where(Product.source_id == source_id, Product.identity_key == key)
                        .options(selectinload(Product.images))
                    )
                    if row is None:
                        raise InvalidInputError(
                            f"{item.canonical_url} is already the URL of another product"
                        )
                changed = row.fingerprint != fingerprint or row.active != active
                row.last_seen, row.missed_runs, row.active = now, 0, active
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
        self,
        session: Session,
        source_id: int,
        item: ProductIn,
        fingerprint: str,
        now: datetime,
        *,
        active: bool,
    ) -> int | None:
        values = {
            "source_id": source_id,
            "fingerprint": fingerprint,
            "active": active,
            "missed_runs": 0,
            "first_seen": now,
            "last_seen": now,
            "updated_at": now,
            **self._product_fields(item),
        }
        stmt = (
            self._insert(Product)
            .values(**values)
            # Any unique key: two writers inserting the same product at once can collide on its
            # identity or on its URL first (Postgres raises for a key that is not the target).
            .on_conflict_do_nothing()
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

    def active_product_ids(self, product_ids: Iterable[int]) -> set[int]:
        """Those of ``product_ids`` the catalog shows as active now."""
        ids = sorted({int(i) for i in product_ids})
        if not ids:
            return set()
        query = select(Product.id).where(Product.id.in_(ids), Product.active.is_(True))
        with self.reading() as session:
            return set(session.scalars(query))

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

    def categories(self, *, shops: Sequence[str] | None = None) -> list[str]:
        """The shop categories of active products, A to Z (what a search can filter on);
        with ``shops``, of those shops' (source names) products only."""
        query = (
            select(Product.category)
            .where(Product.active.is_(True), Product.category.is_not(None))
            .group_by(Product.category)
            .order_by(Product.category)
        )
        if shops is not None:
            query = query.where(_of_shops(shops))
        with self.reading() as session:
            return [str(category) for category in session.scalars(query)]

    def product_shops(self, product_ids: Iterable[int]) -> dict[int, str]:
        """The shop (source name) of each of ``product_ids`` the catalog has."""
        ids = sorted({int(i) for i in product_ids})
        if not ids:
            return {}
        query = (
            select(Product.id, Source.name)
            .join(Source, Source.id == Product.source_id)
            .where(Product.id.in_(ids))
        )
        with self.reading() as session:
            return {int(pid): str(name) for pid, name in session.execute(query)}

    def facets(self, *, max_brands: int = 500, shops: Sequence[str] | None = None) -> Facets:
        """Distinct categories and brands of active products, their most common currency and
        the price range in it; with ``shops``, of those shops' (source names) products only."""
        active = Product.active.is_(True)
        if shops is not None:
            active = active & _of_shops(shops)
        with self.reading() as session:
            brands = session.scalars(
                select(Product.brand)
                .where(active, Product.brand.is_not(None))
                .group_by(Product.brand)
                .order_by(Product.brand)
                .limit(max_brands)
            ).all()
            currency = session.scalar(
                select(Product.currency)
                .where(active, Product.currency.is_not(None))
                .group_by(Product.currency)
                .order_by(func.count().desc(), Product.currency)
                .limit(1)
            )
            low, high = session.execute(
                select(func.min(Product.price), func.max(Product.price)).where(
                    active, Product.currency == currency
                )
            ).one()
        return Facets(
            categories=self.categories(shops=shops),
            brands=[str(brand) for brand in brands],
            currency=currency,
            min_price=float(low) if low is not None else None,
            max_price=float(high) if high is not None else None,
        )


def _of_shops(shops: Sequence[str]) -> Any:
    """Products of these shops (source names)."""
    return Product.source_id.in_(select(Source.id).where(Source.name.in_(list(shops))))
