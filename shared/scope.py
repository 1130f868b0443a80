"""What kind of garment a query crop is, and which garment classes its search is scoped to.

Each view is read as a distribution over the shared taxonomy's parents and blended with the
crop classifier's probabilities (it sees the garment's detail):

- a street crop: with the detector's class (it sees the whole body: a box at the feet is
  footwear), weight ``gateway.detector_weight``;
- a product shot (the foreground path, no detector class): with the classes of its nearest
  catalog products (voted inside the recommender's search call, which is why this lives in
  ``shared``), weight ``gateway.neighbour_weight``: such a photo looks like the
  shop's own, which a street-trained classifier knows least. A street crop's neighbours are
  no guide (on the dev street photos they took garment hit@10 from 0.65 to 0.56).

The most probable parent is searched alone when its probability reaches
``gateway.category_threshold``; below it, the top ``gateway.max_categories`` parents
are, sharing the places by probability. The search never widens to every class on its own: a
class the shop does not sell answers no products and says so.

Within the parents searched, the classes finer than their parent that the classifier knows and
all but rules out (probability below ``gateway.unlikely_class``) are *unlikely*: their
products come after the others. Jeans the classifier reads as trousers then meet trousers,
jeans and shorts before skirts; a class the classifier has no name for is never ruled out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from shared.taxonomy import garment_class, parent

__all__ = ["Scope", "decide", "label", "parent_probabilities", "unlikely_classes"]


@dataclass(frozen=True)
class Scope:
    """The garment a crop shows and the parents its search covers (most probable first)."""

    garment: str | None
    probability: float | None
    parents: tuple[str, ...]
    shares: tuple[float, ...] = ()
    """Each parent's blended probability (the share of the results it gets)."""
    unlikely: tuple[str, ...] = ()
    """Finer classes of the parents searched whose products come last."""


def parent_probabilities(probabilities: Mapping[str, float]) -> dict[str, float]:
    """A classifier's class probabilities summed per taxonomy parent, most probable first
    (classes the taxonomy cannot read are left out)."""
    totals: dict[str, float] = {}
    for name, probability in probabilities.items():
        top = parent(name)
        if top is not None:
            totals[top] = totals.get(top, 0.0) + probability
    return dict(sorted(totals.items(), key=lambda item: -item[1]))


def decide(
    detected: str | None,
    probabilities: Mapping[str, float],
    *,
    neighbours: Sequence[str | None] = (),
    detector_weight: float,
    neighbour_weight: float = 0.0,
    threshold: float,
    max_parents: int,
    unlikely_below: float = 0.0,
) -> Scope:
    """The scope of one crop's search from the detector's class (else the classes of the
    nearest catalog products) and the classifier's probabilities; any may be missing."""
    by_parent = parent_probabilities(probabilities)
    detected_parent = parent(detected)
    votes = _rank_votes(neighbours)
    if detected_parent is not None:
        other, weight = {detected_parent: 1.0}, detector_weight
    else:
        other, weight = votes, neighbour_weight
    if not by_parent:
        weight = 1.0
    if not other:
        weight = 0.0
    blended = {name: (1.0 - weight) * p for name, p in by_parent.items()}
    for name, p in other.items():
        blended[name] = blended.get(name, 0.0) + weight * p
    if not blended:
        return Scope(None, None, ())
    ranked = sorted(blended.items(), key=lambda item: -item[1])
    best, probability = ranked[0]
    count = 1 if probability >= threshold else max_parents
    chosen = [(name, p) for name, p in ranked[:count] if p > 0.0]
    parents = tuple(name for name, _ in chosen)
    return Scope(
        _finest(best, probabilities),
        round(probability, 4),
        parents,
        tuple(round(p, 4) for _, p in chosen),
        unlikely_classes(probabilities, parents, unlikely_below),
    )


def unlikely_classes(
    probabilities: Mapping[str, float], parents: Sequence[str], below: float
) -> tuple[str, ...]:
    """The classifier's classes finer than their parent, under ``parents``, with a probability
    below ``below`` (sorted; none when ``below`` is 0)."""
    totals: dict[str, float] = {}
    for name, probability in probabilities.items():
        known = garment_class(name)
        if known is not None and not known.is_parent and known.parent in parents:
            totals[known.name] = totals.get(known.name, 0.0) + probability
    return tuple(sorted(name for name, p in totals.items() if p < below))


def _rank_votes(neighbours: Sequence[str | None]) -> dict[str, float]:
    """The neighbours' parents, each vote weighted by 1 / rank (the nearest counts most: a
    photo of a catalog product meets that product first)."""
    votes: dict[str, float] = {}
    for rank, name in enumerate(neighbours, start=1):
        top = parent(name)
        if top is not None:
            votes[top] = votes.get(top, 0.0) + 1.0 / rank
    total = sum(votes.values())
    return {name: vote / total for name, vote in votes.items()}


def _finest(top: str, probabilities: Mapping[str, float]) -> str:
    """The classifier's most probable class under ``top`` (``trousers`` rather than
    ``bottom``), else ``top`` itself."""
    for name in sorted(probabilities, key=lambda n: -probabilities[n]):
        known = garment_class(name)
        if known is not None and known.parent == top:
            return known.name
    return top


def label(name: str | None, *, plural: bool = False) -> str | None:
    """A class name as a shopper reads it: ``t-shirt`` -> ``T-shirt``, plural ``T-shirts``."""
    if not name:
        return None
    word = name
    if plural and word.endswith(("ss", "sh", "ch")):
        word += "es"
    elif plural and not word.endswith(("wear", "s", "jewellery")):
        word += "s"
    return word[:1].upper() + word[1:]
