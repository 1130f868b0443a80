"""Scoring one answer against ground truth: boxes matched by IoU, classes by the taxonomy.

A group (one garment of a ``/recommend`` answer) matches the ground-truth box it overlaps most,
when that IoU is at least ``min_iou``. A ground-truth box is *found* when a group matches it;
further groups on the same box are *duplicates*; groups matching no box are *spurious*. A
found box is a *garment hit* when at least ``min_same`` of its best group's top ``k`` products
are of its parent class. Where the box's label names a class finer than its parent (``jeans``,
``skirt``, ``boots``, not ``blouse``, which the taxonomy reads as ``top``), the same count is
kept at that class too (``same_class_in_top``): skirts answered for jeans count for the parent
figure, not for this one.

Footwear is boxed shoe by shoe in the ground truth, while a detector may answer a pair with one
group: a group matching no single box but the union of two footwear boxes finds both. The
photo's *main* garment is its largest ground-truth box; ``main_first`` says whether the group
that found it comes first in the answer (the garment the page opens on).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from shared.taxonomy import garment_class, parent

__all__ = ["Box", "GroupAnswer", "PhotoScore", "TruthScore", "iou", "score_photo"]

Box = tuple[float, float, float, float]
"""``(x0, y0, x1, y1)`` in pixels."""

MIN_IOU = 0.5
TOP_K = 10
MIN_SAME = 5


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when either is empty)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class GroupAnswer:
    """What the scorer needs of a group: its box, its predicted class, the categories it
    searched and its products' shop categories, best first."""

    box: Box
    category: str | None
    searched: tuple[str, ...] = ()
    products: tuple[str | None, ...] = ()
    notice: str | None = None


@dataclass(frozen=True)
class TruthScore:
    """One ground-truth box: its parent class and how the answer did on it."""

    parent: str | None
    found: bool
    iou: float
    class_right: bool
    searched_right: bool
    hit: bool
    same_in_top: int
    duplicates: int
    flagged: bool = False
    """Its group told the shopper it has no close match (or no products)."""
    garment: str | None = None
    """The box's class when it is finer than its parent, else ``None``."""
    same_class_in_top: int = 0


@dataclass
class PhotoScore:
    truths: list[TruthScore] = field(default_factory=list)
    spurious: int = 0
    groups: int = 0
    spurious_flagged: int = 0
    main_first: bool | None = None
    """The largest ground-truth box was found by the answer's first group (``None``: it was
    not found at all)."""


def _same(label: str | None, wanted: str | None) -> bool:
    return wanted is not None and parent(label) == wanted


def _fine(label: str | None) -> str | None:
    """The taxonomy class of ``label`` when it is finer than its parent, else ``None``."""
    known = garment_class(label) if label else None
    return None if known is None or known.is_parent else known.name


def _same_class(label: str | None, wanted: str) -> bool:
    known = garment_class(label) if label else None
    return known is not None and known.name == wanted


def _area(box: Box) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def _shoe_pairs(truth: Sequence[tuple[str, Box]]) -> list[tuple[tuple[int, int], Box]]:
    """Every two footwear boxes and the box around both."""
    shoes = [t for t, (label, _) in enumerate(truth) if parent(label) == "footwear"]
    pairs = []
    for n, i in enumerate(shoes):
        for j in shoes[n + 1 :]:
            a, b = truth[i][1], truth[j][1]
            union = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
            pairs.append(((i, j), union))
    return pairs


def score_photo(
    truth: Sequence[tuple[str, Box]],
    groups: Sequence[GroupAnswer],
    *,
    min_iou: float = MIN_IOU,
    k: int = TOP_K,
    min_same: int = MIN_SAME,
) -> PhotoScore:
    """Score the groups of one answer against the ground-truth ``(label, box)`` pairs."""
    matched: dict[int, list[tuple[float, int]]] = {}
    spurious = flagged = 0
    pairs = _shoe_pairs(truth)
    for g, group in enumerate(groups):
        overlaps = [iou(group.box, box) for _, box in truth]
        best = max(range(len(truth)), key=overlaps.__getitem__, default=None)
        if best is not None and overlaps[best] >= min_iou:
            matched.setdefault(best, []).append((overlaps[best], g))
            continue
        pair_overlaps = [iou(group.box, union) for _, union in pairs]
        pair = max(range(len(pairs)), key=pair_overlaps.__getitem__, default=None)
        if pair is not None and pair_overlaps[pair] >= min_iou:
            for t in pairs[pair][0]:
                matched.setdefault(t, []).append((pair_overlaps[pair], g))
        else:
            spurious += 1
            flagged += group.notice is not None
    score = PhotoScore(spurious=spurious, groups=len(groups), spurious_flagged=flagged)
    for t, (label, _) in enumerate(truth):
        wanted, fine = parent(label), _fine(label)
        hits = sorted(matched.get(t, []), reverse=True)
        if not hits:
            score.truths.append(
                TruthScore(wanted, False, 0.0, False, False, False, 0, 0, garment=fine)
            )
            continue
        overlap, g = hits[0]
        group = groups[g]
        top = group.products[:k]
        same = sum(_same(product, wanted) for product in top)
        score.truths.append(
            TruthScore(
                parent=wanted,
                found=True,
                iou=overlap,
                class_right=_same(group.category, wanted),
                searched_right=any(_same(name, wanted) for name in group.searched),
                hit=same >= min_same,
                same_in_top=same,
                duplicates=len(hits) - 1,
                flagged=group.notice is not None,
                garment=fine,
                same_class_in_top=0 if fine is None else sum(_same_class(p, fine) for p in top),
            )
        )
    if truth:
        main = max(range(len(truth)), key=lambda t: _area(truth[t][1]))
        if main in matched:
            score.main_first = any(g == 0 for _, g in matched[main])
    return score
