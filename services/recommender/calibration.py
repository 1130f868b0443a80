"""Scores a shopper can read: a hit's score placed among how close products of the same kind
are in its own shop.

Raw similarities do not travel between domains: a street crop's best catalog match scores
far lower than a catalog photo's nearest neighbour does, however good the match. What travels
is the *lead*: how far a hit's score stands above its *background*, the median score of the
query's candidates ranked :data:`BACKGROUND` among the products of the hit's own shop (one
score per product, its best crop). A **scale** is learnt per shop and garment class: for a
sample of the shop's crops of that class, the lead of each one's nearest same-shop,
same-class product. A hit that leads like the median of them is "very close", one above the
low quantile :data:`CLOSE_Q` is "close", the rest "loose"; a garment whose best hit leads less
than the floor quantile :data:`FLOOR_Q` of its class has "no close match in this shop".

Three properties follow from that and are what a shopper can rely on:

- **Monotone in the score shown.** The lead is taken on the score the answer shows (shape and
  colour blended by :func:`blend`, with the query's colour weight), the scale is learnt on the
  same blend, and one query has one background per shop: within a shop and class, a higher
  score never gets a weaker word.
- **Per shop and class.** Shoes photographed alike lead their neighbours by more than tops do;
  each class has its own scale, the shop's pooled scale standing in for a class with fewer than
  :data:`MIN_SAMPLE` measured crops.
- **Stable when another shop is added.** Neither the background nor the scale of a shop looks
  at another shop's products.

Scales are learnt off the query path, per shop, and kept for :data:`TTL_S` (a catalog grows
slowly; a shop too small to measure is tried again after :data:`UNMEASURED_TTL_S`): a query
meeting a shop whose scale is not learnt yet gets no words for its products.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeVar

import numpy as np

from shared.colour import COLOUR_DIM, SHOPPER_COLOURS, named_probabilities, same_colour
from shared.index_layout import COLOUR_VECTOR, SHAPE_VECTOR
from shared.taxonomy import PARENTS
from shared.vectors import PayloadFilter, VectorIndex

__all__ = [
    "NEIGHBOURS",
    "Calibrator",
    "Match",
    "Scale",
    "ShopScales",
    "background",
    "blend",
    "shop_filter",
]

log = logging.getLogger(__name__)

Match = Literal["very close", "close", "loose"]
BACKGROUND = slice(10, 50)
"""Ranks (one product each, best first) whose median score is the background."""
NEIGHBOURS = 100
"""Crops, nearest by shape, whose products make a background (a query's and a sample's)."""
SAMPLE = 48
"""Crops measured per shop and class (one k-NN search each)."""
PROBES = 4
VERY_CLOSE_Q = 0.5
CLOSE_Q = 0.1
FLOOR_Q = 0.02
TTL_S = 3600.0
UNMEASURED_TTL_S = 60.0
"""How long a shop too small to have a scale waits to be measured again (it is filling up)."""
MIN_BACKGROUND = 10
MIN_SAMPLE = 8
"""Below this many measured crops a class borrows its shop's pooled scale; a shop with fewer
has no scale (a tiny catalog): no words, no floor."""


def blend(shape: float | None, colour: float | None, weight: float) -> float:
    """The score a hit shows: ``(1 - weight) * shape + weight * colour``, each in [0, 1]."""
    if weight <= 0.0:
        return shape or 0.0
    if weight >= 1.0:
        return colour or 0.0
    return (1.0 - weight) * (shape or 0.0) + weight * (colour or 0.0)


def background(scores: Iterable[float]) -> float | None:
    """The median of the :data:`BACKGROUND` ranks of ``scores`` (one per product, any order),
    or ``None`` when there are too few to tell."""
    ranked = sorted(scores, reverse=True)[BACKGROUND]
    return float(np.median(ranked)) if len(ranked) >= MIN_BACKGROUND else None


def best_per_product(scores: Iterable[tuple[int, float]]) -> list[float]:
    """Each product's best score, from ``(product_id, score)`` pairs of its crops."""
    best: dict[int, float] = {}
    for product_id, score in scores:
        if score > best.get(product_id, -np.inf):
            best[product_id] = score
    return list(best.values())


class _ProductScore(Protocol):
    @property
    def product_id(self) -> int: ...

    score: float


_S = TypeVar("_S", bound=_ProductScore)


def best_hit_per_product(scored: Sequence[_S]) -> list[_S]:
    """One scored crop per product, its best; best first (ties: the lower product id)."""
    best: dict[int, _S] = {}
    for item in scored:
        current = best.get(item.product_id)
        if current is None or item.score > current.score:
            best[item.product_id] = item
    return sorted(best.values(), key=lambda item: (-item.score, item.product_id))


