"""The detection contract between the detector and its callers (ingest workers, gateway).

The detector service implements :class:`GarmentDetector` in process and over HTTP; callers
depend on this module only, so the embedded mode and compose behave the same.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from PIL import Image

COARSE_CATEGORIES: tuple[str, ...] = (
    "top",
    "bottom",
    "dress",
    "outerwear",
    "footwear",
    "bag",
    "accessory",
)
"""Coarse categories a detector answers with (the street-photo boxes' ``coarse_category``)."""

WHOLE_IMAGE = "whole-image"
"""``DetectionResult.path`` when nothing was found and the whole image is the one crop."""
FOREGROUND = "foreground"
"""``DetectionResult.path`` of a product shot: the objects on a plain background."""


@dataclass(frozen=True)
class Detection:
    """One garment: a box in pixels of the image the detector was given.

    ``crop_box`` is ``box`` grown by the detector's margin and clipped to the image: the
    region to cut out for the embedder.
    """

    box: tuple[float, float, float, float]
    category: str | None
    score: float
    crop_box: tuple[float, float, float, float] | None = None

    @property
    def region(self) -> tuple[float, float, float, float]:
        return self.crop_box or self.box


def grow_box(
    box: tuple[float, float, float, float], margin: float, width: int, height: int
) -> tuple[float, float, float, float]:
    """``box`` grown by ``margin`` x its size on each side, clipped to the image: the region a
    detector cuts for the embedder (``Detection.crop_box``), and training cuts the same way."""
    x0, y0, x1, y1 = box
    dx, dy = (x1 - x0) * margin, (y1 - y0) * margin
    return (
        max(0.0, math.floor(x0 - dx)),
        max(0.0, math.floor(y0 - dy)),
        min(float(width), math.ceil(x1 + dx)),
        min(float(height), math.ceil(y1 + dy)),
    )


HELD_OUT_PHOTOS = 0.3
"""Share of a box dataset's street photos that training holds out by default (seed 0)."""


def held_out(n: int, val_fraction: float, seed: int) -> frozenset[int]:
    """Indices of the street photos a training run holds out: a seeded shuffle of ``range(n)``,
    its first ``val_fraction``. The detector and the garment classifier hold out the same photos
    of a box dataset (listed in name order), so neither model has seen the other's check set."""
    order = list(range(n))
    random.Random(seed).shuffle(order)  # noqa: S311 - a data split, not a secret
    return frozenset(order[: round(n * val_fraction)])


@dataclass(frozen=True)
class DetectionResult:
    """All garments of one image, most prominent first (the main garment leads).

    ``fallback`` is true when nothing was found and ``detections`` holds the whole image as one
    crop; ``path`` names what answered (e.g. ``"model"``, ``"foreground"``, ``"whole-image"``).
    """

    width: int
    height: int
    detections: list[Detection] = field(default_factory=list)
    fallback: bool = False
    path: str = WHOLE_IMAGE
    model_version: str | None = None

    @classmethod
    def whole_image(
        cls, width: int, height: int, *, model_version: str | None = None
    ) -> DetectionResult:
        box = (0.0, 0.0, float(width), float(height))
        return cls(
            width=width,
            height=height,
            detections=[Detection(box=box, category=None, score=1.0, crop_box=box)],
            fallback=True,
            path=WHOLE_IMAGE,
            model_version=model_version,
        )


@runtime_checkable
class GarmentDetector(Protocol):
    """Finds the garments of a batch of decoded RGB images; never raises on odd images."""

    def detect(self, images: Sequence[Image.Image]) -> list[DetectionResult]: ...


class WholeImageDetector:
    """The fallback detector: every image is one crop."""

    version = WHOLE_IMAGE

    def detect(self, images: Sequence[Image.Image]) -> list[DetectionResult]:
        return [DetectionResult.whole_image(img.width, img.height) for img in images]
