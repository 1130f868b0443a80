"""Every mask x descriptor x model tried for the named colour: ``python -m lab.colour.variants``.

Masks (on the ``GRID_SIDE`` grid of each crop):

* ``none``: every pixel; ``box``: the detector's tight box;
* ``border``: the descriptor's old weights (centre bump x distance from the border's colour);
* ``grabcut``: :func:`shared.mask.garment_mask`, what ships;
* ``saliency``: EfficientNet-Lite0's last feature map (channel-mean activation at 128 px),
  min-max scaled, as weights: the embedding trunk's own saliency.

Descriptors: ``h40`` (the 40-bin descriptor), ``stats`` (Lab and chroma percentiles, mean,
spread), ``h40+stats`` (:func:`shared.colour.colour_features`, what ships), ``fine`` (6 neutral
+ 24 hues x 5 lightness bins, + stats). Models: multinomial logistic regression, MLP (128).
A last row puts the trunk's pooled features beside ``h40+stats`` (what a colour head on the
embedding trunk would see). Accuracy is on the validation products at the shopper-name level;
core-ms are process CPU time per crop (one thread).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lab.colour.data import ColourCrop, catalog_crops, is_validation
from lab.colour.train import DATA, evaluate, fit
from shared.colour import (
    SHOPPER_COLOURS,
    _weights,
    colour_features,
    grid_lab,
    weighted_descriptor,
)
from shared.mask import GarmentMask, garment_mask

__all__ = ["main"]

Weights = Callable[[ColourCrop, np.ndarray], np.ndarray]
Describe = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _box(crop: ColourCrop, lab: np.ndarray) -> np.ndarray:
    side = lab.shape[0]
    w, h = crop.picture.size
    x0, y0, x1, y1 = crop.crop.inner
    top, left = int(y0 / h * side), int(x0 / w * side)
    bottom = max(top + 1, int(np.ceil(y1 / h * side)))
    right = max(left + 1, int(np.ceil(x1 / w * side)))
    out = np.zeros(lab.shape[:2], np.float32)
    out[top:bottom, left:right] = 1.0
    return out


def _grabcut(crop: ColourCrop, lab: np.ndarray) -> np.ndarray:
    mask: GarmentMask = garment_mask(lab, crop.crop.inner, crop.picture.size)
    return mask.pixels.astype(np.float32)


MASKS: dict[str, Weights] = {
    "none": lambda crop, lab: np.ones(lab.shape[:2], np.float32),
    "box": _box,
    "border": lambda crop, lab: _weights(lab),
    "grabcut": _grabcut,
}


def _stats(lab: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return colour_features(lab, weights)[len(weighted_descriptor(lab, weights)) :]


def _fine(lab: np.ndarray, weights: np.ndarray) -> np.ndarray:
    pixels, w = lab.reshape(-1, 3), weights.reshape(-1)
    lightness, a, b = pixels[:, 0], pixels[:, 1], pixels[:, 2]
    chromatic = np.clip((np.hypot(a, b) - 6.0) / 8.0, 0.0, 1.0)
    neutral = np.clip((lightness / 100 * 6).astype(int), 0, 5)
    position = (np.degrees(np.arctan2(b, a)) % 360) / 15.0
    lower = np.floor(position).astype(int) % 24
    frac = position - np.floor(position)
    level = np.searchsorted(np.array([25.0, 45.0, 65.0, 85.0]), lightness)
    bins = np.concatenate([neutral, 6 + level * 24 + lower, 6 + level * 24 + (lower + 1) % 24])
    cw = w * chromatic
    mass = np.concatenate([w * (1 - chromatic), cw * (1 - frac), cw * frac])
    hist = np.bincount(bins, weights=mass, minlength=6 + 5 * 24)
    return np.concatenate([np.sqrt(hist / max(hist.sum(), 1e-9)), _stats(lab, weights)])


DESCRIPTORS: dict[str, Describe] = {
    "h40": weighted_descriptor,
    "stats": _stats,
    "h40+stats": colour_features,
    "fine+stats": _fine,
}


class _Trunk:
    """EfficientNet-Lite0 at 128 px on one thread: saliency maps and pooled features."""

    def __init__(self) -> None:
        import torch

        import services.modellab.models.backbones  # noqa: F401 - registers the backbones
        from services.modellab.models.registry import create_backbone

        torch.set_num_threads(1)
        self.torch = torch
        self.net: Any = create_backbone("efficientnet_lite0", input_size=128).features.net

    def __call__(self, crops: Sequence[ColourCrop], side: int) -> tuple[np.ndarray, np.ndarray]:
        torch = self.torch
        maps, pooled = [], []
        for start in range(0, len(crops), 32):
            batch = np.stack(
                [
                    np.asarray(c.picture.convert("RGB").resize((128, 128)))
                    for c in crops[start : start + 32]
                ]
            )
            x = (torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255 - 127 / 255) / (
                128 / 255
            )
            with torch.inference_mode():
                features = self.net.extract_features(x)
                heat = features.clamp(min=0).mean(1, keepdim=True)
                heat = torch.nn.functional.interpolate(heat, size=(side, side), mode="bilinear")
            heat_np = heat[:, 0].numpy()
            low = heat_np.min(axis=(1, 2), keepdims=True)
            maps.append((heat_np - low) / (np.ptp(heat_np, axis=(1, 2), keepdims=True) + 1e-6))
            pooled.append(features.mean(dim=(2, 3)).numpy())
        return np.concatenate(maps), np.concatenate(pooled)


def _cpu_ms(start: float, n: int) -> float:
    return round((time.process_time() - start) / max(n, 1) * 1000, 2)


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(prog="python -m lab.colour.variants", description=__doc__)
    parser.add_argument("--catalog", type=Path, default=DATA)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from services.detector.client import make_detector
    from shared.settings import get_settings

    crops = catalog_crops(args.catalog, make_detector(get_settings()), limit=args.limit)
    y = np.array([SHOPPER_COLOURS.index(c.colour) for c in crops if c.colour is not None])
    val = np.array([is_validation(c.key) for c in crops])
    start = time.process_time()
    labs = [grid_lab(c.picture) for c in crops]
    lab_ms = _cpu_ms(start, len(crops))
    start = time.process_time()
    saliency, pooled = _Trunk()(crops, labs[0].shape[0])
    trunk_ms = _cpu_ms(start, len(crops))
    masks: dict[str, tuple[list[np.ndarray], float]] = {}
    for name, make in MASKS.items():
        start = time.process_time()
        masks[name] = (
            [make(c, lab) for c, lab in zip(crops, labs, strict=True)],
            _cpu_ms(start, len(crops)),
        )
    masks["saliency"] = (list(saliency), trunk_ms)
    rows: list[dict[str, Any]] = []
    for mask_name, (weights, mask_ms) in masks.items():
        for desc_name, describe in DESCRIPTORS.items():
            if mask_name not in ("grabcut", "border", "none") and desc_name != "h40+stats":
                continue
            start = time.process_time()
            x = np.array([describe(lab, w) for lab, w in zip(labs, weights, strict=True)])
            desc_ms = _cpu_ms(start, len(crops))
            for hidden in (0, 128):
                model = fit(x[~val], y[~val], hidden=hidden, seed=0)
                rows.append(
                    {
                        "mask": mask_name,
                        "descriptor": desc_name,
                        "model": "mlp128" if hidden else "logreg",
                        "accuracy": evaluate(model, x[val], y[val])["accuracy"],
                        "core_ms": round(lab_ms + mask_ms + desc_ms, 2),
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    x = np.array(
        [colour_features(lab, w) for lab, w in zip(labs, masks["grabcut"][0], strict=True)]
    )
    both = np.concatenate([x, pooled], axis=1)
    for hidden in (0, 128):
        model = fit(both[~val], y[~val], hidden=hidden, seed=0)
        rows.append(
            {
                "mask": "grabcut",
                "descriptor": "h40+stats + trunk pooled (1280)",
                "model": "mlp128" if hidden else "logreg",
                "accuracy": evaluate(model, both[val], y[val])["accuracy"],
                "core_ms": round(lab_ms + masks["grabcut"][1] + trunk_ms, 2),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return rows


if __name__ == "__main__":
    main()
