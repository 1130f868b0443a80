"""k-NN over the catalog index: candidate generation -> scoring -> re-ranking.

1. **Candidates**: the nearest points of the signal that weighs more: the query's shape
   vector (``cnn`` for cosine, ``cnn_l1`` for L1), or its colour descriptor from
   ``color_weight`` 0.5 up; filtered in the index (active products only, always; garment
   classes, shop categories, brands, price range, currency).
2. **Scoring**: when both signals count, the candidate products' crops get the other
   similarity too; ``score = (1 - color_weight) * shape + color_weight * colour``.
   Shape similarity is the cosine for ``cosine`` and ``1 - d / (2 sqrt(dim))`` for an L1
   distance ``d`` between unit vectors (about the cosine's scale, so the colour weight means
   the same for both metrics); colour similarity is the descriptors' Bhattacharyya coefficient.
3. **Re-ranking**: one hit per product (its best crop wins); the products of the garment
   classes the query is unlikely to show go last; with several garment classes and
   their shares, each class gets its share of the places (an unsure query's likelier class is
   not crowded out by the other), else with ``category_votes`` the products of the shop
   categories of the nearest few come first; then optionally maximal marginal relevance
   (``diversity`` 0-1) over the products' embeddings.

One index call per query when shape leads: the hits bring their 40-d colour vectors, scored
here. When colour leads, the shape scores come from a second search restricted by a payload
filter to the candidate products (the ``product_id`` payload index picks their few points).
At 100k products a blended query used to cost four searches (22 ms alone; under 8 concurrent
requests the index calls queue behind each other); now it costs what a shape-only one does.
Nothing here imports FastAPI.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from services.recommender.calibration import (
    NEIGHBOURS,
    Calibrator,
    background,
    best_hit_per_product,
    best_per_product,
    blend,
    shop_filter,
)
from services.recommender.schemas import (
    Decided,
    Intent,
    NeighbourVote,
    ProductHit,
    ProductPoints,
    RecommendQuery,
    RecommendResult,
    SessionQuery,
    SessionResult,
    SimilarQuery,
    SimilarResult,
    StoredPoint,
    TextQuery,
    TextResult,
)
from shared.colour import (
    COLOUR_DIM,
    COLOUR_NAMES,
    SHOPPER_COLOURS,
    named_probabilities,
    same_colour,
)
from shared.errors import InvalidInputError, NotFoundError, ServiceUnavailableError
from shared.health import Check
from shared.index_layout import (
    ALIAS,
    COLOUR_VECTOR,
    SHAPE_VECTOR,
    SHAPE_VECTORS,
    TEXT_DENSE,
    TEXT_SPARSE,
    collection_name,
    live_collection,
    text_collection_name,
)
from shared.scope import decide
from shared.taxonomy import PARENTS
from shared.vectors import Distance, Hit, PayloadFilter, VectorIndex
from shared.words import (
    RRF_K,
    TEXT_MODEL,
    SentenceEncoder,
    expand_query,
    lexical_vector,
    query_words,
    read_intent,
    sentence_encoder,
)

__all__ = [
    "COLOUR_VECTOR",
    "SHAPE_VECTORS",
    "Recommender",
    "query_filter",
    "shape_similarity",
]

log = logging.getLogger(__name__)

POINTS_PER_PRODUCT = 16
"""Upper bound of crops per product assumed when a search is restricted to given products."""
LABEL_CHECK_S = 60.0
MAX_WIDENING = 2
"""Times the candidate pool is widened (x4) when deduplication leaves fewer than ``k``."""
_PROBE = [1.0 / math.sqrt(COLOUR_DIM)] * COLOUR_DIM
_FAMILIES = {colour.name: colour.family for colour in COLOUR_NAMES}


def shape_similarity(score: float, metric: Distance, dim: int) -> float:
    """The index's score as a similarity in [0, 1] (cosine similarity, or L1 distance)."""
    if metric == "cosine":
        return min(1.0, max(0.0, score))
    return min(1.0, max(0.0, 1.0 - score / (2.0 * math.sqrt(dim))))


