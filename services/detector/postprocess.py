"""Turn the network's peak heatmap and box distances into boxes, and boxes into garments
(numpy only, no torch).

A photo's garments, as the shopper sees them: the two shoes of a pair are one garment, a box
inside a box of its own class is the same garment again, and the upper half of a dress is no
top of its own. The garments then come most prominent first (:func:`prominence`), so that an
answer opens on the main garment, not on the shoes at the photo's edge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from shared.detection import Detection

__all__ = [
    "by_prominence",
    "decode",
    "iou_matrix",
    "merge_garments",
    "nms",
    "one_per_garment",
    "prominence",
]

Box = tuple[float, float, float, float]

FULL_SCORE = 0.5
"""A detection scored this or more counts fully in :func:`prominence`; a weaker one less."""
EDGE_WEIGHT = 0.5
""":func:`prominence`'s centrality at the image's edge (1 at its centre, linear between)."""
CONTAINED = 0.9
"""Share of a box inside another for it to count as contained."""
_PAIR_SIZE = 0.5  # the smaller shoe of a pair is at least this share of the larger's area
_PAIR_LEVEL = 0.5  # ... and overlaps it vertically by this share of the smaller's height
_PAIR_GAP = 1.0  # ... with at most the wider shoe's width between them (feet apart)
_UPPER_HALF = 0.7  # share of a top inside a dress's upper half for it to be the dress's bodice
_SKIRT_FILL = 0.5  # share of a dress's lower half that a bottom box covers: a top and a skirt


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of ``(n, 4)`` and ``(m, 4)`` x1, y1, x2, y2 boxes."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype=np.float32)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.asarray(inter / np.maximum(union, 1e-9), dtype=np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best score first."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    ious = iou_matrix(boxes, boxes)
    suppressed = np.zeros(len(boxes), dtype=bool)
    for i in order:
        if suppressed[i]:
            continue
        keep.append(int(i))
        suppressed |= ious[i] > threshold
    return np.asarray(keep, dtype=np.int64)


def decode(
    peaks: np.ndarray,
    distances: np.ndarray,
    *,
    stride: int,
    min_score: float,
    max_detections: int,
    nms_iou: float = 0.6,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes ``(n, 4)`` in input pixels, scores ``(n,)`` and class ids ``(n,)`` of one image.

    ``peaks`` is ``(K, h, w)`` (heatmap already reduced to its local maxima), ``distances`` is
    ``(4, h, w)``: left, top, right, bottom from each cell centre. A per-class NMS removes the
    rare duplicate peaks of one large garment.
    """
    classes, ys, xs = np.nonzero(peaks >= min_score)
    if len(classes) == 0:
        empty = np.zeros((0, 4), dtype=np.float32)
        return empty, np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
    scores = peaks[classes, ys, xs].astype(np.float32)
    cx = (xs.astype(np.float32) + 0.5) * stride
    cy = (ys.astype(np.float32) + 0.5) * stride
    left, top, right, bottom = (distances[i, ys, xs] for i in range(4))
    boxes = np.stack([cx - left, cy - top, cx + right, cy + bottom], axis=1).astype(np.float32)
    keep: list[np.ndarray] = []
    for cls in np.unique(classes):
        ids = np.nonzero(classes == cls)[0]
        keep.append(ids[nms(boxes[ids], scores[ids], nms_iou)])
    kept = np.concatenate(keep)
    kept = kept[np.argsort(-scores[kept], kind="stable")][:max_detections]
    return boxes[kept], scores[kept], classes[kept].astype(np.int64)


def one_per_garment(detections: Sequence[Detection], threshold: float) -> list[Detection]:
    """Boxes overlapping a better-scored box by more than ``threshold`` (IoU) are dropped,
    across classes: the model's two readings of one garment ("pants" and "skirt" on the same
    skirt) become one group. Order (best first) is kept; ``threshold >= 1`` keeps all."""
    if threshold >= 1.0 or len(detections) < 2:
        return list(detections)
    boxes = np.asarray([d.box for d in detections], dtype=np.float32)
    scores = np.asarray([d.score for d in detections], dtype=np.float32)
    kept = set(nms(boxes, scores, threshold).tolist())
    return [d for i, d in enumerate(detections) if i in kept]


