""" "Based on what you viewed" on ``POST /recommend`` (``viewed``, ``not_for_me``): the
products named checked against the catalog and the shops searched, and the recommender's
session query, each view's weight decayed by its age (``gateway.session_half_life_h``).
:meth:`RecommendPipeline.from_session` runs it (the recommender's
:mod:`services.recommender.sessions`: Qdrant's recommend query per kind of garment) and
hydrates the answer like any other: a group per kind of garment of the session.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from services.gateway.schemas import RecommendParams, ViewedProduct
from services.recommender.schemas import SessionQuery, SessionView
from shared.errors import InvalidInputError

__all__ = ["check_products", "decayed", "names", "session_query"]

MIN_WEIGHT = 1e-6
"""The least a view counts however old it is (the recommender takes no zero weight)."""


def decayed(view: ViewedProduct, now: datetime, half_life_h: float) -> float:
    """A view's weight halved for every ``half_life_h`` hours since it was seen."""
    if view.seen_at is None:
        return view.weight
    hours = max(0.0, (now - view.seen_at).total_seconds() / 3600.0)
    return max(MIN_WEIGHT, view.weight * 0.5 ** (hours / half_life_h))


def names(ids: Sequence[int]) -> str:
    return ", ".join(str(pid) for pid in ids)


def check_products(
    viewed: Sequence[ViewedProduct],
    not_for_me: Sequence[int],
    owners: Mapping[int, str],
    shops: Sequence[str] | None,
) -> None:
    """Every product named is in the catalog (``owners``: product id -> its shop) and within
    the ``shops`` searched: else 422 naming them (another shop's reads as an unknown one)."""
    scope = set(shops) if shops else None
    for field, ids in (("viewed", [v.product_id for v in viewed]), ("not_for_me", not_for_me)):
        outside = [
            pid for pid in ids if owners.get(pid) is None or (scope and owners[pid] not in scope)
        ]
        if outside:
            where = f" in shop {', '.join(sorted(scope))}" if scope else ""
            raise InvalidInputError(f"{field}: no product {names(outside)}{where}")


def session_query(
    viewed: Sequence[ViewedProduct],
    not_for_me: Sequence[int],
    params: RecommendParams,
    ranking: Mapping[str, Any],
    half_life_h: float,
) -> SessionQuery:
    """The recommender's query: the views' decayed weights, the caller's scope and
    ``ranking`` (the gateway's ranking fields for ``params``); ``k`` places in all."""
    now = datetime.now(UTC)
    return SessionQuery(
        viewed=[
            SessionView(product_id=v.product_id, weight=decayed(v, now, half_life_h))
            for v in viewed
        ],
        not_for_me=list(not_for_me),
        categories=list(params.category or []),
        cross_category=params.cross_category,
        other_colour=params.colour_mode == "other",
        **ranking,
    )
