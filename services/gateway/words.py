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

from services.recommender.schemas import ProductHit, RecommendResult, TextResult
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
    text: TextResult | None,
    pictures: RecommendResult | None,
    *,
    pictures_weight: float,
    k: int,
) -> tuple[RecommendResult, AnsweredBy]:
    """Words alone: the text ranking and the pictures' ranking fused by reciprocal rank, best
    ``k`` first, scored 0-1 against the best possible; with the path that answered.

    Each path counts by what it knows. A text hit whose own words share a word with the query
    (``said``) scores ``1 / (RRF_K + its text rank)``; one that does not (the sentence model's
    vague likeness) scores nothing. A pictures hit scores ``(1 - evidence) * pictures_weight /
    (RRF_K + its rank)``, ``evidence`` being the share of text hits that said the words. A shop
    whose titles name what was asked is answered by its titles, one whose titles say nothing
    by its pictures, a mixed one (or a brand that few products carry) by both. Places left
    are filled by the text's other hits, then the pictures'. When neither knows anything, the
    text's ranking by meaning answers, else the pictures'."""
    evidence = text.evidence if text is not None else 0.0
    weight = (1.0 - evidence) * pictures_weight
    said = text is not None and any(hit.said for hit in text.hits)
    seen = pictures is not None and bool(pictures.hits) and weight > 0
    if not said and not seen:
        alone = text if text is not None and text.hits else pictures
        if alone is None:
            return RecommendResult(hits=[]), "text"
        return (
            alone.model_copy(update={"hits": alone.hits[:k]}),
            "text" if alone is text else "pictures",
        )
    rankings: list[tuple[RecommendResult, list[float]]] = []
    if said and text is not None:
        rankings.append((text, [1.0 if hit.said else 0.0 for hit in text.hits]))
    if seen and pictures is not None:
        rankings.append((pictures, [weight] * len(pictures.hits)))
    fused: dict[int, float] = {}
    hits: dict[int, ProductHit] = {}
    for result, weights in rankings:
        for rank, (hit, share) in enumerate(zip(result.hits, weights, strict=True), start=1):
            if share > 0:
                hits.setdefault(hit.product_id, hit)
                fused[hit.product_id] = fused.get(hit.product_id, 0.0) + share / (RRF_K + rank)
    best = sum(max(weights) for _, weights in rankings) / (RRF_K + 1)
    order = sorted(fused, key=lambda pid: (-fused[pid], pid))[:k]
    # Places left (a scope the words' own products do not fill): the text's other hits by
    # meaning, then the pictures', each in its order, scored as the least of those shown.
    floor = min((fused[pid] for pid in order), default=0.0)
    rest = [hit for other in (text, pictures) if other is not None for hit in other.hits]
    for hit in rest:
        if len(order) >= k:
            break
        if hit.product_id not in fused:
            hits[hit.product_id], fused[hit.product_id] = hit, floor
            order.append(hit.product_id)
    answered: AnsweredBy = "both" if said and seen else "text" if said else "pictures"
    return (
        rankings[0][0].model_copy(
            update={
                "hits": [
                    hits[pid].model_copy(update={"score": round(min(1.0, fused[pid] / best), 6)})
                    for pid in order
                ],
                "candidates": len(fused),
                "garments": _searched([result for result, _ in rankings]),
            }
        ),
        answered,
    )


def _searched(results: list[RecommendResult]) -> list[str]:
    """The garment classes the fused paths searched: every class when any path did."""
    if any(not result.garments for result in results):
        return []
    return sorted({garment for result in results for garment in result.garments})
