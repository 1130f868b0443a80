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

from sqlalchemy import ColumnElement, and_, delete, exists, func, select, text
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
    """Group each ungrouped product of ``product_ids`` (in id order) by the module's rules."""
    for chunk in _chunks(_with_matches(session, product_ids)):
        _merge_chunk(session, chunk, now, report)


def _merge_chunk(
    session: Session, product_ids: list[int], now: datetime, report: GroupingReport
) -> None:
    """:func:`_merge` of one chunk: read in three queries, decided here, written at once.
    Groups are keyed by id; the ones made here by -1, -2 ... until they are inserted."""
    mine, other = aliased(ProductCode), aliased(ProductCode)
    my_product, other_product = aliased(Product), aliased(Product)
    other_member = aliased(OfferMember)
    rows = session.execute(
        select(
            mine.product_id,
            my_product.source_id,
            other.product_id,
            other.kind,
            other.value,
            other_member.group_id,
            other_product.source_id,
        )
        .join(other, and_(other.kind == mine.kind, other.value == mine.value))
        .join(my_product, my_product.id == mine.product_id)
        .join(other_product, other_product.id == other.product_id)
        .outerjoin(other_member, other_member.product_id == other.product_id)
        .where(
            mine.product_id.in_(product_ids),
            other_product.source_id != my_product.source_id,
            _not_split(mine),
            _not_split(other),
        )
    ).all()
    source_of: dict[int, int] = {}
    group_of: dict[int, int] = {}
    candidates: dict[int, list[tuple[str, str, int]]] = {}  # pid -> (kind, value, other pid)
    for pid, source_id, theirs, kind, value, their_group, their_source in rows:
        source_of[pid], source_of[theirs] = source_id, their_source
        if their_group is not None:
            group_of[theirs] = their_group
        candidates.setdefault(pid, []).append((kind, value, theirs))
    for pid, group_id in session.execute(
        select(OfferMember.product_id, OfferMember.group_id).where(
            OfferMember.product_id.in_(product_ids)
        )
    ):
        group_of[pid] = group_id
    shops_in: dict[int, dict[int, int]] = {}  # group -> shop -> its product
    for group_id, shop, member in session.execute(
        select(OfferMember.group_id, OfferMember.source_id, OfferMember.product_id).where(
            OfferMember.group_id.in_(sorted(set(group_of.values())))
        )
    ):
        shops_in.setdefault(group_id, {})[shop] = member
    added: list[tuple[int, int, str, str, int]] = []  # (group, product, kind, value, matched)

    def join(group_id: int, pid: int, kind: str, value: str, matched: int) -> None:
        group_of[pid] = group_id
        shops_in.setdefault(group_id, {})[source_of[pid]] = pid
        added.append((group_id, pid, kind, value, matched))
        report.merged.append(pid)

    made = 0
    for pid in product_ids:
        if pid in group_of or pid not in candidates:
            continue  # grouped already (before, or earlier in this chunk)
        found = sorted(set(candidates[pid]), key=lambda c: (c[0] != "gtin", c[2]))
        groups = sorted(
            {group_of[c[2]] for c in found if c[2] in group_of}, key=lambda g: (g < 0, abs(g))
        )
        for group_id in groups:
            taken = shops_in.get(group_id, {}).get(source_of[pid])
            if taken is None:
                kind, value, matched = next(c for c in found if group_of.get(c[2]) == group_id)
                join(group_id, pid, kind, value, matched)
                break
            log.info(
                "product %d not merged into offer group %s: it has product %d of the same shop "
                "already",
                pid,
                group_id if group_id > 0 else "(new)",
                taken,
            )
        if groups:
            continue  # joined one, or every group that shares a code has this shop already
        loose: dict[int, tuple[str, str, int]] = {}  # shop -> its first ungrouped match
        for kind, value, theirs in found:
            loose.setdefault(source_of[theirs], (kind, value, theirs))
        made += 1
        kind, value, matched = found[0]
        join(-made, pid, kind, value, matched)
        for _shop, (kind, value, theirs) in sorted(loose.items()):
            join(-made, theirs, kind, value, pid)
    if not added:
        return
    new_groups = [OfferGroup(created_at=now) for _ in range(made)]
    session.add_all(new_groups)
    session.flush()
    real = {-(n + 1): group.id for n, group in enumerate(new_groups)}
    report.groups_made += [group.id for group in new_groups]
    session.add_all(
        OfferMember(
            product_id=pid,
            group_id=real.get(group_id, group_id),
            source_id=source_of[pid],
            kind=kind,
            value=value,
            matched_product_id=matched,
            merged_at=now,
        )
        for group_id, pid, kind, value, matched in added
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