def query_filter(query: RecommendQuery) -> PayloadFilter:
    """Active products only, always; then the query's garment classes, categories and business
    filters."""
    equals: dict[str, int | str | list[str]] = {"active": 1}
    if query.garments:
        garments = sorted(set(query.garments))
        equals["garment_parent"] = garments[0] if len(garments) == 1 else garments
    if query.categories:
        cats = sorted(set(query.categories))
        equals["category"] = cats[0] if len(cats) == 1 else cats
    brands = query.filters.brand
    if brands:
        equals["brand"] = brands[0] if len(brands) == 1 else list(brands)
    if query.filters.currency:
        equals["currency"] = query.filters.currency.upper()
    if query.filters.source:
        shops = sorted(set(query.filters.source))
        equals["source"] = shops[0] if len(shops) == 1 else shops
    if query.colour_names:
        names = query.colour_names
        equals["colour_name"] = names[0] if len(names) == 1 else list(names)
    ranges: dict[str, tuple[float | None, float | None]] = {}
    if query.filters.min_price is not None or query.filters.max_price is not None:
        ranges["price"] = (query.filters.min_price, query.filters.max_price)
    excludes: dict[str, list[int] | list[str]] = {}
    if query.exclude_product_ids:
        excludes["product_id"] = list(query.exclude_product_ids)
    if query.exclude_sources:
        excludes["source"] = list(query.exclude_sources)
    if query.exclude_colour_names:
        excludes["colour_name"] = list(query.exclude_colour_names)
    return PayloadFilter(equals=equals, ranges=ranges, excludes=excludes)


def _restricted(where: PayloadFilter, product_ids: Sequence[int]) -> PayloadFilter:
    return PayloadFilter(
        equals={**where.equals, "product_id": list(product_ids)},
        ranges=where.ranges,
        excludes=where.excludes,
    )


@dataclass
class _Scored:
    hit: Hit
    shape: float | None = None
    colour: float | None = None
    score: float = 0.0

    @property
    def product_id(self) -> int:
        return int(self.hit.payload["product_id"])


