"""Choose the detector's per-class lowest scores (``detector.class_min_score``).

The shipped detector's held-out split (``split(…, 0.3, seed 0)``, as its card says) is cut in
two: each class's threshold is the one that maximises its F-beta at IoU 0.5 on half A, and
both the uniform ``min_score`` and the chosen thresholds are then scored on half B. End to end
decides what ships (``lookalike eval-e2e --photos held-out`` with the thresholds as variants):
for the session-8 detector, the uniform 0.35 with ``accessory`` off. Point it at another model
with ``LOOKALIKE_DETECTOR__MODEL``::

    .venv/bin/python scripts/detector_class_thresholds.py [--beta 1.0]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image

from services.detector.client import make_detector
from services.detector.data import CLASSES, BoxedImage, read_boxes, split
from services.evaluate.matching import Box, iou
from shared.settings import get_settings

GRID = [round(float(x), 2) for x in np.arange(0.2, 0.81, 0.05)]
Found = list[tuple[BoxedImage, list[tuple[str | None, float, Box]]]]


def detect_all(items: Sequence[BoxedImage], floor: float) -> Found:
    """Every model detection of ``items`` down to ``floor``, class thresholds off."""
    settings = get_settings()
    detector = settings.detector.model_copy(update={"min_score": floor, "class_min_score": {}})
    model = make_detector(settings.model_copy(update={"detector": detector}))
    found: Found = []
    for item in items:
        [result] = model.detect([Image.open(item.path).convert("RGB")])
        boxes = [(d.category, d.score, d.box) for d in result.detections]
        found.append((item, boxes if result.path == "model" else []))
    return found


def counts(found: Found, thresholds: Mapping[str, float], default: float) -> dict[str, tuple]:
    """(true, false, ground-truth) boxes per class at these thresholds, greedy by score."""
    out = {}
    for name in CLASSES:
        tp = fp = gt = 0
        for item, boxes in found:
            truth = [
                tuple(b) for b, c in zip(item.boxes, item.labels, strict=True) if CLASSES[c] == name
            ]
            gt += len(truth)
            used: set[int] = set()
            for category, score, box in sorted(boxes, key=lambda d: -d[1]):
                if category != name or score < thresholds.get(name, default):
                    continue
                best = max(range(len(truth)), key=lambda i: iou(box, truth[i]), default=None)
                if best is not None and best not in used and iou(box, truth[best]) >= 0.5:
                    used.add(best)
                    tp += 1
                else:
                    fp += 1
        out[name] = (tp, fp, gt)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/street-photos-boxes-dev")
    parser.add_argument("--beta", type=float, default=1.0, help="F-beta: >1 favours recall.")
    args = parser.parse_args()
    default = get_settings().detector.min_score
    _, held_out = split(read_boxes(args.data), 0.3, 0)
    half_a, half_b = detect_all(held_out[0::2], 0.2), detect_all(held_out[1::2], 0.2)
    chosen = {}
    for name in CLASSES:
        scored = []
        for threshold in GRID:
            tp, fp, gt = counts(half_a, {name: threshold}, default)[name]
            p, r = (tp / (tp + fp) if tp + fp else 0.0), (tp / gt if gt else 0.0)
            b2 = args.beta**2
            scored.append(((1 + b2) * p * r / (b2 * p + r) if p + r else 0.0, threshold))
        chosen[name] = max(scored, key=lambda s: (s[0], -s[1]))[1]  # ties: the lower one
    print("chosen on half A:", json.dumps(chosen))
    for label, thresholds in (("uniform min_score", {}), ("per class", chosen)):
        result = counts(half_b, thresholds, default)
        tp, fp, gt = (sum(v[i] for v in result.values()) for i in range(3))
        per_class = {name: f"{v[0]}/{v[2]} found, {v[1]} false" for name, v in result.items()}
        print(f"half B, {label}: recall {tp / gt:.3f}, precision {tp / (tp + fp):.3f}", per_class)


if __name__ == "__main__":
    main()
