""" "Based on what you viewed": a shopper's session as Qdrant recommend queries.

1. **Seeds**: the front crop of every viewed and "not for me" product (one index call on the
   ``product_id`` payload index), with its vectors, garment class and named colour.
2. **Groups**: the viewed products by their kind of garment (the crop's garment class and
   the product's shop category: two dresses and a pair of boots are a dress group and a boots
   group; sneakers and boots two footwear groups); each group gets its share
   of the ``k`` places in proportion to its views' weight (largest remainder; a kind whose
   share rounds to nothing gets none).
3. **Search**, per group: Qdrant's recommend query (``best_score``) on the shape vector, the
   group's crops as positive examples and the "not for me" crops of its kind (shop category or
   garment class) as negative ones, scoped to
   the group's shop category (widened to its garment class, then to the parent class, when
   that has too few products) and
   filtered as any query (active products, shops, brands, prices, colour names), the session's
   products excluded. When colour counts (``color_weight``), the candidates' colour similarity
   is a second recommend query on the colour vector, restricted to them, with the same
   examples' colour descriptors (a rejected red pushes red down), blended with the chance that
   a candidate's named colour is the group's (its viewed products' named colours, weighted).
   The products of a named colour that a rejected product of the kind has, and no viewed one,
   go after the others.
4. **Answer**: each product at most once, best first within each group; the places a kind
   cannot fill (too few products of it) go to the other kinds' next best.

The weights (recency applied by the caller) decide each kind's share of the places and its
named colour: Qdrant's recommend query takes no weight per example.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from services.recommender.calibration import best_hit_per_product, blend
from services.recommender.schemas import (
    ProductHit,
    RecommendQuery,
    SessionGroup,
    SessionQuery,
    SessionResult,
)
from shared.colour import COLOUR_DIM, SHOPPER_COLOURS, named_probabilities, same_colour
from shared.index_layout import COLOUR_VECTOR, SHAPE_VECTOR, live_collection
from shared.taxonomy import garment_class
from shared.vectors import Hit, PayloadFilter, best_score_similarity

if TYPE_CHECKING:
    from services.recommender.service import Recommender

__all__ = ["recommend_session", "shares"]

POINTS_PER_PRODUCT = 16
_PROBE = [1.0 / math.sqrt(COLOUR_DIM)] * COLOUR_DIM


@dataclass
class _Seed:
    """A product's front crop: its vectors and payload."""

    product_id: int
    shape: list[float]
    colour: list[float] | None
    payload: dict[str, Any]

    @property
    def garment(self) -> str | None:
        return self.payload.get("garment") or self.payload.get("garment_parent")

    @property
    def kind(self) -> tuple[str | None, str | None]:
        return self.garment, self.payload.get("category")


@dataclass
class _Kind:
    name: str | None
    category: str | None
    seeds: list[_Seed] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)

    @property
    def weight(self) -> float:
        return sum(self.weights)


@dataclass
class _Scored:
    hit: Hit
    shape: float = 0.0
    colour: float | None = None
    score: float = 0.0
    pushed: bool = False
    """Nearer a rejected product than any viewed one, by shape or by colour."""

    @property
    def product_id(self) -> int:
        return int(self.hit.payload["product_id"])


def shares(weights: Sequence[float], k: int) -> list[int]:
    """``k`` places shared in proportion to ``weights`` by the largest remainder (ties: the
    earlier first)."""
    total = sum(weights)
    if total <= 0 or k <= 0:
        return [0] * len(weights)
    exact = [k * w / total for w in weights]
    places = [math.floor(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - places[i]), i))
    for i in order[: k - sum(places)]:
        places[i] += 1
    return places


Filtering = Callable[[RecommendQuery], PayloadFilter]