class Recommender:
    """The recommender library: k-NN, filters and re-ranking over a :class:`VectorIndex`."""

    def __init__(
        self,
        index: VectorIndex,
        *,
        candidates: int = 100,
        encoder: SentenceEncoder | None = None,
    ) -> None:
        """``encoder``: the sentence model for text queries (default: the process's one,
        loaded at the first text query)."""
        self.index = index
        self.encoder = encoder
        self.candidates = candidates
        self.calibrator = Calibrator(index)
        self._labelled: dict[str, float] = {}

    # ---------------------------------------------------------------------------- queries

    def search_text(self, query: TextQuery) -> TextResult:
        """Products by words: the sentence model's ranking and the lexical one (each over the
        product-text collection, filtered as a picture's search) fused by reciprocal rank, plus
        one rank's worth for a product of the garment class and one for the colour the words
        name. Scoped to the class the words name (``query.scope``), widened to every class
        when that leaves fewer than ``k`` products. Scores are the fused score over the best
        possible one (0-1)."""
        intent = read_intent(query.text)
        found = Intent(**intent.as_dict())
        collection = text_collection_name(TEXT_MODEL)
        if collection not in self.index.collections():
            return TextResult(hits=[], collection=None, intent=found)
        garments = list(query.garments)
        if not garments and query.scope and intent.garment is not None:
            garments = [intent.garment.parent]
        limit = max(query.candidates or self.candidates, 4 * query.k)
        dense = self._encoder().encode_query(expand_query(query.text)).tolist()
        sparse = lexical_vector(query.text, query=True, intent=intent)
        fused: dict[int, float] = {}
        hits: dict[int, Hit] = {}
        searched = garments
        for scope in [garments, []] if garments and not query.garments else [garments]:
            searched = scope
            where = _text_filter(query, scope)
            for name, vector in ((TEXT_DENSE, dense), (TEXT_SPARSE, sparse)):
                ranked = self.index.search(collection, name, vector, limit=limit, where=where)
                for rank, hit in enumerate(ranked, start=1):
                    pid = int(hit.payload["product_id"])
                    hits.setdefault(pid, hit)
                    fused[pid] = fused.get(pid, 0.0) + 1.0 / (RRF_K + rank)
            if len(fused) >= query.k:
                break
        bonus = 1.0 / (RRF_K + 1)
        for pid, hit in hits.items():
            if intent.garment is not None and hit.payload.get("garment") == intent.garment.name:
                fused[pid] += bonus
            if intent.colour is not None and hit.payload.get("colour") == intent.colour:
                fused[pid] += bonus
        best = (
            2 * bonus + bonus * (intent.garment is not None) + bonus * (intent.colour is not None)
        )
        order = sorted(fused, key=lambda pid: (-fused[pid], pid))[: query.k]
        asked = set(query_words(query.text))
        said = [
            bool(asked & set(query_words(hits[pid].payload.get("text") or ""))) for pid in order
        ]
        return TextResult(
            hits=[
                ProductHit.of(hits[pid], min(1.0, fused[pid] / best), said=known)
                for pid, known in zip(order, said, strict=True)
            ],
            collection=collection,
            candidates=len(fused),
            garments=searched,
            intent=found,
            evidence=round(sum(said) / len(said), 4) if said else 0.0,
        )

    def _encoder(self) -> SentenceEncoder:
        if self.encoder is None:
            self.encoder = sentence_encoder()
        return self.encoder

    def recommend(self, queries: Sequence[RecommendQuery]) -> list[RecommendResult]:
        """One result per query, in order (a query with a ``vote`` decides its garment
        classes first: :meth:`_vote`)."""
        results = []
        for query in queries:
            if query.vote is None:
                results.append(self._recommend(query, words=query.match))
                continue
            vote = query.vote
            decided = self._vote(query, vote)
            resolved = query.model_copy(
                update={
                    "vote": None,
                    "garments": decided.garments,
                    "garment_shares": decided.garment_shares,
                    "unlikely_garments": decided.unlikely_garments,
                    "category_votes": vote.category_votes if decided.garments else 0,
                }
            )
            result = self._recommend(resolved, words=query.match)
            result.decided = decided
            results.append(result)
        return results

    def _vote(self, query: RecommendQuery, vote: NeighbourVote) -> Decided:
        """The garment classes of a product shot: its nearest catalog products of any class
        (one per product) vote, blended with the classifier's view (:func:`shared.scope.decide`)."""
        nearest = self._recommend(
            RecommendQuery(
                embedding=query.embedding, model_version=query.model_version, k=vote.neighbours
            ),
            words=False,
        )
        scope = decide(
            None,
            vote.probabilities,
            neighbours=[hit.garment for hit in nearest.hits],
            detector_weight=0.0,
            neighbour_weight=vote.neighbour_weight,
            threshold=vote.threshold,
            max_parents=vote.max_parents,
            unlikely_below=vote.unlikely_below,
        )
        return Decided(
            garment=scope.garment,
            probability=scope.probability,
            garments=list(scope.parents),
            garment_shares=list(scope.shares),
            unlikely_garments=list(scope.unlikely),
        )

    def _collection(self, model_version: str | None) -> str | None:
        """The collection to search: the query model's own one (it exists during and after a
        reindex), else the live one; ``None`` before anything was indexed."""
        live = live_collection(self.index)
        if model_version is None:
            return live
        try:
            return self.index.resolve(collection_name(model_version))
        except NotFoundError:
            if live is None:
                return None
            raise ServiceUnavailableError(
                f"the index has no collection for model {model_version} (live: {live}); the "
                "embedder and the index disagree on the model: reindex or restart the embedder"
            ) from None

    def _recommend(self, query: RecommendQuery, *, words: bool = True) -> RecommendResult:
        """One query's hits (``words``: with their match words, see :meth:`_words`)."""
        collection = self._collection(query.model_version)
        if collection is None:
            return RecommendResult(hits=[], collection=None, candidates=0)
        if query.garments and not self.labelled(collection):
            query = query.model_copy(update={"garments": [], "garment_shares": []})
        where = query_filter(query)
        limit = max(query.candidates or self.candidates, 4 * query.k)
        for _ in range(MAX_WIDENING + 1):
            scored, exhausted = self._score(collection, query, where, limit)
            ranked = best_hit_per_product(scored)
            if len(ranked) >= query.k or exhausted:
                break
            limit *= 4
        if query.unlikely_garments:
            ranked = _likely_first(ranked, frozenset(query.unlikely_garments))
        if len(query.garments) > 1 and len(query.garment_shares) == len(query.garments):
            ranked = _by_shares(ranked, query.garments, query.garment_shares, query.k)
        elif query.category_votes > 0:
            ranked = _categories_first(
                ranked, query.category_votes, frozenset(query.unlikely_garments)
            )
        if query.diversity > 0 and len(ranked) > query.k:
            ranked = self._mmr(collection, ranked, query.k, query.diversity)
        shown = ranked[: query.k]
        hits = [
            ProductHit.of(item.hit, item.score, shape=item.shape, colour=item.colour)
            for item in shown
        ]
        close_match = None
        if words and hits and query.metric == "cosine":
            close_match = self._words(collection, query, where, scored, exhausted, shown, hits)
        return RecommendResult(
            hits=hits,
            collection=collection,
            candidates=len(scored),
            garments=query.garments,
            close_match=close_match,
        )

    def _score(
        self, collection: str, query: RecommendQuery, where: PayloadFilter, limit: int
    ) -> tuple[list[_Scored], bool]:
        """Candidate points with their scores, and whether the index has no more of them."""
        weight = _weight(query)
        if weight < 0.5:
            found = self._by_shape(collection, query, where, limit)
            return found, len(found) < limit
        # Colour leads: its nearest points are the candidates, and shape scores them.
        assert query.colour is not None
        points: dict[str, _Scored] = {}
        hits = self.index.search(collection, COLOUR_VECTOR, query.colour, limit=limit, where=where)
        for hit in hits:
            points.setdefault(hit.id, _Scored(hit)).colour = _colour_match(query, hit, hit.score)
        if weight < 1.0 and points:
            products = sorted({item.product_id for item in points.values()})
            inside = _restricted(where, products)
            n = len(products) * POINTS_PER_PRODUCT
            name = SHAPE_VECTORS[query.metric]
            for hit in self.index.search(collection, name, query.embedding, limit=n, where=inside):
                item = points.setdefault(hit.id, _Scored(hit))
                item.shape = shape_similarity(hit.score, query.metric, len(query.embedding))
        for item in points.values():
            item.score = blend(item.shape, item.colour, weight)
        return list(points.values()), len(hits) < limit

    def _by_shape(
        self, collection: str, query: RecommendQuery, where: PayloadFilter, limit: int
    ) -> list[_Scored]:
        """The nearest points by shape, scored (with their colour when it counts)."""
        weight = _weight(query)
        found = self.index.search(
            collection,
            SHAPE_VECTORS[query.metric],
            query.embedding,
            limit=limit,
            where=where,
            with_vectors=[COLOUR_VECTOR] if weight > 0.0 else False,
        )
        scored = [
            _Scored(hit, shape=shape_similarity(hit.score, query.metric, len(query.embedding)))
            for hit in found
        ]
        if weight > 0.0 and found:
            # The colour vectors came with the hits: their cosine, as the index computes it.
            assert query.colour is not None
            stored = np.array([_colour_of(hit) for hit in found], dtype=np.float32)
            probe = np.asarray(query.colour, dtype=np.float32)
            probe /= max(float(np.linalg.norm(probe)), 1e-12)  # the index normalises too
            for item, similarity in zip(scored, stored @ probe, strict=True):
                item.colour = _colour_match(query, item.hit, float(similarity))
        for item in scored:
            item.score = blend(item.shape, item.colour, weight)
        return scored

    def _words(
        self,
        collection: str,
        query: RecommendQuery,
        where: PayloadFilter,
        scored: Sequence[_Scored],
        exhausted: bool,
        shown: Sequence[_Scored],
        hits: Sequence[ProductHit],
    ) -> bool | None:
        """Each hit's match word, from its lead over its own shop's background on its shop's
        and class's scale; and whether any hit is a close match (``None``: unknown). See
        :mod:`services.recommender.calibration`."""
        weight = _weight(query)
        backgrounds: dict[str | None, float | None] = {}
        verdicts = []
        for item, hit in zip(shown, hits, strict=True):
            source = item.hit.payload.get("source")
            kind = item.hit.payload.get("garment_parent")
            scale = self.calibrator.scale(collection, source, kind, weight, _share(query))
            if scale is None:
                continue
            if source not in backgrounds:
                scores = self._shop_scores(collection, query, where, scored, exhausted, source)
                backgrounds[source] = background(scores)
            floor = backgrounds[source]
            lead = None if floor is None else item.score - floor
            hit.match = scale.match(lead)
            verdicts.append(scale.is_close(lead))
        known = [verdict for verdict in verdicts if verdict is not None]
        return any(known) if known else None

    def _shop_scores(
        self,
        collection: str,
        query: RecommendQuery,
        where: PayloadFilter,
        scored: Sequence[_Scored],
        exhausted: bool,
        source: str | None,
    ) -> list[float]:
        """The best score of each product among one shop's :data:`NEIGHBOURS` crops nearest by
        shape: from the candidates when they hold all of them, else from a search of that shop
        alone (another shop's products never change it)."""
        if _weight(query) < 0.5:
            own = [item for item in scored if item.hit.payload.get("source") == source]
            if exhausted or len(own) >= NEIGHBOURS:
                own.sort(key=lambda item: -(item.shape or 0.0))
                return best_per_product((item.product_id, item.score) for item in own[:NEIGHBOURS])
        found = self._by_shape(collection, query, shop_filter(where, source), NEIGHBOURS)
        return best_per_product((item.product_id, item.score) for item in found)

    def _mmr(
        self, collection: str, ranked: list[_Scored], k: int, diversity: float
    ) -> list[_Scored]:
        """Maximal marginal relevance: each next product maximises
        ``(1 - diversity) * score - diversity * (max similarity to those already chosen)``."""
        pool = ranked[: max(3 * k, k + 20)]
        records = {
            hit.id: hit
            for hit in self.index.retrieve(
                collection, [item.hit.id for item in pool], with_vectors=True
            )
        }
        vectors = []
        for item in pool:
            record = records.get(item.hit.id)
            vector = (record.vectors or {}).get(SHAPE_VECTOR) if record is not None else None
            vectors.append(vector if vector is not None else [0.0])
        dim = max(len(v) for v in vectors)
        matrix = np.array([v if len(v) == dim else [0.0] * dim for v in vectors], dtype=np.float32)
        matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        similarity = matrix @ matrix.T
        relevance = np.array([item.score for item in pool], dtype=np.float32)
        chosen = [0]
        closest = similarity[0].copy()
        remaining = set(range(1, len(pool)))
        while remaining and len(chosen) < k:
            candidates = np.array(sorted(remaining))
            objective = (1.0 - diversity) * relevance[candidates] - diversity * closest[candidates]
            pick = int(candidates[int(np.argmax(objective))])
            chosen.append(pick)
            remaining.discard(pick)
            closest = np.maximum(closest, similarity[pick])
        return [pool[i] for i in chosen]

    def labelled(self, collection: str) -> bool:
        """Whether the collection's crops carry garment classes. An index made before they did
        cannot be scoped (every class is searched, and the answer's ``searched`` says so
        through the gateway) until ``lookalike reindex --all`` backfills it; checked again
        every minute."""
        checked = self._labelled.get(collection)
        if checked == math.inf:
            return True
        if checked is not None and time.monotonic() - checked < LABEL_CHECK_S:
            return False
        where = PayloadFilter(equals={"garment_parent": list(PARENTS)})
        if self.index.count(collection, where) > 0:
            self._labelled[collection] = math.inf
            return True
        log.warning(
            "collection %s has no garment classes: searches are not scoped until "
            "`lookalike reindex --all` backfills them",
            collection,
        )
        self._labelled[collection] = time.monotonic()
        return False

    # -------------------------------------------------------------------- "more like this"

    def product_points(self, product_id: int) -> ProductPoints:
        """The indexed crops of a product, front view first (a search on the payload index
        of ``product_id``: the index interface has no scroll)."""
        collection = live_collection(self.index)
        if collection is None:
            raise NotFoundError(f"product {product_id} is not indexed (the index is empty)")
        hits = self.index.search(
            collection,
            COLOUR_VECTOR,
            _PROBE,
            limit=POINTS_PER_PRODUCT,
            where=PayloadFilter(equals={"product_id": product_id}),
            with_vectors=True,
        )
        if not hits:
            raise NotFoundError(f"product {product_id} has no indexed images yet")
        hits.sort(key=lambda hit: (hit.payload.get("image_id") or 0, hit.id))
        points = [
            StoredPoint(
                point_id=hit.id,
                embedding=(hit.vectors or {})[SHAPE_VECTOR],
                colour=(hit.vectors or {}).get(COLOUR_VECTOR),
                payload=hit.payload,
            )
            for hit in hits
        ]
        return ProductPoints(product_id=product_id, points=points)

    def similar_to_product(self, product_id: int, query: SimilarQuery) -> SimilarResult:
        """Products like ``product_id``: its first indexed crop (front view) is the query, in
        its model's collection, its own category unless ``query.categories`` says otherwise;
        the product itself is left out. ``other_colour``: only products of another named
        colour than its own, by shape alone."""
        seed = self.product_points(product_id).points[0]
        category = seed.payload.get("category")
        own = [category] if category else []
        categories = own if query.categories is None else query.categories
        model_version = seed.payload.get("model_version")
        name, p = seed.payload.get("colour_name"), seed.payload.get("colour_p")
        ranking = query.model_dump(exclude={"categories", "other_colour"})
        if query.other_colour:
            if name is None:
                raise InvalidInputError(
                    f"product {product_id} has no named colour yet (indexed before colours "
                    "were named): `lookalike reindex --all` names them"
                )
            ranking |= {
                "color_weight": 0.0,
                "exclude_colour_names": sorted({*query.exclude_colour_names, name}),
            }
        [result] = self.recommend(
            [
                RecommendQuery(
                    embedding=seed.embedding,
                    colour=seed.colour or None,
                    colour_probs=named_probabilities(name, p) if name in SHOPPER_COLOURS else None,
                    model_version=model_version,
                    categories=categories,
                    exclude_product_ids=[product_id],
                    **ranking,
                )
            ]
        )
        return SimilarResult(
            **result.model_dump(),
            category=category,
            categories=categories,
            model_version=model_version,
            colour_name=name,
            colour_p=p,
        )

    def recommend_session(self, query: SessionQuery) -> SessionResult:
        """ "Based on what you viewed": products like a session's viewed products, a group per
        kind of garment, away from its "not for me" ones (:mod:`services.recommender.sessions`)."""
        from services.recommender.sessions import recommend_session

        return recommend_session(self, query, query_filter)

    # ------------------------------------------------------------------------------ health

    def check(self) -> Check:
        """Readiness of the index: it answers (an empty index is ready, with a note)."""
        started = time.perf_counter()
        try:
            live = live_collection(self.index)
        except index_errors() as exc:
            detail = f"{exc.__class__.__name__}: {exc}"
            return Check("index", False, detail, _ms(started))
        detail = f"{ALIAS} -> {live}" if live else f"reachable; nothing indexed yet (no {ALIAS})"
        return Check("index", True, detail, _ms(started))


