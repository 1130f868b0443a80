"""``POST /recommend`` as a pipeline: photo -> garments -> crops -> features -> products.

1. decode the upload (or the fetched ``image_url``) with byte and pixel limits;
2. find the garments (the detector; no garment: an empty answer with a notice) and cut them
   as the catalog's are (:func:`shared.crops.garment_crops`);
3. embed and classify every crop (the embedder), and scope each search: the caller's shop
   categories, else the garment classes of :mod:`shared.scope` (detector and classifier
   blended; the top one, or the top two when unsure), never every class unless the caller
   asks; a product shot's nearest catalog products vote instead of the detector, inside the
   search call (a :class:`NeighbourVote`);
4. k-NN, filters and re-ranking (the recommender), one query per garment in one call;
5. titles, URLs and prices from the catalog, the source of truth.

Each stage is timed. The detector, embedder and recommender are clients (in process or HTTP);
nothing here imports FastAPI.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import httpx
import numpy as np

from services.embedder.client import EmbedderClient
from services.embedder.schemas import CropFeatures, WordVectors
from services.gateway.errors import ForbiddenError
from services.gateway.schemas import (
    Group,
    Offer,
    ParsedIntent,
    Recommendation,
    RecommendParams,
    RecommendResponse,
    SeenColour,
    ViewedProduct,
)
from services.gateway.sessions import check_products, names, session_query
from services.gateway.words import fuse_by_rank, fuse_rankings
from services.recommender.client import RecommenderClient
from services.recommender.schemas import (
    Decided,
    Filters,
    NeighbourVote,
    ProductHit,
    RecommendQuery,
    RecommendResult,
    SimilarQuery,
    TextQuery,
)
from shared.crops import GarmentCrop, garment_crops
from shared.db import Catalog, OfferGroupOut
from shared.detection import GarmentDetector
from shared.download import fetch_image
from shared.errors import InvalidInputError, LookalikeError, NotFoundError, PayloadTooLargeError
from shared.images import load_work_image
from shared.netsafe import PrivateAddressError, UnsafeURLError, check_url
from shared.scope import decide, label
from shared.settings import Settings
from shared.taxonomy import read_classes
from shared.words import read_intent

__all__ = ["RecommendPipeline", "Timings"]

_R = TypeVar("_R", bound=RecommendResult)

REFILL_ROUNDS = 3
"""How many times a search is asked again for hits the catalog shows as inactive."""

PRIVATE_URLS_SETTING = "LOOKALIKE_GATEWAY__ALLOW_PRIVATE_IMAGE_URLS"
PRIVATE_HOSTS_SETTING = "LOOKALIKE_GATEWAY__ALLOW_PRIVATE_IMAGE_HOSTS"
NO_GARMENT = "We couldn't find any clothing in this photo."
NO_CLOSE_MATCH = "No close match in this shop: these are the nearest we have."
DEFAULT_TEXT_WEIGHT = 0.5
"""How much words count against the pictures when they refine a photo or a product."""
MAX_TEXT_CANDIDATES = 100


@dataclass
class Timings:
    """Milliseconds per stage, in the order they ran."""

    ms: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.ms[name] = round(self.ms.get(name, 0.0) + (time.perf_counter() - began) * 1000, 2)

    def done(self) -> dict[str, float]:
        self.ms["total"] = round((time.perf_counter() - self.started) * 1000, 2)
        return self.ms


@dataclass
class _Garment:
    """One garment's search: the caller's shop ``categories`` or the garment classes
    (``parents``) it is scoped to (neither: every product)."""

    box: list[float] | None
    features: CropFeatures | None
    categories: list[str]
    category: str | None
    probability: float | None
    parents: tuple[str, ...] = ()
    shares: tuple[float, ...] = ()
    unlikely: tuple[str, ...] = ()
    colour: list[float] | None = None
    """The crop's colour descriptor (:func:`shared.crops.garment_crops`)."""
    seen: SeenColour | None = None
    """The crop's named colour."""
    colour_probs: list[float] | None = None
    """The probability of each shopper colour name for the crop."""
    vote: NeighbourVote | None = None
    """A product shot's classes, to be decided by its nearest catalog products."""


