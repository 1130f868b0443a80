"""Scores a shopper can read: a hit's similarity placed among how close products of the same
kind are in this very catalog.

Raw similarities do not travel between domains: a street crop's best catalog match scores
far lower than a catalog photo's nearest neighbour does, however good the match. What travels
is the *lead*: how far a hit stands above the query's background, the median similarity of
its candidates ranked :data:`BACKGROUND` (other products of the kind searched). For a sample
of the catalog's crops the lead of each one's nearest same-kind product is measured; its
quantiles are the scale. A hit that leads like the median same-kind neighbour is "very
close", one above the low quantile :data:`CLOSE_Q` is "close", the rest "loose"; a garment
whose best hit leads less than the floor quantile :data:`FLOOR_Q` has "no close match in this
shop". The scale is learnt per collection and kept for :data:`TTL_S` (a catalog grows slowly).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from shared.colour import COLOUR_DIM
from shared.index_layout import COLOUR_VECTOR, SHAPE_VECTOR
from shared.vectors import PayloadFilter, VectorIndex

__all__ = ["Calibration", "Calibrator", "Match", "background"]

log = logging.getLogger(__name__)

Match = Literal["very close", "close", "loose"]
BACKGROUND = slice(10, 50)
"""Candidates (ranked by shape similarity, one per product) whose median is the background."""
SAMPLE = 192
"""Catalog crops measured per collection (one k-NN search each)."""
PROBES = 6
VERY_CLOSE_Q = 0.5
CLOSE_Q = 0.1
FLOOR_Q = 0.01
TTL_S = 3600.0
MIN_BACKGROUND = 10
MIN_SAMPLE = 8
"""Below this many measured crops there is no scale (a tiny catalog): no labels, no floor."""


def background(similarities: Sequence[float]) -> float | None:
    """The median of the :data:`BACKGROUND` ranks of ``similarities`` (best first), or
    ``None`` when there are too few candidates to tell."""
    ranked = sorted(similarities, reverse=True)[BACKGROUND]
    return float(np.median(ranked)) if len(ranked) >= MIN_BACKGROUND else None


@dataclass(frozen=True)
class Calibration:
    """Quantiles of a catalog crop's nearest same-kind product's lead over its background."""

    very_close: float
    close: float
    floor: float
    sample: int

    def match(self, similarity: float | None, floor: float | None) -> Match | None:
        """A hit's label from its similarity and its query's background."""
        if similarity is None or floor is None:
            return None
        lead = similarity - floor
        if lead >= self.very_close:
            return "very close"
        return "close" if lead >= self.close else "loose"

    def is_close(self, similarity: float | None, floor: float | None) -> bool | None:
        """Whether a garment's best hit leads like nearly all same-kind pairs of the catalog
        (``None``: too few candidates to tell)."""
        if similarity is None or floor is None:
            return None
        return similarity - floor >= self.floor


class Calibrator:
    """Learns and caches a :class:`Calibration` per collection, off the query path: a query
    reads the cached scale and, when it is missing or older than :data:`TTL_S`, starts one
    background refresh (a query before the first one ends has no labels)."""

    def __init__(self, index: VectorIndex, *, sample: int = SAMPLE, seed: int = 0) -> None:
        self.index = index
        self.sample = sample
        self.seed = seed
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, Calibration | None]] = {}
        self._learning: dict[str, threading.Thread] = {}

    def get(self, collection: str, *, wait: bool = False) -> Calibration | None:
        """The collection's cached scale, or ``None`` (not learnt yet, or a catalog too small
        to have one); ``wait``: until a refresh this call starts or finds has ended."""
        with self._lock:
            cached = self._cache.get(collection)
            thread = self._learning.get(collection)
            stale = cached is None or time.monotonic() - cached[0] >= TTL_S
            if stale and thread is None:
                thread = threading.Thread(
                    target=self._refresh, args=(collection,), daemon=True, name="calibration"
                )
                self._learning[collection] = thread
                thread.start()
        if wait and thread is not None:
            thread.join()
            with self._lock:
                cached = self._cache.get(collection)
        return cached[1] if cached is not None else None

    def _refresh(self, collection: str) -> None:
        try:
            calibration = self.learn(collection)
        except Exception:  # any index error: logged, and the next query tries again
            log.warning("could not learn the match scale of %s", collection, exc_info=True)
            with self._lock:
                del self._learning[collection]
            return
        with self._lock:
            self._cache[collection] = (time.monotonic(), calibration)
            del self._learning[collection]

    def learn(self, collection: str) -> Calibration | None:
        """Measure a sample of the collection (random colour probes find varied crops)."""
        rng = np.random.default_rng(self.seed)
        seen: dict[str, tuple[list[float], int, str]] = {}
        per_probe = max(1, self.sample // PROBES)
        for _ in range(PROBES):
            probe = rng.random(COLOUR_DIM).astype(np.float32).tolist()
            hits = self.index.search(
                collection,
                COLOUR_VECTOR,
                probe,
                limit=per_probe,
                where=PayloadFilter(equals={"active": 1}),
                with_vectors=[SHAPE_VECTOR],
            )
            for hit in hits:
                vector = (hit.vectors or {}).get(SHAPE_VECTOR)
                kind = hit.payload.get("garment_parent")
                if vector is not None and kind:
                    seen[hit.id] = (vector, int(hit.payload["product_id"]), str(kind))
        leads = []
        for vector, product_id, kind in seen.values():
            nearest = self.index.search(
                collection,
                SHAPE_VECTOR,
                vector,
                limit=BACKGROUND.stop,
                where=PayloadFilter(
                    equals={"active": 1, "garment_parent": kind},
                    excludes={"product_id": [product_id]},
                ),
            )
            scores = [max(0.0, min(1.0, hit.score)) for hit in nearest]
            floor = background(scores)
            if floor is not None:
                leads.append(scores[0] - floor)
        if len(leads) < MIN_SAMPLE:
            return None
        q = np.quantile(np.asarray(leads), [VERY_CLOSE_Q, CLOSE_Q, FLOOR_Q])
        return Calibration(
            very_close=round(float(q[0]), 4),
            close=round(float(q[1]), 4),
            floor=round(float(q[2]), 4),
            sample=len(leads),
        )