def index_errors() -> tuple[type[BaseException], ...]:
    """What an unreachable index raises: OS errors, and qdrant-client's API errors."""
    from qdrant_client.http.exceptions import ApiException

    return (OSError, ApiException)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _likely_first(ranked: list[_Scored], unlikely: frozenset[str]) -> list[_Scored]:
    """The products of the ``unlikely`` garment classes after the others, each part in order."""
    first = [item for item in ranked if item.hit.payload.get("garment") not in unlikely]
    return first + [item for item in ranked if item.hit.payload.get("garment") in unlikely]


def _categories_first(
    ranked: list[_Scored], votes: int, unlikely: frozenset[str] = frozenset()
) -> list[_Scored]:
    """The products of the categories of the ``votes`` nearest by shape (of the likely
    garment classes) first, each part in its order: colour orders the products within the
    kind, never picks the kind."""
    by_shape = sorted(
        ranked,
        key=lambda item: (item.hit.payload.get("garment") in unlikely, -(item.shape or 0.0)),
    )
    voted = {item.hit.payload.get("category") for item in by_shape[:votes]}
    first = [item for item in ranked if item.hit.payload.get("category") in voted]
    return first + [item for item in ranked if item.hit.payload.get("category") not in voted]


def _by_shares(
    ranked: list[_Scored], garments: Sequence[str], shares: Sequence[float], k: int
) -> list[_Scored]:
    """The first ``k`` places shared among ``garments`` in proportion to ``shares`` (a class
    with too few products leaves its places to the best of the rest), best score first."""
    total = sum(shares) or 1.0
    quota = [math.floor(k * share / total + 0.5) for share in shares]
    chosen: list[_Scored] = []
    rest: list[_Scored] = []
    for item in ranked:
        kind = item.hit.payload.get("garment_parent")
        slot = next((i for i, name in enumerate(garments) if name == kind), None)
        if slot is not None and quota[slot] > 0:
            quota[slot] -= 1
            chosen.append(item)
        else:
            rest.append(item)
    chosen += rest[: max(0, k - len(chosen))]
    chosen.sort(key=lambda item: (-item.score, item.product_id))
    taken = {id(item) for item in chosen}
    return chosen + [item for item in rest if id(item) not in taken]