def shop_filter(where: PayloadFilter, source: str | None) -> PayloadFilter:
    """``where`` narrowed to one shop's products (``None``: an index without shops)."""
    if source is None:
        return where
    return PayloadFilter(
        equals={**where.equals, "source": source}, ranges=where.ranges, excludes=where.excludes
    )


@dataclass(frozen=True)
class Scale:
    """Quantiles of a sampled crop's nearest same-shop, same-kind product's lead."""

    very_close: float
    close: float
    floor: float
    sample: int

    @classmethod
    def of(cls, leads: Sequence[float]) -> Scale | None:
        if len(leads) < MIN_SAMPLE:
            return None
        q = np.quantile(np.asarray(leads), [VERY_CLOSE_Q, CLOSE_Q, FLOOR_Q])
        return cls(
            very_close=round(float(q[0]), 4),
            close=round(float(q[1]), 4),
            floor=round(float(q[2]), 4),
            sample=len(leads),
        )

    def match(self, lead: float | None) -> Match | None:
        """A hit's word from its lead over its shop's background (``None``: unknown)."""
        if lead is None:
            return None
        if lead >= self.very_close:
            return "very close"
        return "close" if lead >= self.close else "loose"

    def is_close(self, lead: float | None) -> bool | None:
        """Whether a hit leads like nearly all same-kind pairs of its shop (``None``: unknown)."""
        return None if lead is None else lead >= self.floor


@dataclass(frozen=True)
class _Neighbourhood:
    """One sampled crop's nearest same-shop, same-kind crops: their products, shape and colour
    similarities, and the chance that each is the sampled crop's named colour (nearest by
    shape first)."""

    products: np.ndarray
    shape: np.ndarray
    colour: np.ndarray
    named: np.ndarray

    def lead(self, weight: float, share: float = 0.0) -> float | None:
        colour = (1.0 - share) * self.colour + share * self.named if share > 0 else self.colour
        if weight <= 0.0:
            scores = self.shape
        elif weight >= 1.0:
            scores = colour
        else:  # blend(), for every crop at once
            scores = (1.0 - weight) * self.shape + weight * colour
        per_product = best_per_product(zip(self.products.tolist(), scores.tolist(), strict=True))
        floor = background(per_product)
        return None if floor is None else max(per_product) - floor


@dataclass
class ShopScales:
    """What was measured of one shop: the neighbourhoods of sampled crops, by garment class.
    :meth:`scale` reads a scale at any colour weight from them."""

    by_kind: Mapping[str, Sequence[_Neighbourhood]]
    _memo: dict[tuple[str | None, float, float], Scale | None] = field(default_factory=dict)

    def scale(self, kind: str | None, weight: float, share: float = 0.0) -> Scale | None:
        """The class's scale at this colour weight and named-colour share, else the shop's
        pooled one."""
        key = (kind, round(weight, 3), round(share, 3))
        if key not in self._memo:
            own = self._scale(self.by_kind.get(kind, []) if kind else [], weight, share)
            pooled = [n for group in self.by_kind.values() for n in group]
            self._memo[key] = own if own is not None else self._scale(pooled, weight, share)
        return self._memo[key]

    @staticmethod
    def _scale(
        neighbourhoods: Sequence[_Neighbourhood], weight: float, share: float
    ) -> Scale | None:
        leads = [n.lead(weight, share) for n in neighbourhoods]
        return Scale.of([lead for lead in leads if lead is not None])


