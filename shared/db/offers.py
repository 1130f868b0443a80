"""One product across shops: offer groups of products that share a GTIN, or an MPN and brand.

Grouping is incremental: :func:`group_products` reads the identifiers of the products just
written (:mod:`shared.product_codes`, from their ``gtin`` and ``mpn`` attributes), stores them
in ``product_codes`` and merges each ungrouped product with the other shops' products that
share one. Rules:

- a group holds at most one product per shop. Two products of one shop with the same GTIN
  (a shop listing one item twice) are never merged with each other, and only the first to be
  grouped joins another shop's product; the second stays on its own, and this is logged;
- a product joins the oldest group it can; two groups are never merged into one (a product
  sharing codes with both joins one of them), so one wrong identifier cannot chain groups;
- each member keeps its evidence: the identifier, the product it matched and when;
- a split (``lookalike offers split``) detaches a product and remembers the identifiers it
  shared with the group: it is never merged on them again. Its former group is rebuilt from
  the remaining products' evidence;
- a product whose identifiers change leaves its group, which is rebuilt likewise.

On Postgres the grouping part of a write takes a transaction-level advisory lock, so two
shops written at once see each other's products (and never make two groups of one product).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import ColumnElement, and_, delete, exists, func, select, text, tuple_
from sqlalchemy.orm import Session, aliased

from shared.db.models import (
    OfferGroup,
    OfferMember,
    OfferSplit,
    Product,
    ProductCode,
    Source,
    utcnow,
)
from shared.db.schemas import GroupingReport, OfferGroupOut, OfferOut, OfferSplitOut
from shared.db.store import Store
from shared.errors import InvalidInputError, NotFoundError
from shared.product_codes import Code, CodeKind, product_codes

log = logging.getLogger(__name__)

GROUPING_LOCK = 0x4C4B_4F46  # "LKOF": the advisory lock of offer grouping
_BATCH = 500


def _chunks(ids: Sequence[int]) -> Iterable[list[int]]:
    for start in range(0, len(ids), _BATCH):
        yield list(ids[start : start + _BATCH])


def _lock(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": GROUPING_LOCK})


def refresh_codes(session: Session, product_ids: Sequence[int]) -> set[int]:
    """Store the identifiers of these products as their attributes give them now; the ids of
    those whose identifiers changed. Identifiers that cannot be merged on are logged."""
    changed: set[int] = set()
    for chunk in _chunks(sorted(set(product_ids))):
        rows = session.execute(
            select(Product.id, Product.brand, Product.attributes).where(Product.id.in_(chunk))
        ).all()
        stored: dict[int, set[Code]] = {}
        for pid, kind, value in session.execute(
            select(ProductCode.product_id, ProductCode.kind, ProductCode.value).where(
                ProductCode.product_id.in_(chunk)
            )
        ):
            stored.setdefault(pid, set()).add(Code(cast(CodeKind, kind), value))
        for pid, brand, attributes in rows:
            wanted, rejected = product_codes(brand, attributes or {})
            for bad in rejected:
                log.info(
                    "product %d: %s %r not merged on: %s", pid, bad.kind, bad.given, bad.reason
                )
            have = stored.get(pid, set())
            if wanted == have:
                continue
            changed.add(pid)
            for code in have - wanted:
                session.execute(
                    delete(ProductCode).where(
                        ProductCode.product_id == pid,
                        ProductCode.kind == code.kind,
                        ProductCode.value == code.value,
                    )
                )
            session.add_all(
                ProductCode(product_id=pid, kind=code.kind, value=code.value)
                for code in sorted(wanted - have)
            )
    session.flush()
    return changed


def group_products(
    session: Session, product_ids: Sequence[int], *, now: datetime | None = None
) -> GroupingReport:
    """Read these products' identifiers and group them with other shops' products (see the
    module's rules), in the caller's transaction."""
    now = now or utcnow()
    report = GroupingReport(products=len(set(product_ids)))
    if not product_ids:
        return report
    changed = refresh_codes(session, product_ids)
    pending: set[int] = set()
    for chunk in _chunks(sorted(set(product_ids))):
        pending.update(
            session.scalars(
                select(ProductCode.product_id).where(ProductCode.product_id.in_(chunk)).distinct()
            )
        )
    if not pending and not changed:
        return report  # nothing to merge on: no lock taken
    _lock(session)
    moved = session.scalars(
        select(OfferMember.group_id).where(OfferMember.product_id.in_(sorted(changed))).distinct()
    ).all()
    for group_id in sorted(moved):
        pending |= _dissolve(session, group_id)
        report.groups_dissolved.append(group_id)
    _merge(session, sorted(pending), now, report)
    return report


def forget_source(session: Session, source_id: int) -> None:
    """Before a source's products are deleted: the groups they are in are rebuilt from the
    other shops' products, on their own evidence (a group of two dissolves)."""
    groups = session.scalars(
        select(OfferMember.group_id).where(OfferMember.source_id == source_id).distinct()
    ).all()
    if not groups:
        return
    _lock(session)
    pending: set[int] = set()
    for group_id in sorted(groups):
        pending |= _dissolve(session, group_id)
    theirs = select(Product.id).where(Product.source_id == source_id)
    session.execute(delete(ProductCode).where(ProductCode.product_id.in_(theirs)))
    others = session.scalars(
        select(Product.id).where(Product.id.in_(sorted(pending)), Product.source_id != source_id)
    ).all()
    _merge(session, sorted(others), utcnow(), GroupingReport(products=len(others)))


def _dissolve(session: Session, group_id: int) -> set[int]:
    """Delete the group; its former members' ids."""
    members = set(
        session.scalars(select(OfferMember.product_id).where(OfferMember.group_id == group_id))
    )
    session.execute(delete(OfferMember).where(OfferMember.group_id == group_id))
    session.execute(delete(OfferGroup).where(OfferGroup.id == group_id))
    return members


def _with_matches(session: Session, product_ids: Sequence[int]) -> list[int]:
    """Those of ``product_ids`` that share a code (none a split refused) with another shop's
    product: the only ones worth a closer look (one query per chunk, so that writing a shop
    whose codes no other shop has costs little)."""
    mine, other = aliased(ProductCode), aliased(ProductCode)
    mine_product, other_product = aliased(Product), aliased(Product)
    found: list[int] = []
    for chunk in _chunks(sorted(set(product_ids))):
        query = (
            select(mine.product_id)
            .join(other, and_(other.kind == mine.kind, other.value == mine.value))
            .join(mine_product, mine_product.id == mine.product_id)
            .join(other_product, other_product.id == other.product_id)
            .where(
                mine.product_id.in_(chunk),
                other_product.source_id != mine_product.source_id,
                _not_split(mine),
                _not_split(other),
            )
            .distinct()
        )
        found += session.scalars(query)
    return sorted(found)


def _merge(
    session: Session, product_ids: Sequence[int], now: datetime, report: GroupingReport
) -> None:
    for pid in _with_matches(session, product_ids):
        me = session.execute(
            select(Product.source_id, OfferMember.group_id)
            .outerjoin(OfferMember, OfferMember.product_id == Product.id)
            .where(Product.id == pid)
        ).one_or_none()
        if me is None or me.group_id is not None:
            continue  # gone, or grouped already
        source_id = me.source_id
        mine = _usable_codes(session, pid)
        if not mine:
            continue
        candidates = _candidates(session, pid, source_id, mine)
        if not candidates:
            continue
        groups = sorted({c[3] for c in candidates if c[3] is not None})
        joined = False
        for group_id in groups:
            taken = session.scalar(
                select(OfferMember.product_id).where(
                    OfferMember.group_id == group_id, OfferMember.source_id == source_id
                )
            )
            if taken is not None:
                log.info(
                    "product %d not merged into offer group %d: it has product %d of the same "
                    "shop already",
                    pid,
                    group_id,
                    taken,
                )
                continue
            kind, value, matched = next((c[1], c[2], c[0]) for c in candidates if c[3] == group_id)
            _add_member(session, group_id, pid, source_id, kind, value, matched, now)
            report.merged.append(pid)
            joined = True
            break
        if joined or groups:
            continue  # joined one, or every group that shares a code has this shop already
        loose: dict[int, tuple[int, str, str]] = {}  # shop -> its first ungrouped match
        for matched, kind, value, their_group, shop in candidates:
            if their_group is None and shop not in loose:
                loose[shop] = (matched, kind, value)
        if not loose:
            continue
        group = OfferGroup(created_at=now)
        session.add(group)
        session.flush()
        first = min(loose.values(), key=lambda c: (c[1] != "gtin", c[0]))
        _add_member(session, group.id, pid, source_id, first[1], first[2], first[0], now)
        for shop, (matched, kind, value) in sorted(loose.items()):
            _add_member(session, group.id, matched, shop, kind, value, pid, now)
            report.merged.append(matched)
        report.merged.append(pid)
        report.groups_made.append(group.id)


def _add_member(
    session: Session,
    group_id: int,
    product_id: int,
    source_id: int,
    kind: str,
    value: str,
    matched: int,
    now: datetime,
) -> None:
    session.add(
        OfferMember(
            product_id=product_id,
            group_id=group_id,
            source_id=source_id,
            kind=kind,
            value=value,
            matched_product_id=matched,
            merged_at=now,
        )
    )
    session.flush()


def _not_split(code: type[ProductCode]) -> ColumnElement[bool]:
    return ~exists().where(
        OfferSplit.product_id == code.product_id,
        OfferSplit.kind == code.kind,
        OfferSplit.value == code.value,
    )


def _usable_codes(session: Session, product_id: int) -> list[tuple[str, str]]:
    """The product's identifiers, less those a split refused."""
    rows = session.execute(
        select(ProductCode.kind, ProductCode.value).where(
            ProductCode.product_id == product_id, _not_split(ProductCode)
        )
    ).all()
    return [(kind, value) for kind, value in rows]


def _candidates(
    session: Session, product_id: int, source_id: int, codes: Sequence[tuple[str, str]]
) -> list[tuple[int, str, str, int | None, int]]:
    """Other shops' products sharing one of ``codes`` (none a split refused): ``(product id,
    kind, value, its group or None, its source id)``, GTIN matches first, then by product id."""
    other = aliased(ProductCode)
    query = (
        select(other.product_id, other.kind, other.value, OfferMember.group_id, Product.source_id)
        .join(Product, Product.id == other.product_id)
        .outerjoin(OfferMember, OfferMember.product_id == other.product_id)
        .where(
            tuple_(other.kind, other.value).in_(list(codes)),
            other.product_id != product_id,
            Product.source_id != source_id,
            _not_split(other),
        )
    )
    rows = [(r[0], r[1], r[2], r[3], r[4]) for r in session.execute(query)]
    return sorted(rows, key=lambda r: (r[1] != "gtin", r[0]))


def _offers(session: Session, where: ColumnElement[bool]) -> dict[int, list[OfferOut]]:
    """Offers by group id, cheapest first."""
    query = (
        select(OfferMember, Product, Source.name)
        .join(Product, Product.id == OfferMember.product_id)
        .join(Source, Source.id == Product.source_id)
        .where(where)
        .order_by(OfferMember.group_id, Product.price.is_(None), Product.price, Product.id)
    )
    found: dict[int, list[OfferOut]] = {}
    for member, product, shop in session.execute(query):
        found.setdefault(member.group_id, []).append(
            OfferOut(
                product_id=product.id,
                shop=shop,
                title=product.title,
                url=product.canonical_url,
                price=product.price,
                currency=product.currency,
                active=product.active,
                kind=member.kind,
                value=member.value,
                matched_product_id=member.matched_product_id,
                merged_at=member.merged_at,
            )
        )
    return found


class OffersRepository(Store):
    """Offer groups: one product across shops, with the evidence of each merge."""

    def group_offers(self, product_ids: Sequence[int] | None = None) -> GroupingReport:
        """The upkeep step: read the identifiers of ``product_ids`` (``None``: every product)
        and group them; groups left with fewer than two products are dissolved."""
        with self.writing() as session:
            if product_ids is None:
                product_ids = list(session.scalars(select(Product.id).order_by(Product.id)))
            report = GroupingReport(products=0)
            for chunk in _chunks(list(product_ids)):
                part = group_products(session, chunk)
                report.products += part.products
                report.merged += part.merged
                report.groups_made += part.groups_made
                report.groups_dissolved += part.groups_dissolved
            lonely = session.scalars(
                select(OfferGroup.id)
                .outerjoin(OfferMember, OfferMember.group_id == OfferGroup.id)
                .group_by(OfferGroup.id)
                .having(func.count(OfferMember.product_id) < 2)
            ).all()
            for group_id in lonely:
                _dissolve(session, group_id)
                report.groups_dissolved.append(group_id)
            return report

    def list_offer_groups(self, *, limit: int = 1000, offset: int = 0) -> list[OfferGroupOut]:
        """Offer groups, oldest first, each with its offers."""
        with self.reading() as session:
            groups = session.execute(
                select(OfferGroup.id, OfferGroup.created_at)
                .order_by(OfferGroup.id)
                .limit(limit)
                .offset(offset)
            ).all()
            offers = _offers(session, OfferMember.group_id.in_([g.id for g in groups]))
        return [
            OfferGroupOut(id=g.id, created_at=g.created_at, offers=offers.get(g.id, []))
            for g in groups
        ]

    def offer_group(self, group_id: int) -> OfferGroupOut:
        with self.reading() as session:
            group = session.get(OfferGroup, group_id)
            if group is None:
                raise NotFoundError(f"no offer group {group_id}")
            offers = _offers(session, OfferMember.group_id == group_id)
            return OfferGroupOut(
                id=group.id, created_at=group.created_at, offers=offers.get(group_id, [])
            )

    def offers_of(
        self, product_ids: Iterable[int], *, shops: Sequence[str] | None = None
    ) -> dict[int, OfferGroupOut]:
        """For each of ``product_ids`` in an offer group: the group with its active offers
        (of ``shops`` only, when given), the product's own included."""
        ids = sorted({int(i) for i in product_ids})
        if not ids:
            return {}
        with self.reading() as session:
            by_product = dict(
                session.execute(
                    select(OfferMember.product_id, OfferMember.group_id).where(
                        OfferMember.product_id.in_(ids)
                    )
                ).all()
            )
            if not by_product:
                return {}
            where = and_(
                OfferMember.group_id.in_(sorted(set(by_product.values()))),
                Product.active.is_(True),
            )
            if shops is not None:
                where = and_(where, Source.name.in_(list(shops)))
            offers = _offers(session, where)
            made = dict(
                session.execute(
                    select(OfferGroup.id, OfferGroup.created_at).where(
                        OfferGroup.id.in_(sorted(set(by_product.values())))
                    )
                ).all()
            )
        return {
            pid: OfferGroupOut(id=gid, created_at=made[gid], offers=offers.get(gid, []))
            for pid, gid in by_product.items()
        }

    def split_offer(self, product_id: int) -> OfferSplitOut:
        """Detach the product from its offer group: it is never merged again on the identifiers
        it shares with the group's other products; the rest of the group is regrouped on its
        own evidence. Unknown product, or one in no group: an error saying so."""
        with self.writing() as session:
            _lock(session)
            if session.get(Product, product_id) is None:
                raise NotFoundError(f"no product {product_id}")
            group_id = session.scalar(
                select(OfferMember.group_id).where(OfferMember.product_id == product_id)
            )
            if group_id is None:
                raise InvalidInputError(f"product {product_id} is in no offer group")
            others = sorted(_dissolve(session, group_id) - {product_id})
            mine = set(_usable_codes(session, product_id))
            shared = sorted(
                {
                    (kind, value)
                    for kind, value in session.execute(
                        select(ProductCode.kind, ProductCode.value).where(
                            ProductCode.product_id.in_(others)
                        )
                    )
                }
                & mine
            )
            now = utcnow()
            session.add_all(
                OfferSplit(
                    product_id=product_id, kind=kind, value=value, group_id=group_id, created_at=now
                )
                for kind, value in shared
            )
            session.flush()
            report = GroupingReport(products=len(others))
            _merge(session, others, now, report)
            log.info(
                "product %d split from offer group %d; refused from now: %s",
                product_id,
                group_id,
                ", ".join(f"{k} {v}" for k, v in shared),
            )
            return OfferSplitOut(
                product_id=product_id,
                group_id=group_id,
                codes=[f"{kind} {value}" for kind, value in shared],
                regrouped=report.groups_made,
            )