def _weight(query: RecommendQuery) -> float:
    """The colour weight of a query's scores (none without a colour descriptor)."""
    return query.color_weight if query.colour is not None else 0.0


def _share(query: RecommendQuery) -> float:
    """The named colours' share of a query's colour similarity (none without their
    probabilities)."""
    return query.colour_share if query.colour_probs is not None else 0.0


def _colour_match(query: RecommendQuery, hit: Hit, descriptors: float) -> float:
    """A hit's colour similarity to the query: the descriptors' Bhattacharyya coefficient
    blended with the chance that the hit's named colour is the query's (``colour_share``)."""
    similarity = max(0.0, min(1.0, descriptors))
    share = _share(query)
    if share <= 0.0:
        return similarity
    assert query.colour_probs is not None
    named = same_colour(
        query.colour_probs, hit.payload.get("colour_name"), hit.payload.get("colour_p")
    )
    return (1.0 - share) * similarity + share * named


def _text_filter(query: TextQuery, garments: Sequence[str]) -> PayloadFilter:
    """As :func:`query_filter`, for a text query scoped to ``garments``; a colour filter is
    the broad colour the product's words name (a product's text point has no named colour of
    its pictures: ``navy`` keeps the products whose words say a blue)."""
    where = query_filter(
        RecommendQuery(
            embedding=[0.0],
            categories=query.categories,
            garments=list(garments),
            filters=query.filters,
            exclude_product_ids=query.exclude_product_ids,
            exclude_sources=query.exclude_sources,
        )
    )
    families = sorted({_FAMILIES[name] for name in query.colour_names})
    if not families:
        return where
    colour = families[0] if len(families) == 1 else families
    return PayloadFilter(
        equals={**where.equals, "colour": colour}, ranges=where.ranges, excludes=where.excludes
    )


def _colour_of(hit: Hit) -> list[float]:
    vectors = hit.vectors or {}
    return vectors.get(COLOUR_VECTOR) or [0.0] * COLOUR_DIM