def _decided(garment: _Garment, decided: Decided) -> _Garment:
    """A product shot's garment once the recommender decided its classes."""
    return replace(
        garment,
        category=decided.garment,
        probability=decided.probability,
        parents=tuple(decided.garments),
        shares=tuple(decided.garment_shares),
        unlikely=tuple(decided.unlikely_garments),
        vote=None,
    )


class RecommendPipeline:
    """The logic behind ``POST /recommend``."""

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        detector: GarmentDetector,
        embedder: EmbedderClient,
        recommender: RecommenderClient,
        *,
        http: httpx.Client,
        observe: Callable[[dict[str, float]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.detector = detector
        self.embedder = embedder
        self.recommender = recommender
        self.http = http
        self.observe = observe

    # ------------------------------------------------------------------------------ inputs

    def from_url(
        self, url: str, params: RecommendParams, *, shops: frozenset[str] | None = None
    ) -> RecommendResponse:
        """Fetch ``url`` with the safe downloader (private addresses refused unless their
        ``host:port`` is in ``gateway.allow_private_image_hosts``, or
        ``gateway.allow_private_image_urls``), then as :meth:`from_bytes`."""
        params = self._checked(params, shops)
        timings = Timings()
        gateway = self.settings.gateway
        allow_private = gateway.allow_private_image_urls
        allow_hosts = frozenset(gateway.allow_private_image_hosts)
        with timings.stage("download"):
            try:
                check_url(url, allow_private=allow_private, allow_hosts=allow_hosts)
                downloaded = fetch_image(
                    url,
                    client=self.http,
                    allow_private=allow_private,
                    allow_hosts=allow_hosts,
                    max_bytes=self.settings.images.max_upload_bytes,
                )
            except PrivateAddressError as exc:
                raise UnsafeURLError(
                    f"{exc.message}: {PRIVATE_HOSTS_SETTING}='[\"HOST:PORT\"]' lets image_url "
                    f"reach that address ({PRIVATE_URLS_SETTING}=true: any private address; "
                    "for a local demo, never on a public gateway)"
                ) from exc
        return self._photo(downloaded.content, params, timings)

    def from_bytes(
        self, data: bytes, params: RecommendParams, *, shops: frozenset[str] | None = None
    ) -> RecommendResponse:
        """Recommendations for every garment of a photo (``shops``: the caller's, see
        :meth:`scoped`)."""
        params = self._checked(params, shops)
        return self._photo(data, params, Timings())

    def crops(self, data: bytes, timings: Timings) -> list[GarmentCrop]:
        """A photo's garment crops, made as the catalog's are (:func:`shared.crops.garment_crops`):
        decoded once, the detector's boxes framed and cut, each with its colour descriptor;
        none when the detector finds no garment."""
        limit = self.settings.images.max_upload_bytes
        if len(data) > limit:
            raise PayloadTooLargeError(f"the image is {len(data)} bytes; the limit is {limit}")
        with timings.stage("decode"):
            images = self.settings.images
            image, size = load_work_image(
                data, max_bytes=images.max_upload_bytes, max_pixels=images.max_image_pixels
            )
        with timings.stage("detect"):
            [result] = self.detector.detect([image])
        if result.fallback or not result.detections:
            # Nothing that looks like a garment (a product shot on a plain background takes the
            # foreground path and is never a fallback): an honest empty answer, not a guess.
            return []
        with timings.stage("embed"):  # the colour descriptors, made beside the embeddings
            crops = self.settings.crops
            return garment_crops(
                image,
                size,
                result,
                detect=crops.detect,
                remove_background=crops.remove_background,
            )

    def _photo(self, data: bytes, params: RecommendParams, timings: Timings) -> RecommendResponse:
        crops = self.crops(data, timings)
        if not crops:
            return self._respond([], None, timings, notice=NO_GARMENT)
        with timings.stage("embed"):
            classify = not (params.category or params.cross_category)
            features = self.embedder.features([c.picture for c in crops], classify=classify)
        garments = [
            self._garment(crop, found, params)
            for crop, found in zip(crops, features.crops, strict=True)
        ]
        return self._answer(garments, params, features.model_version, timings)

    def from_product(
        self, product_id: int, params: RecommendParams, *, shops: frozenset[str] | None = None
    ) -> RecommendResponse:
        """Products like a catalog product ("more like this", resolved by the recommender:
        the product's stored vectors are the query, the product itself is left out). A caller
        bound to ``shops`` may start only from its own shops' products (404, as for an unknown
        one, for another shop's)."""
        params = self._checked(params, shops)
        owner = self.catalog.product_shops([product_id]).get(product_id)
        if owner is None or (shops is not None and owner not in shops):
            # Unknown, or removed with its shop while the index may still hold its points.
            raise NotFoundError(f"no product {product_id}")
        timings = Timings()
        if params.category:
            categories: list[str] | None = list(params.category)
        else:
            categories = [] if params.cross_category else None
        with timings.stage("search"):
            try:
                similar = self.recommender.similar_to_product(
                    product_id,
                    SimilarQuery(
                        categories=categories,
                        other_colour=params.colour_mode == "other",
                        **self._ranking(params),
                    ),
                )
            except LookalikeError as exc:  # in process or over HTTP, a 404 says the same
                if exc.status_code == 404:
                    self.catalog.get_product(product_id)  # "no product N" for an unknown id
                raise
        garment = _Garment(
            box=None,
            features=None,
            categories=similar.categories,
            category=params.category[0] if params.category else similar.category,
            probability=None,
            seen=_seen(similar.colour_name, similar.colour_p),
        )
        with timings.stage("search"):
            [refined], intent = self._refined(params, [similar])
        with timings.stage("hydrate"):
            groups = self._groups([garment], [refined], shops=params.shop, besides=product_id)
        _mark(groups, intent)
        return self._respond(groups, similar.model_version, timings)

    def from_text(
        self, params: RecommendParams, *, shops: frozenset[str] | None = None
    ) -> RecommendResponse:
        """Products by words alone: one group, the text path's ranking and the pictures'
        fused by rank (:mod:`services.gateway.words`; ``gateway.words_paths`` picks the
        paths), scoped to the garment class the words name."""
        params = self._checked(params, shops)
        assert params.text is not None
        if params.colour_mode == "other":
            raise InvalidInputError(
                "colour_mode=other ranks by another colour than a garment's: give a photo or a "
                "product_id (words alone: name the colour, or give colour)"
            )
        timings = Timings()
        gateway = self.settings.gateway
        k = params.k or gateway.default_k
        by_text = by_pictures = None
        model_version = None
        intent = ParsedIntent(**read_intent(params.text).as_dict())
        if gateway.words_paths != "pictures":
            with timings.stage("search"):
                query = self._text_query(params, params.text)
                [by_text] = self._active_only(
                    [query],
                    [self.recommender.search_text(query)],
                    lambda asked: [self.recommender.search_text(q) for q in asked],
                )
        if gateway.words_paths != "text":
            with timings.stage("embed"):
                words = self.embedder.words([params.text])
            if words.path is not None:
                model_version = words.model_version
                with timings.stage("search"):
                    pictures = [self._words_query(params, words, intent)]
                    [by_pictures] = self._active_only(
                        pictures, self.recommender.recommend(pictures), self.recommender.recommend
                    )
        result, answered_by = fuse_rankings(
            by_text, by_pictures, pictures_weight=gateway.words_pictures_weight, k=k
        )
        garment = _Garment(
            box=None,
            features=None,
            categories=list(params.category or []),
            category=params.category[0] if params.category else intent.garment,
            probability=None,
        )
        with timings.stage("hydrate"):
            [group] = self._groups([garment], [result], shops=params.shop)
        group.answered_by, group.intent = answered_by, intent
        return self._respond([group], model_version, timings)

    def from_session(
        self,
        viewed: Sequence[ViewedProduct],
        not_for_me: Sequence[int],
        params: RecommendParams,
        *,
        shops: frozenset[str] | None = None,
    ) -> RecommendResponse:
        """ "Based on what you viewed": products like the ``viewed`` ones, away from the
        ``not_for_me`` ones, a group per kind of garment (its share of the ``k`` places in
        proportion to its views' decayed weight; :mod:`services.gateway.sessions`). Every
        product named must be in the catalog and within the shops searched (422 naming
        them)."""
        params = self._checked(params, shops)
        owners = self.catalog.product_shops([*(v.product_id for v in viewed), *not_for_me])
        check_products(viewed, not_for_me, owners, params.shop)
        timings = Timings()
        half_life = self.settings.gateway.session_half_life_h
        query = session_query(viewed, not_for_me, params, self._ranking(params), half_life)
        with timings.stage("search"):
            result = self.recommender.recommend_session(query)
            for _ in range(REFILL_ROUNDS):
                shown = [hit for group in result.groups for hit in group.hits]
                active = self.catalog.active_product_ids(hit.product_id for hit in shown)
                stale = [hit for hit in shown if hit.product_id not in active]
                if not stale:
                    break
                # Gone from the catalog while the index still has them (see _active_only).
                enabled = {s.name for s in self.catalog.list_sources(enabled_only=True)}
                gone = {hit.source for hit in stale if hit.source and hit.source not in enabled}
                query = query.model_copy(
                    update={
                        "exclude_product_ids": sorted(
                            {*query.exclude_product_ids, *(hit.product_id for hit in stale)}
                        ),
                        "exclude_sources": sorted({*query.exclude_sources, *gone}),
                    }
                )
                result = self.recommender.recommend_session(query)
        if result.missing:
            raise InvalidInputError(
                f"product {names(result.missing)} has no indexed pictures yet: a session "
                "starts from products the index holds"
            )
        garments = [
            _Garment(
                box=None,
                features=None,
                categories=list(params.category or group.categories),
                category=group.garment,
                probability=None,
                seen=_seen(group.colour_name, group.colour_p),
            )
            for group in result.groups
        ]
        with timings.stage("hydrate"):
            groups = self._groups(garments, list(result.groups))
        return self._respond(groups, result.model_version, timings)

    def _words_query(
        self, params: RecommendParams, words: WordVectors, intent: ParsedIntent
    ) -> RecommendQuery:
        """The pictures path's search: the words' point among the pictures, scoped to the
        garment class they name (unless ``cross_category``), ranked by the colour they name."""
        gateway = self.settings.gateway
        ranking = self._ranking(params)
        ranking["k"] = params.k or gateway.default_k
        colour = words.colours[0] if words.colours else None
        ranking["color_weight"] = gateway.words_colour_weight if colour is not None else 0.0
        scoped = intent.garment_parent is not None and not params.cross_category
        return RecommendQuery(
            embedding=words.vectors[0],
            colour=colour,
            model_version=words.model_version,
            categories=list(params.category or []),
            garments=[intent.garment_parent] if scoped and not params.category else [],
            category_votes=gateway.category_votes,
            match=False,
            **ranking,
        )

    def _text_query(
        self, params: RecommendParams, text: str, garments: list[str] | None = None
    ) -> TextQuery:
        ranking = self._ranking(params)
        # Refining a picture's ranking: as many as it has; alone: the caller's k.
        ranking["k"] = (
            MAX_TEXT_CANDIDATES
            if garments is not None
            else params.k or self.settings.gateway.default_k
        )
        return TextQuery(
            text=text,
            categories=list(params.category or []),
            garments=garments or [],
            scope=garments is None and not params.cross_category,
            **ranking,
        )

    def _refined(
        self, params: RecommendParams, results: list[RecommendResult]
    ) -> tuple[list[RecommendResult], ParsedIntent | None]:
        """The picture results refined by ``params.text`` (:func:`fuse_by_rank`), each against
        the words' ranking within its own garment classes."""
        if params.text is None:
            return results, None
        weight = DEFAULT_TEXT_WEIGHT if params.text_weight is None else params.text_weight
        k = params.k or self.settings.gateway.default_k
        refined, intent = [], None
        for result in results:
            words = self.recommender.search_text(
                self._text_query(params, params.text, list(result.garments))
            )
            intent = ParsedIntent(**words.intent.model_dump())
            refined.append(fuse_by_rank(result, words, weight, k))
        return refined, intent

    # ------------------------------------------------------------------------------ stages

    def scoped(self, params: RecommendParams, shops: frozenset[str] | None) -> RecommendParams:
        """The shops a search covers. Those the caller names must be within its storefront
        key's ``shops`` (403 naming the others) and in the catalog (422 naming the unknown
        ones); naming none, a storefront key's caller gets its ``shops`` (``None``: the admin
        or anyone, every shop)."""
        if not params.shop:
            return params if shops is None else params.model_copy(update={"shop": sorted(shops)})
        if shops is not None:
            outside = [name for name in params.shop if name not in shops]
            if outside:
                names = ", ".join(repr(name) for name in outside)
                covered = ", ".join(sorted(shops))
                raise ForbiddenError(
                    f"this API key does not cover shop {names}; it covers: {covered}"
                )
        known = [source.name for source in self.catalog.list_sources()]
        unknown = [name for name in params.shop if name not in known]
        if unknown:
            names = ", ".join(repr(name) for name in unknown)
            offered = ", ".join(known) if known else "none yet"
            raise InvalidInputError(f"no shop named {names}; the shops are: {offered}")
        return params

    def _checked(self, params: RecommendParams, shops: frozenset[str] | None) -> RecommendParams:
        """The parameters scoped to the caller's shops (:meth:`scoped`), their categories
        checked against those shops'."""
        params = self.scoped(params, shops)
        self._check_categories(params)
        return params

    def _check_categories(self, params: RecommendParams) -> None:
        """A category the caller asked for must be one this shop has (422 listing them)."""
        if not params.category:
            return
        known = self.catalog.categories(shops=params.shop)
        unknown = [name for name in params.category if name not in known]
        if unknown:
            names = ", ".join(repr(name) for name in unknown)
            offered = ", ".join(known) if known else "none yet (the catalog is empty)"
            raise InvalidInputError(f"this shop has no category {names}; it has: {offered}")

    def _garment(
        self, crop: GarmentCrop, features: CropFeatures, params: RecommendParams
    ) -> _Garment:
        """One garment's search: the caller's categories, else the garment classes of its
        scope (:func:`shared.scope.decide`); a product shot's (the detector named no class)
        are decided by the recommender from its nearest catalog products, in the search call
        itself (:class:`NeighbourVote`), unless the caller searches across classes."""
        box = [round(v, 1) for v in crop.box]
        colours: dict[str, Any] = {
            "colour": crop.colour.astype(np.float32).tolist(),
            "seen": _seen(crop.colour_name, crop.colour_p),
            "colour_probs": None if crop.colour_probs is None else crop.colour_probs.tolist(),
        }
        if params.category:
            first = params.category[0]
            probability = features.probabilities.get(first)
            return _Garment(box, features, list(params.category), first, probability, **colours)
        gateway = self.settings.gateway
        probabilities = read_classes(features.probabilities)
        if crop.category is None and gateway.neighbours and not params.cross_category:
            vote = NeighbourVote(
                neighbours=gateway.neighbours,
                probabilities=probabilities,
                neighbour_weight=gateway.neighbour_weight,
                threshold=gateway.category_threshold,
                max_parents=gateway.max_categories,
                unlikely_below=gateway.unlikely_class,
                category_votes=gateway.category_votes,
            )
            return _Garment(box, features, [], None, None, vote=vote, **colours)
        scope = decide(
            crop.category,
            probabilities,
            detector_weight=gateway.detector_weight,
            neighbour_weight=gateway.neighbour_weight,
            threshold=gateway.category_threshold,
            max_parents=gateway.max_categories,
            unlikely_below=gateway.unlikely_class,
        )
        if params.cross_category:
            return _Garment(box, features, [], scope.garment, scope.probability, **colours)
        return _Garment(
            box,
            features,
            [],
            scope.garment,
            scope.probability,
            parents=scope.parents,
            shares=scope.shares,
            unlikely=scope.unlikely,
            **colours,
        )

    def _ranking(self, params: RecommendParams) -> dict[str, Any]:
        """The recommender's :class:`Ranking` fields for these parameters."""
        gateway = self.settings.gateway
        k = params.k or gateway.default_k
        if params.text is not None:  # the words re-rank more of the pictures' candidates
            k = min(MAX_TEXT_CANDIDATES, 4 * k)
        same = params.colour_mode == "same"
        weight = gateway.color_weight if params.color_weight is None else params.color_weight
        return {
            "k": k,
            "metric": params.metric,
            "color_weight": weight if same else 0.0,
            "colour_share": gateway.colour_share if same else 0.0,
            "colour_names": [params.colour] if params.colour else [],
            "diversity": params.diversity,
            "filters": Filters(
                brand=params.brand or [],
                min_price=params.min_price,
                max_price=params.max_price,
                currency=params.currency,
                source=params.shop or [],
            ),
        }

    def _query(
        self,
        garment: _Garment,
        params: RecommendParams,
        model_version: str | None,
    ) -> RecommendQuery:
        assert garment.features is not None
        ranking = self._ranking(params)
        if params.colour_mode == "other" and garment.seen is not None:
            ranking["exclude_colour_names"] = [garment.seen.name]
        return RecommendQuery(
            embedding=garment.features.embedding,
            colour=garment.colour or None,
            colour_probs=garment.colour_probs,
            model_version=model_version,
            categories=garment.categories,
            garments=list(garment.parents),
            garment_shares=list(garment.shares),
            unlikely_garments=list(garment.unlikely),
            category_votes=self.settings.gateway.category_votes if garment.parents else 0,
            vote=garment.vote,
            **ranking,
        )

    def _answer(
        self,
        garments: list[_Garment],
        params: RecommendParams,
        model_version: str | None,
        timings: Timings,
    ) -> RecommendResponse:
        with timings.stage("search"):
            queries = [self._query(g, params, model_version) for g in garments]
            results = self.recommender.recommend(queries)
            for i, result in enumerate(results):
                if garments[i].vote is not None and result.decided is not None:
                    # A product shot's classes, decided in that call: asked again (for hits
                    # gone inactive), it searches them as they are.
                    garments[i] = _decided(garments[i], result.decided)
                    queries[i] = self._query(garments[i], params, model_version)
            results = self._active_only(queries, results, self.recommender.recommend)
            results, intent = self._refined(params, results)
        with timings.stage("hydrate"):
            groups = self._groups(garments, results, shops=params.shop)
        _mark(groups, intent)
        return self._respond(groups, model_version, timings)

    def _active_only(
        self,
        queries: Sequence[RecommendQuery] | Sequence[TextQuery],
        results: Sequence[_R],
        search: Callable[[list[Any]], list[_R]],
    ) -> list[_R]:
        """Results without the hits whose product the catalog no longer shows as active (its
        source was disabled or removed, it left the shop) while the index still has them: each
        query that lost hits is asked again (``search``) without those products and without
        the sources no longer enabled, so that it still fills its k places."""
        asked: list[Any] = list(queries)
        found = list(results)
        for _ in range(REFILL_ROUNDS):
            active = self.catalog.active_product_ids(
                hit.product_id for result in found for hit in result.hits
            )
            stale = [
                i
                for i, result in enumerate(found)
                if any(hit.product_id not in active for hit in result.hits)
            ]
            if not stale:
                break
            enabled = {source.name for source in self.catalog.list_sources(enabled_only=True)}
            for i in stale:
                dropped: list[ProductHit] = [
                    hit for hit in found[i].hits if hit.product_id not in active
                ]
                gone = {hit.source for hit in dropped if hit.source and hit.source not in enabled}
                query = asked[i]
                asked[i] = query.model_copy(
                    update={
                        "exclude_product_ids": sorted(
                            {*query.exclude_product_ids, *(hit.product_id for hit in dropped)}
                        ),
                        "exclude_sources": sorted({*query.exclude_sources, *gone}),
                    }
                )
            again = search([asked[i] for i in stale])
            for i, result in zip(stale, again, strict=True):
                found[i] = result
        return found

    def _respond(
        self,
        groups: list[Group],
        model_version: str | None,
        timings: Timings,
        *,
        notice: str | None = None,
    ) -> RecommendResponse:
        timings_ms = timings.done()
        if self.observe is not None:
            self.observe(timings_ms)
        return RecommendResponse(
            groups=groups, timings_ms=timings_ms, model_version=model_version, notice=notice
        )

    def _groups(
        self,
        garments: list[_Garment],
        results: list[RecommendResult],
        *,
        shops: Sequence[str] | None = None,
        besides: int | None = None,
    ) -> list[Group]:
        """One group per garment, products from the catalog; a product several shops sell
        (an offer group) once in the whole answer, with the other shops' offers (of ``shops``
        only, when given), and never when it is the product ``besides`` ("more like this")."""
        ids = sorted({hit.product_id for result in results for hit in result.hits})
        products = self.catalog.get_products(ids) if ids else {}
        asked = [*ids, besides] if ids and besides is not None else ids
        offered = self.catalog.offers_of(asked, shops=shops) if ids else {}
        itself = offered[besides].id if besides in offered else None
        shown: dict[int, int] = {}  # offer group -> the product that shows it
        groups = []
        for garment, result in zip(garments, results, strict=True):
            recommendations: list[Recommendation] = []
            for hit in result.hits:
                product = products.get(hit.product_id)
                if product is None or not product.active:
                    continue  # deleted or deactivated since it was indexed
                offer_group = offered.get(product.id)
                if offer_group is not None and offer_group.id == itself:
                    continue  # the product asked about, at another shop
                if offer_group is not None:
                    product = products[shown.setdefault(offer_group.id, product.id)]
                    if any(r.id == product.id for r in recommendations):
                        continue  # another shop's offer of a product listed already
                recommendations.append(
                    Recommendation(
                        id=product.id,
                        title=product.title,
                        url=product.canonical_url,
                        image_url=hit.image_url,
                        price=float(product.price) if product.price is not None else None,
                        currency=product.currency,
                        brand=product.brand,
                        category=product.category,
                        score=round(hit.score, 4),
                        colour=hit.colour_name,
                        match=hit.match,
                        offers=other_offers(offer_group, product.id),
                    )
                )
            notice = None
            if not recommendations and result.garments:
                kinds = " or ".join(str(label(p, plural=True)).lower() for p in result.garments)
                notice = f"This shop has no {kinds}."
            elif recommendations and result.close_match is False:
                notice = NO_CLOSE_MATCH
            groups.append(
                Group(
                    box=garment.box,
                    category=garment.category,
                    probability=garment.probability,
                    searched=garment.categories or result.garments,
                    notice=notice,
                    colour=garment.seen,
                    recommendations=recommendations,
                )
            )
        return groups


def other_offers(group: OfferGroupOut | None, product_id: int) -> list[Offer]:
    """The offers of the product's group but its own: the other shops' price and link."""
    if group is None:
        return []
    return [
        Offer(
            id=offer.product_id,
            shop=offer.shop,
            title=offer.title,
            price=float(offer.price) if offer.price is not None else None,
            currency=offer.currency,
            url=offer.url,
        )
        for offer in group.offers
        if offer.product_id != product_id
    ]


def _seen(name: str | None, probability: float | None) -> SeenColour | None:
    """A garment's named colour for its group (none before colours were named)."""
    if name is None or probability is None:
        return None
    return SeenColour(name=name, probability=round(probability, 3))


def _mark(groups: list[Group], intent: ParsedIntent | None) -> None:
    """Groups refined by words say so, with what the words were read as."""
    if intent is not None:
        for group in groups:
            group.answered_by, group.intent = "both", intent
