"""Detector evaluation: recall, precision and AP at IoU 0.5 per coarse category, and latency.

A detection matches the unmatched ground-truth box of its category with the highest IoU (at
least 0.5), detections taken best score first (the VOC protocol). Recall and precision are at
the operating threshold (``min_score``); AP uses every detection down to ``AP_MIN_SCORE``
(all-point interpolated precision-recall curve). ``recall@0.5`` and ``precision@0.5`` are
micro-averages over the categories that have ground-truth boxes; ``map@0.5`` is the mean AP
over them, and ``map@0.5_targets`` the mean over the six target categories.
"""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PIL import Image

from lab.detector.data import BoxedImage
from services.detector.postprocess import iou_matrix
from shared.detection import Detection, DetectionResult
from shared.images import load_image

__all__ = [
    "AP_MIN_SCORE",
    "TARGET_CATEGORIES",
    "average_precision",
    "evaluate",
    "measure_latency",
    "score_detections",
]

AP_MIN_SCORE = 0.05
TARGET_CATEGORIES = ("top", "bottom", "dress", "outerwear", "footwear", "bag")

DetectFn = Callable[[Sequence[Image.Image], float, int], list[list[Detection]]]
"""``(images, min_score, max_detections) -> detections per image``."""


def average_precision(tp: np.ndarray, scores: np.ndarray, n_gt: int) -> float:
    """All-point interpolated AP of detections (``tp`` flags) over ``n_gt`` boxes."""
    if n_gt == 0:
        return float("nan")
    if len(tp) == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    hits = tp[order].astype(np.float64)
    cum_tp = np.cumsum(hits)
    recall = cum_tp / n_gt
    precision = cum_tp / np.arange(1, len(hits) + 1)
    recall = np.concatenate([[0.0], recall, [recall[-1]]])
    precision = np.concatenate([[1.0], precision, [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.nonzero(recall[1:] != recall[:-1])[0]
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


def _match(
    detections: list[Detection],
    boxes: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
    iou: float,
) -> list[tuple[str, float, bool]]:
    """``(category, score, is_true_positive)`` for each detection of one image."""
    out = []
    for name in {d.category for d in detections if d.category is not None}:
        if name not in classes:
            continue
        dets = sorted((d for d in detections if d.category == name), key=lambda d: -d.score)
        gt = boxes[labels == classes.index(name)]
        ious = iou_matrix(np.array([d.box for d in dets], np.float32).reshape(-1, 4), gt)
        taken = np.zeros(len(gt), dtype=bool)
        for i, det in enumerate(dets):
            candidates = np.where(taken, -1.0, ious[i]) if len(gt) else np.zeros(0)
            best = int(np.argmax(candidates)) if len(candidates) else -1
            hit = best >= 0 and candidates[best] >= iou
            if hit:
                taken[best] = True
            out.append((name, det.score, hit))
    return out


def evaluate(
    detect: DetectFn,
    items: Sequence[BoxedImage],
    classes: list[str],
    *,
    min_score: float,
    iou: float = 0.5,
    batch_size: int = 8,
    progress: bool = False,
) -> dict[str, Any]:
    """The eval-detector figures of ``detect`` on ``items``."""
    from tqdm import tqdm

    found: list[list[Detection]] = []
    for start in tqdm(
        range(0, len(items), batch_size), desc="evaluating", unit="batch", disable=not progress
    ):
        chunk = items[start : start + batch_size]
        found.extend(detect([load_image(item.path) for item in chunk], AP_MIN_SCORE, 100))
    return score_detections(found, items, classes, min_score=min_score, iou=iou)


def score_detections(
    found: Sequence[list[Detection]],
    items: Sequence[BoxedImage],
    classes: list[str],
    *,
    min_score: float,
    iou: float = 0.5,
) -> dict[str, Any]:
    """Recall and precision at ``min_score``, AP and mAP of each image's detections (down to
    :data:`AP_MIN_SCORE`) against its ground-truth boxes."""
    matches: list[tuple[str, float, bool]] = []
    n_gt = dict.fromkeys(classes, 0)
    for item, detections in zip(items, found, strict=True):
        for label in item.labels:
            n_gt[classes[int(label)]] += 1
        matches.extend(_match(detections, item.boxes, item.labels, classes, iou))
    per_category: dict[str, dict[str, float | int]] = {}
    totals = {"tp": 0, "fp": 0, "gt": 0}
    for name in classes:
        rows = [(s, hit) for c, s, hit in matches if c == name]
        scores = np.array([s for s, _ in rows], np.float32)
        hits = np.array([h for _, h in rows], bool)
        kept = scores >= min_score
        tp, fp = int((hits & kept).sum()), int((~hits & kept).sum())
        if n_gt[name] == 0:
            continue
        per_category[name] = {
            "recall": round(tp / n_gt[name], 4),
            "precision": round(tp / (tp + fp), 4) if tp + fp else 0.0,
            "ap": round(average_precision(hits, scores, n_gt[name]), 4),
            "n_gt": n_gt[name],
            "n_detections": tp + fp,
        }
        totals["tp"] += tp
        totals["fp"] += fp
        totals["gt"] += n_gt[name]
    aps = [float(v["ap"]) for v in per_category.values()]
    target_aps = [float(per_category[c]["ap"]) for c in TARGET_CATEGORIES if c in per_category]
    predicted = totals["tp"] + totals["fp"]
    return {
        "recall@0.5": round(totals["tp"] / totals["gt"], 4) if totals["gt"] else 0.0,
        "precision@0.5": round(totals["tp"] / predicted, 4) if predicted else 0.0,
        "map@0.5": round(statistics.fmean(aps), 4) if aps else 0.0,
        "map@0.5_targets": round(statistics.fmean(target_aps), 4) if target_aps else 0.0,
        "per_category": per_category,
        "n_images": len(items),
        "min_score": min_score,
        "iou": iou,
    }


def measure_latency(
    detect: Callable[[list[Image.Image]], list[DetectionResult]],
    items: Sequence[BoxedImage],
    *,
    long_side: int = 640,
    repeats: int = 1,
    warmup: int = 3,
) -> dict[str, float | int]:
    """Milliseconds per image, one image per call, JPEG decode included, at ``long_side`` px."""
    payloads = []
    for item in items:
        img = load_image(item.path)
        img.thumbnail((long_side, long_side), Image.Resampling.BILINEAR)
        buffer = io.BytesIO()
        img.save(buffer, "JPEG", quality=90)
        payloads.append(buffer.getvalue())
    for data in payloads[:warmup]:
        detect([load_image(data)])
    times = []
    for _ in range(repeats):
        for data in payloads:
            started = time.perf_counter()
            detect([load_image(data)])
            times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {
        "latency_ms_p50": round(statistics.median(times), 1),
        "latency_ms_p95": round(times[min(len(times) - 1, int(0.95 * len(times)))], 1),
        "latency_images": len(times),
        "latency_long_side": long_side,
    }
