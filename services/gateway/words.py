"""Words on ``POST /recommend``: the two paths that answer them and how their rankings meet.

* the **text** path ranks the products by their own words (the recommender's
  :meth:`~services.recommender.service.Recommender.search_text`: titles, brands, categories,
  attributes);
* the **pictures** path ranks the garments by what they look like: the words become a point
  among the pictures (the embedder's ``words``: a foundation model's text tower, or the word
  bridge learnt for the shop's model) and are searched as a photo's garment is, scoped to the
  garment class the words name and ranked by the colour they name.

Alone, the words' answer is both rankings fused by reciprocal rank (:func:`fuse_rankings`);
refining a photo, the words re-rank the photo's own candidates (:func:`fuse_by_rank`).
"""

from __future__ import annotations

from typing import Any, Literal

from services.recommender.schemas import RecommendResult, TextResult
from shared.words import RRF_K

__all__ = ["AnsweredBy", "fuse_by_rank", "fuse_rankings"]

AnsweredBy = Literal["text", "pictures", "both"]


def fuse_by_rank(
    pictures: RecommendResult, words: TextResult, weight: float, k: int
) -> RecommendResult:
    """The picture ranking refined by the words' ranking: each of the picture's hits scores
    ``1 / (RRF_K + its rank) + weight / (RRF_K + its rank by words)`` (no term when the words
    did not rank it), best ``k`` first. A negative ``weight`` pushes down what matches the
    words. Only the pictures' candidates are ranked (refining never brings in a product that
    looks nothing like the photo); each keeps its picture similarity as its score."""
    by_words = {hit.product_id: rank for rank, hit in enumerate(words.hits, start=1)}

    def fused(item: tuple[int, Any]) -> float:
        rank, hit = item
        text_rank = by_words.get(hit.product_id)
        bonus = 0.0 if text_rank is None else weight / (RRF_K + text_rank)
        return 1.0 / (RRF_K + rank) + bonus

    ranked = sorted(enumerate(pictures.hits, start=1), key=fused, reverse=True)
    return pictures.model_copy(update={"hits": [hit for _, hit in ranked[:k]]})


def fuse_rankings(
    text: RecommendResult | None,
    pictures: RecommendResult | None,
    *,
    pictures_weight: float,
    k: int,
) -> tuple[RecommendResult, AnsweredBy]:
    """Words alone: the text ranking and the pictures' ranking fused by reciprocal rank (a
    product scores ``1 / (RRF_K + its text rank) + pictures_weight / (RRF_K + its pictures
    rank)``), best ``k`` first, scored 0-1 against the best possible; with the path that
    answered. A path with no hits (no text points, no way to read words as pictures) leaves
    the other's ranking as it is."""
    ranked = [
        (name, result, weight)
        for name, result, weight in (("text", text, 1.0), ("pictures", pictures, pictures_weight))
        if result is not None and result.hits and weight > 0
    ]
    if not ranked:
        empty = text or pictures or RecommendResult(hits=[])
        return empty.model_copy(update={"hits": []}), "text" if pictures is None else "pictures"
    if len(ranked) == 1:
        name, result, _ = ranked[0]
        return result.model_copy(update={"hits": result.hits[:k]}), name  # type: ignore[return-value]
    fused: dict[int, float] = {}
    hits: dict[int, Any] = {}
    for _, result, weight in ranked:
        for rank, hit in enumerate(result.hits, start=1):
            hits.setdefault(hit.product_id, hit)
            fused[hit.product_id] = fused.get(hit.product_id, 0.0) + weight / (RRF_K + rank)
    best = sum(weight for _, _, weight in ranked) / (RRF_K + 1)
    order = sorted(fused, key=lambda pid: (-fused[pid], pid))[:k]
    first = ranked[0][1]
    return (
        first.model_copy(
            update={
                "hits": [
                    hits[pid].model_copy(update={"score": round(fused[pid] / best, 6)})
                    for pid in order
                ],
                "candidates": len(fused),
                "garments": _searched([r for _, r, _ in ranked]),
            }
        ),
        "both",
    )


def _searched(results: list[RecommendResult]) -> list[str]:
    """The garment classes the fused paths searched: every class when any path did."""
    if any(not result.garments for result in results):
        return []
    return sorted({garment for result in results for garment in result.garments})
