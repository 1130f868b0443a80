"""What the garment's own pixels and its named colour add to each crop, in core-ms:
``python -m lab.colour.cost``.

On catalog photos and street garments cut as the product cuts them, one thread, process CPU
time: the old colour step (:func:`shared.colour.colour_descriptor` of the picture) against
the new one (:func:`shared.colour.grid_lab` once, the descriptor, the garment mask and the
named colour), and the new one with ``crops.remove_background`` (the descriptor of the mask's
pixels and the crop painted around its garment, :func:`shared.crops.garment_crops`), each
repeated over the same crops.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from lab.colour.data import catalog_crops, street_crops
from lab.colour.sheets import STREET
from lab.colour.train import DATA
from shared.colour import colour_descriptor, grid_lab, name_lab, weighted_descriptor
from shared.crops import CUTOUT_FILL
from shared.mask import garment_mask, keep_garment

__all__ = ["STEPS", "core_ms", "main"]

Box = tuple[float, float, float, float]


def _old(picture: Image.Image, inner: Box) -> None:
    colour_descriptor(picture)


def _new(picture: Image.Image, inner: Box) -> None:
    lab = grid_lab(picture)
    colour_descriptor(picture, lab)
    name_lab(lab, garment_mask(lab, inner, picture.size).pixels)


def _cut_out(picture: Image.Image, inner: Box) -> None:
    lab = grid_lab(picture)
    mask = garment_mask(lab, inner, picture.size)
    name_lab(lab, mask.pixels)
    if mask.fallback:
        colour_descriptor(picture, lab)
    else:
        weighted_descriptor(lab, mask.pixels)
        keep_garment(picture, mask, CUTOUT_FILL)


def _mask_only(picture: Image.Image, inner: Box) -> None:
    garment_mask(grid_lab(picture), inner, picture.size)


STEPS: dict[str, Callable[[Image.Image, Box], None]] = {
    "old colour step": _old,
    "mask alone": _mask_only,
    "new colour step": _new,
    "with background removal": _cut_out,
}
"""Each colour step measured, by the name its figure goes under."""


def core_ms(
    step: Callable[[Image.Image, Box], None], items: Sequence[tuple[Image.Image, Box]]
) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for picture, inner in items:
            step(picture, inner)
        best = min(best, (time.process_time() - start) / len(items) * 1000)
    return round(best, 3)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m lab.colour.cost", description=__doc__)
    parser.add_argument("--catalog", type=Path, default=DATA)
    parser.add_argument("--street", type=Path, default=STREET)
    parser.add_argument("--n", type=int, default=300)
    args = parser.parse_args(argv)

    from services.detector.client import make_detector
    from shared.settings import get_settings

    sets = {
        "catalog": catalog_crops(args.catalog, make_detector(get_settings()), limit=args.n),
        "street": street_crops(args.street, limit=args.n),
    }
    _new(sets["catalog"][0].picture, sets["catalog"][0].crop.inner)  # loads the model
    out: dict[str, Any] = {}
    for name, crops in sets.items():
        items = [(c.picture, c.crop.inner) for c in crops]
        out[name] = {"crops": len(items)} | {
            label: core_ms(step, items) for label, step in STEPS.items()
        }
        row = out[name]
        row["added"] = round(row["new colour step"] - row["old colour step"], 3)
        row["removal adds"] = round(row["with background removal"] - row["new colour step"], 3)
        sides = sorted(c.picture.width * c.picture.height for c in crops)
        row["median crop pixels"] = sides[len(sides) // 2]
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