class Calibrator:
    """Learns and caches a shop's scales per collection, off the query path: a query reads the
    cached ones and, when they are missing or older than :data:`TTL_S`, starts one background
    refresh for that shop (its queries before the first one ends have no words)."""

    def __init__(self, index: VectorIndex, *, sample: int = SAMPLE, seed: int = 0) -> None:
        self.index = index
        self.sample = sample
        self.seed = seed
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str | None], tuple[float, ShopScales]] = {}
        self._learning: dict[tuple[str, str | None], threading.Thread] = {}

    def scale(
        self,
        collection: str,
        source: str | None,
        kind: str | None,
        weight: float,
        share: float = 0.0,
        *,
        wait: bool = False,
    ) -> Scale | None:
        """The scale of ``source``'s ``kind`` at colour ``weight`` and named-colour ``share``
        (``None``: not learnt yet, or too few products to have one); ``wait``: until a
        refresh this call starts or finds has ended."""
        shop = self.shop(collection, source, wait=wait)
        return shop.scale(kind, weight, share) if shop is not None else None

    def shop(self, collection: str, source: str | None, *, wait: bool = False) -> ShopScales | None:
        key = (collection, source)
        with self._lock:
            cached = self._cache.get(key)
            thread = self._learning.get(key)
            stale = cached is None or time.monotonic() >= cached[0]
            if stale and thread is None:
                thread = threading.Thread(
                    target=self._refresh, args=key, daemon=True, name="calibration"
                )
                self._learning[key] = thread
                thread.start()
        if wait and thread is not None:
            thread.join()
            with self._lock:
                cached = self._cache.get(key)
        return cached[1] if cached is not None else None

    def _refresh(self, collection: str, source: str | None) -> None:
        key = (collection, source)
        try:
            scales = self.learn(collection, source)
        except Exception:  # any index error: logged, and the next query tries again
            log.warning(
                "could not learn the match scale of %s in %s", source, collection, exc_info=True
            )
            with self._lock:
                del self._learning[key]
            return
        ttl = TTL_S if scales.scale(None, 0.0) is not None else UNMEASURED_TTL_S
        with self._lock:
            self._cache[key] = (time.monotonic() + ttl, scales)
            del self._learning[key]

    def learn(self, collection: str, source: str | None) -> ShopScales:
        """Measure a sample of each garment class of the shop (random colour probes find
        varied crops)."""
        rng = np.random.default_rng(self.seed)
        by_kind: dict[str, list[_Neighbourhood]] = {}
        for kind in PARENTS:
            where = shop_filter(PayloadFilter(equals={"active": 1, "garment_parent": kind}), source)
            by_kind[kind] = [
                self._neighbourhood(collection, where, *sampled)
                for sampled in self._sample(collection, where, rng)
            ]
        return ShopScales({kind: found for kind, found in by_kind.items() if found})

    def _sample(
        self, collection: str, where: PayloadFilter, rng: np.random.Generator
    ) -> list[tuple[list[float], list[float], int, list[float] | None]]:
        """Crops of ``where`` found by random colour probes: shape, colour, product, and the
        named-colour probabilities its payload implies (none before colours were named)."""
        seen: dict[str, tuple[list[float], list[float], int, list[float] | None]] = {}
        per_probe = max(1, self.sample // PROBES)
        for _ in range(PROBES):
            probe = rng.random(COLOUR_DIM).astype(np.float32).tolist()
            hits = self.index.search(
                collection,
                COLOUR_VECTOR,
                probe,
                limit=per_probe,
                where=where,
                with_vectors=[SHAPE_VECTOR, COLOUR_VECTOR],
            )
            if not hits:
                break
            for hit in hits:
                vectors = hit.vectors or {}
                if vectors.get(SHAPE_VECTOR) is not None:
                    name = hit.payload.get("colour_name")
                    seen[hit.id] = (
                        vectors[SHAPE_VECTOR],
                        vectors.get(COLOUR_VECTOR) or [0.0] * COLOUR_DIM,
                        int(hit.payload["product_id"]),
                        None
                        if name not in SHOPPER_COLOURS
                        else named_probabilities(name, hit.payload.get("colour_p")),
                    )
        return list(seen.values())

    def _neighbourhood(
        self,
        collection: str,
        where: PayloadFilter,
        shape: list[float],
        colour_vector: list[float],
        product_id: int,
        probabilities: list[float] | None,
    ) -> _Neighbourhood:
        """The nearest crops by shape of other products under ``where``, with the colour
        similarity of each to the sampled crop's colour."""
        colour = np.asarray(colour_vector, dtype=np.float32)
        colour /= max(float(np.linalg.norm(colour)), 1e-12)
        hits = self.index.search(
            collection,
            SHAPE_VECTOR,
            shape,
            limit=NEIGHBOURS,
            where=PayloadFilter(
                equals=where.equals,
                ranges=where.ranges,
                excludes={**where.excludes, "product_id": [product_id]},
            ),
            with_vectors=[COLOUR_VECTOR],
        )
        stored = np.array(
            [(hit.vectors or {}).get(COLOUR_VECTOR) or [0.0] * COLOUR_DIM for hit in hits],
            dtype=np.float32,
        ).reshape(len(hits), COLOUR_DIM)
        return _Neighbourhood(
            products=np.array([int(hit.payload["product_id"]) for hit in hits], dtype=np.int64),
            shape=np.clip(np.array([hit.score for hit in hits], dtype=np.float64), 0.0, 1.0),
            colour=np.clip((stored @ colour).astype(np.float64), 0.0, 1.0),
            named=np.array(
                [
                    same_colour(
                        probabilities, hit.payload.get("colour_name"), hit.payload.get("colour_p")
                    )
                    if probabilities is not None
                    else 1.0 / len(SHOPPER_COLOURS)
                    for hit in hits
                ],
                dtype=np.float64,
            ),
        )