def recommend_session(
    recommender: Recommender, query: SessionQuery, filtering: Filtering
) -> SessionResult:
    """The session's groups (see the module's docstring), each filtered as ``filtering``
    filters a query (the recommender's ``query_filter``); ``missing``: the products named that
    have no indexed crop (then nothing is searched)."""
    index = recommender.index
    collection = live_collection(index)
    viewed = [view.product_id for view in query.viewed]
    named = [*viewed, *query.not_for_me]
    if collection is None:
        return SessionResult(missing=sorted(set(named)))
    seeds = _seeds(recommender, collection, named)
    missing = sorted(set(named) - set(seeds))
    if missing:
        return SessionResult(missing=missing)
    kinds: dict[tuple[str | None, str | None], _Kind] = {}
    for view in query.viewed:
        seed = seeds[view.product_id]
        kind = kinds.setdefault(seed.kind, _Kind(*seed.kind))
        kind.seeds.append(seed)
        kind.weights.append(view.weight)
    ordered = sorted(kinds.values(), key=lambda kind: -kind.weight)
    places = shares([kind.weight for kind in ordered], query.k)
    negatives = [seeds[pid] for pid in query.not_for_me]
    total = sum(kind.weight for kind in ordered)
    taken = {*named, *query.exclude_product_ids}
    found: list[tuple[_Kind, list[_Scored], list[_Scored]]] = []
    for kind, quota in zip(ordered, places, strict=True):
        if quota == 0:
            continue
        rejected = [seed for seed in negatives if _same_kind(seed, kind)]
        ranked, spare = _search(
            recommender, collection, query, kind, rejected, taken, quota, filtering
        )
        taken |= {item.product_id for item in ranked}
        found.append((kind, ranked, spare))
    _share_the_rest(found, query.k - sum(len(ranked) for _, ranked, _ in found), taken)
    groups = []
    for kind, ranked, _ in found:
        colour = _colour_name(kind)
        groups.append(
            SessionGroup(
                hits=[
                    ProductHit.of(item.hit, item.score, shape=item.shape, colour=item.colour)
                    for item in ranked
                ],
                collection=collection,
                candidates=len(ranked),
                garments=sorted({g for g in (_parent(kind.name),) if g}),
                categories=[kind.category] if kind.category else [],
                garment=kind.name or kind.category,
                viewed=[seed.product_id for seed in kind.seeds],
                share=round(kind.weight / total, 4),
                colour_name=colour[0] if colour else None,
                colour_p=colour[1] if colour else None,
            )
        )
    model_version = next(iter(seeds.values())).payload.get("model_version")
    return SessionResult(groups=groups, model_version=model_version)


def _share_the_rest(
    found: Sequence[tuple[_Kind, list[_Scored], list[_Scored]]], left: int, taken: set[int]
) -> None:
    """The places a kind could not fill (its shop has too few products of it) go to the next
    best of the other kinds, the heaviest first, each after its own products."""
    for _, ranked, spare in found:
        for item in spare:
            if left <= 0:
                return
            if item.product_id not in taken:
                ranked.append(item)
                taken.add(item.product_id)
                left -= 1


def _seeds(recommender: Recommender, collection: str, ids: Sequence[int]) -> dict[int, _Seed]:
    """The front crop (the first image's) of each product that has one."""
    hits = recommender.index.search(
        collection,
        COLOUR_VECTOR,
        _PROBE,
        limit=len(ids) * POINTS_PER_PRODUCT,
        where=PayloadFilter(equals={"product_id": list(ids)}),
        with_vectors=True,
    )
    hits.sort(key=lambda hit: (hit.payload.get("image_id") or 0, hit.id))
    seeds: dict[int, _Seed] = {}
    for hit in hits:
        pid = int(hit.payload["product_id"])
        vectors = hit.vectors or {}
        if pid not in seeds and SHAPE_VECTOR in vectors:
            seeds[pid] = _Seed(pid, vectors[SHAPE_VECTOR], vectors.get(COLOUR_VECTOR), hit.payload)
    return seeds


def _same_kind(seed: _Seed, kind: _Kind) -> bool:
    """A rejected product counts against a group of its own shop category or garment class:
    "not for me" on a red dress pushes red dresses away, never red boots."""
    category = seed.payload.get("category")
    return (category is not None and category == kind.category) or seed.garment == kind.name


def _parent(kind: str | None) -> str | None:
    found = garment_class(kind) if kind else None
    return found.parent if found is not None else None


def _scopes(query: SessionQuery, kind: _Kind) -> list[dict[str, Any]]:
    """The scopes to search in turn until the group has its places: the kind's own shop
    category, its garment class, then that class's parent; the caller's categories or every
    class instead."""
    if query.categories or query.cross_category:
        return [{}]
    scopes: list[dict[str, Any]] = []
    if kind.category is not None:
        scopes.append({"category": kind.category})
    parent = _parent(kind.name)
    if kind.name is not None and parent is not None and kind.name != parent:
        scopes.append({"garment": kind.name})
    if parent is not None:
        scopes.append({"garment_parent": parent})
    return scopes or [{}]


