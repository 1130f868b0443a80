"""Turn the network's peak heatmap and box distances into boxes (numpy only, no torch)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shared.detection import Detection

__all__ = ["decode", "iou_matrix", "nms", "one_per_garment"]


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