def _area(box: Box) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def _inside(inner: Box, outer: Box) -> float:
    """Share of ``inner``'s area that lies in ``outer``."""
    w = min(inner[2], outer[2]) - max(inner[0], outer[0])
    h = min(inner[3], outer[3]) - max(inner[1], outer[1])
    area = _area(inner)
    return max(0.0, w) * max(0.0, h) / area if area > 0 else 0.0


def prominence(detection: Detection, width: int, height: int) -> float:
    """How much a garment is the photo's subject: its share of the image's area, times its
    score up to :data:`FULL_SCORE`, times its centrality (1 at the centre, :data:`EDGE_WEIGHT`
    with its centre on the edge)."""
    x0, y0, x1, y1 = detection.box
    share = _area(detection.box) / max(1.0, float(width * height))
    off = max(abs((x0 + x1) / width - 1.0), abs((y0 + y1) / height - 1.0))
    centrality = 1.0 - (1.0 - EDGE_WEIGHT) * min(1.0, off)
    return share * min(1.0, detection.score / FULL_SCORE) * centrality


def by_prominence(detections: Sequence[Detection], width: int, height: int) -> list[Detection]:
    """``detections`` most prominent first (ties keep their order)."""
    return sorted(detections, key=lambda d: -prominence(d, width, height))


def _a_pair(a: Box, b: Box) -> bool:
    """Two shoe boxes side by side, of similar size, at one height."""
    small, large = sorted((_area(a), _area(b)))
    if large <= 0 or small < _PAIR_SIZE * large:
        return False
    level = min(a[3], b[3]) - max(a[1], b[1])
    if level < _PAIR_LEVEL * min(a[3] - a[1], b[3] - b[1]):
        return False
    gap = max(a[0], b[0]) - min(a[2], b[2])
    return gap <= _PAIR_GAP * max(a[2] - a[0], b[2] - b[0])


def _merge_pairs(detections: Sequence[Detection]) -> list[Detection]:
    """Each footwear box joined with the nearest shoe it pairs with, best-scored shoes first:
    one box around both, in the place of the better-scored shoe."""
    partner: dict[int, int] = {}
    used: set[int] = set()
    shoes = [i for i, d in enumerate(detections) if d.category == "footwear"]
    shoes.sort(key=lambda i: -detections[i].score)
    for i in shoes:
        if i in used:
            continue
        box = detections[i].box
        pairs = [j for j in shoes if j != i and j not in used and _a_pair(box, detections[j].box)]
        if pairs:
            j = min(pairs, key=lambda j: abs(_centre_x(detections[j].box) - _centre_x(box)))
            partner[i] = j
            used |= {i, j}
    out = []
    for i, detection in enumerate(detections):
        if i in partner:
            other = detections[partner[i]]
            a, b = detection.box, other.box
            union = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
            out.append(replace(detection, box=union, score=max(detection.score, other.score)))
        elif i not in used:
            out.append(detection)
    return out


def _centre_x(box: Box) -> float:
    return (box[0] + box[2]) / 2


def _contained(detection: Detection, others: Sequence[Detection]) -> bool:
    """Inside a larger box of its own class."""
    return any(
        other is not detection
        and other.category == detection.category
        and _area(other.box) > _area(detection.box)
        and _inside(detection.box, other.box) >= CONTAINED
        for other in others
    )


def _dress_top(detection: Detection, others: Sequence[Detection]) -> bool:
    """A top in the upper half of a dress scored at least as well, and no bottom filling the
    dress's lower half (then, or when the top is the surer one, the "dress" is a top and a
    skirt, and the top stays)."""
    if detection.category != "top":
        return False
    for dress in others:
        if dress.category != "dress" or dress.score < detection.score:
            continue
        x0, y0, x1, y1 = dress.box
        middle = (y0 + y1) / 2
        if _inside(detection.box, (x0, y0, x1, middle)) < _UPPER_HALF:
            continue
        lower = (x0, middle, x1, y1)
        skirt = any(o.category == "bottom" and _inside(lower, o.box) >= _SKIRT_FILL for o in others)
        if not skirt:
            return True
    return False


def merge_garments(detections: Sequence[Detection]) -> list[Detection]:
    """One detection per garment a shopper sees: shoe pairs joined, boxes inside a box of their
    own class and tops in a dress's upper half dropped. Order is kept."""
    joined = _merge_pairs(detections)
    kept = [d for d in joined if not _contained(d, joined)]
    return [d for d in kept if not _dress_top(d, kept)]