def _search(
    recommender: Recommender,
    collection: str,
    query: SessionQuery,
    kind: _Kind,
    negatives: Sequence[_Seed],
    taken: set[int],
    quota: int,
    filtering: Filtering,
) -> tuple[list[_Scored], list[_Scored]]:
    """The group's ``quota`` best products, and the next best of its last scope (for the
    places another kind leaves)."""
    exclude_colours = list(query.exclude_colour_names)
    if query.other_colour:
        exclude_colours += [
            s.payload["colour_name"] for s in kind.seeds if s.payload.get("colour_name")
        ]
    weight = 0.0 if query.other_colour else query.color_weight
    base = filtering(
        RecommendQuery(
            embedding=[0.0],
            categories=query.categories,
            filters=query.filters,
            colour_names=query.colour_names,
            exclude_colour_names=sorted(set(exclude_colours)),
            exclude_sources=query.exclude_sources,
        )
    )
    limit = max(query.candidates or recommender.candidates, 4 * quota)
    chosen: list[_Scored] = []
    for scope in _scopes(query, kind):
        excluded = sorted(taken | {item.product_id for item in chosen})
        where = PayloadFilter(
            equals={**base.equals, **scope},
            ranges=base.ranges,
            excludes={**base.excludes, "product_id": excluded},
        )
        hits = recommender.index.recommend(
            collection,
            SHAPE_VECTOR,
            [seed.shape for seed in kind.seeds],
            [seed.shape for seed in negatives],
            limit=limit,
            where=where,
        )
        scored = [
            _Scored(hit, shape=best_score_similarity(hit.score), pushed=hit.score < 0)
            for hit in hits
        ]
        if weight > 0.0 and scored:
            _colour(recommender, collection, query, kind, negatives, where, scored)
        for item in scored:
            item.score = blend(item.shape, item.colour, weight)
        ranked = _rejected_colours_last(best_hit_per_product(scored), kind, negatives)
        if weight > 0.0:
            ranked = _own_colour_first(ranked, kind)
        room = quota - len(chosen)
        chosen += ranked[:room]
        if len(chosen) >= quota:
            return chosen, ranked[room:]
    return chosen, []


def _colour(
    recommender: Recommender,
    collection: str,
    query: SessionQuery,
    kind: _Kind,
    negatives: Sequence[_Seed],
    where: PayloadFilter,
    scored: Sequence[_Scored],
) -> None:
    """Each candidate's colour similarity: Qdrant's recommend on the colour descriptors (the
    group's and the rejected products'), restricted to the candidates' products, blended with
    the chance that its named colour is the group's (``colour_share``)."""
    positives = [seed.colour for seed in kind.seeds if seed.colour]
    if not positives:
        return
    products = sorted({item.product_id for item in scored})
    inside = PayloadFilter(
        equals={**where.equals, "product_id": products},
        ranges=where.ranges,
        excludes=where.excludes,
    )
    hits = recommender.index.recommend(
        collection,
        COLOUR_VECTOR,
        positives,
        [seed.colour for seed in negatives if seed.colour],
        limit=len(products) * POINTS_PER_PRODUCT,
        where=inside,
    )
    descriptors = {hit.id: best_score_similarity(hit.score) for hit in hits}
    pushed = {hit.id for hit in hits if hit.score < 0}
    probs = _colour_probs(kind)
    share = query.colour_share if probs is not None else 0.0
    for item in scored:
        similarity = descriptors.get(item.hit.id, 0.0)
        if share > 0.0 and probs is not None:
            named = same_colour(
                probs, item.hit.payload.get("colour_name"), item.hit.payload.get("colour_p")
            )
            similarity = (1.0 - share) * similarity + share * named
        item.colour = similarity
        item.pushed = item.pushed or item.hit.id in pushed


def _colour_probs(kind: _Kind) -> list[float] | None:
    """The group's named-colour probabilities: its viewed products', weighted."""
    mixed = [0.0] * len(SHOPPER_COLOURS)
    total = 0.0
    for seed, weight in zip(kind.seeds, kind.weights, strict=True):
        name = seed.payload.get("colour_name")
        if name is None:
            continue
        for i, p in enumerate(named_probabilities(name, seed.payload.get("colour_p"))):
            mixed[i] += weight * p
        total += weight
    return [p / total for p in mixed] if total > 0 else None


def _colour_name(kind: _Kind) -> tuple[str, float] | None:
    probs = _colour_probs(kind)
    if probs is None:
        return None
    best = max(range(len(probs)), key=lambda i: probs[i])
    return SHOPPER_COLOURS[best], round(probs[best], 4)


SURE_COLOUR = 0.5
"""A group's named colour this likely (its views agree on it) puts its products first."""


def _own_colour_first(ranked: list[_Scored], kind: _Kind) -> list[_Scored]:
    colour = _colour_name(kind)
    if colour is None or colour[1] < SURE_COLOUR:
        return ranked
    first = [item for item in ranked if item.hit.payload.get("colour_name") == colour[0]]
    return first + [item for item in ranked if item.hit.payload.get("colour_name") != colour[0]]


def _rejected_colours_last(
    ranked: list[_Scored], kind: _Kind, negatives: Sequence[_Seed]
) -> list[_Scored]:
    """The products nearer a rejected product (``negatives``: the group's kind's) than any
    viewed one, by shape or colour, and those of a named colour a rejected product has (unless
    it is the group's own colour), after the others, each part in its order."""
    colour = _colour_name(kind)
    own = {colour[0]} if colour is not None else set()
    rejected = {seed.payload.get("colour_name") for seed in negatives} - own - {None}

    def last(item: _Scored) -> bool:
        return item.pushed or item.hit.payload.get("colour_name") in rejected

    return [item for item in ranked if not last(item)] + [item for item in ranked if last(item)]
