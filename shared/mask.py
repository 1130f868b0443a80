"""The garment's own pixels: a foreground mask of one crop, the same on both sides of a search.

:func:`garment_mask` segments a crop on a small square grid (the crop squashed to
``MASK_SIDE`` x ``MASK_SIDE``, all a colour needs), initialised from the detector's tight box
inside the crop as GrabCut is from its rectangle, in numpy alone (OpenCV is not a dependency):

* pixels outside the tight box, and the crop's outer ring, are background samples; the box's
  pixels are the garment's first guess;
* each side gets a colour model (a smoothed histogram over a coarse CIE Lab grid), each pixel
  the log-odds of the two models plus a spatial prior (the box's centre leans to the garment);
* the odds are smoothed over each pixel's neighbours (what GrabCut's graph cut enforces) and
  the two colour models refitted on the new split, a few rounds.

A crop whose box has the colours of its surroundings (a blank photo, a plain garment that
fills the whole frame, so the "background" samples are the garment itself), or whose mask
keeps almost nothing, falls back on the box's central ellipse, flagged ``fallback``: never
empty, never an error. ``lab/colour`` measured this mask against the crop
border heuristic, the embedding trunk's saliency and no mask (docs/lab/2026-12-colour.md).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from shared.colour import GRID_SIDE
from shared.images import to_rgb

__all__ = ["MASK_SIDE", "GarmentMask", "garment_mask", "keep_garment"]

MASK_SIDE = GRID_SIDE
"""The grid a crop is segmented (and its colour read) on."""

_ROUNDS = 4
_RING = 2  # grid pixels of the crop's outer ring counted as background
_L_BINS, _AB_BINS = 6, 10
_AB_RANGE = 80.0
_SMOOTHING = 1.0  # pseudo-count per colour bin
_PRIOR = 1.0  # log-odds of the box's centre over its edge
_MIN_SHARE = 0.05  # of the box: less is "covers nothing"
_SAME_COLOURS = 0.97  # Bhattacharyya coefficient of box and background colours: no contrast
_ELLIPSE = 0.8  # the fallback: this share of the box's half-sides

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class GarmentMask:
    """A crop's garment pixels on the ``MASK_SIDE`` grid (``pixels``, bool, never empty);
    ``fallback`` when segmentation kept nothing sane and the box's centre stands in."""

    pixels: np.ndarray
    fallback: bool

    @property
    def coverage(self) -> float:
        """Share of the crop the garment covers."""
        return float(self.pixels.mean())

    def resized(self, size: tuple[int, int]) -> np.ndarray:
        """The mask at ``(width, height)`` pixels (bool)."""
        small = Image.fromarray(self.pixels.astype(np.uint8) * 255)
        return np.asarray(small.resize(size, Image.Resampling.BILINEAR)) >= 128


def _grid_box(inner: Box | None, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The tight box on the grid (the whole grid when unknown), at least one pixel."""
    if inner is None:
        return 0, 0, MASK_SIDE, MASK_SIDE
    width, height = size
    x0, y0, x1, y1 = inner
    gx0 = int(np.clip(np.floor(x0 / width * MASK_SIDE), 0, MASK_SIDE - 1))
    gy0 = int(np.clip(np.floor(y0 / height * MASK_SIDE), 0, MASK_SIDE - 1))
    gx1 = int(np.clip(np.ceil(x1 / width * MASK_SIDE), gx0 + 1, MASK_SIDE))
    gy1 = int(np.clip(np.ceil(y1 / height * MASK_SIDE), gy0 + 1, MASK_SIDE))
    return gx0, gy0, gx1, gy1


@functools.lru_cache(maxsize=64)
def _box_prior(box: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inside-the-box mask, the spatial log-odds (``_PRIOR`` at the box's centre, 0 at its
    edge) and the fallback ellipse, for one grid box (read-only)."""
    gx0, gy0, gx1, gy1 = box
    ys = (np.arange(MASK_SIDE, dtype=np.float32) + 0.5)[:, None]
    xs = (np.arange(MASK_SIDE, dtype=np.float32) + 0.5)[None, :]
    cx, cy = (gx0 + gx1) / 2, (gy0 + gy1) / 2
    rx, ry = max((gx1 - gx0) / 2, 0.5), max((gy1 - gy0) / 2, 0.5)
    radius = np.sqrt(((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2)
    inside = np.zeros((MASK_SIDE, MASK_SIDE), bool)
    inside[gy0:gy1, gx0:gx1] = True
    prior = (_PRIOR * (1.0 - np.clip(radius, 0.0, 1.0))).astype(np.float32)
    ellipse = inside & (radius <= _ELLIPSE)
    if not ellipse.any():
        ellipse = inside
    for array in (inside, prior, ellipse):
        array.setflags(write=False)
    return inside, prior, ellipse


def _bins(lab: np.ndarray) -> np.ndarray:
    """Each pixel's cell of the coarse Lab grid (``(H, W)`` int)."""
    lightness = np.clip((lab[..., 0] / 100.0 * _L_BINS).astype(np.int64), 0, _L_BINS - 1)
    ab = np.clip(((lab[..., 1:] + _AB_RANGE) / (2 * _AB_RANGE) * _AB_BINS), 0, _AB_BINS - 1)
    ab = ab.astype(np.int64)
    return (lightness * _AB_BINS + ab[..., 0]) * _AB_BINS + ab[..., 1]


def _log_model(bins: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Log-probability of every Lab cell under a weighted histogram of these pixels."""
    n = _L_BINS * _AB_BINS * _AB_BINS
    hist = np.bincount(bins.ravel(), weights=weights.ravel(), minlength=n) + _SMOOTHING / n
    return np.log(hist / hist.sum())


def _smooth(odds: np.ndarray) -> np.ndarray:
    """Mean over each pixel's 3x3 neighbourhood (edges repeated)."""
    padded = np.pad(odds, 1, mode="edge")
    total = sum(
        padded[dy : dy + MASK_SIDE, dx : dx + MASK_SIDE] for dy in range(3) for dx in range(3)
    )
    return np.asarray(total, dtype=np.float32) / 9.0


def garment_mask(lab: np.ndarray, inner: Box | None, size: tuple[int, int]) -> GarmentMask:
    """The garment's pixels of a crop from its grid Lab (:func:`shared.colour.grid_lab`) and
    the detector's tight box inside it (``inner``, in the crop's pixels; ``None``: the whole
    crop) for a crop of ``size`` ``(width, height)``."""
    if lab.shape != (MASK_SIDE, MASK_SIDE, 3):
        raise ValueError(f"lab must be {MASK_SIDE}x{MASK_SIDE}x3, got {lab.shape}")
    inside, prior, ellipse = _box_prior(_grid_box(inner, size))
    background = ~inside
    background[:_RING] = background[-_RING:] = True
    background[:, :_RING] = background[:, -_RING:] = True
    bins = _bins(lab)
    n = _L_BINS * _AB_BINS * _AB_BINS
    box_colours = np.bincount(bins[inside], minlength=n) / inside.sum()
    ring_colours = np.bincount(bins[background], minlength=n) / background.sum()
    if np.sqrt(box_colours * ring_colours).sum() > _SAME_COLOURS:
        # The box looks like its surroundings (a blank photo, a plain garment that fills the
        # frame): nothing to separate, only the prior would speak.
        return GarmentMask(ellipse.copy(), fallback=True)
    foreground = inside.astype(np.float32)
    for _ in range(_ROUNDS):
        fg_model = _log_model(bins, foreground * inside)
        bg_model = _log_model(bins, np.maximum(background, inside & (foreground < 0.5)))
        odds = _smooth(fg_model[bins] - bg_model[bins] + prior)
        foreground = (odds > 0.0) & inside
        foreground = foreground.astype(np.float32)
    pixels = foreground > 0.5
    if pixels.sum() < _MIN_SHARE * inside.sum():
        return GarmentMask(ellipse.copy(), fallback=True)
    return GarmentMask(pixels, fallback=False)


def keep_garment(
    picture: Image.Image, mask: GarmentMask, fill: Sequence[int] = (255, 255, 255)
) -> Image.Image:
    """The crop with everything but its garment painted ``fill`` (background removal)."""
    rgb = to_rgb(picture)
    out = Image.new("RGB", rgb.size, tuple(fill))
    out.paste(rgb, mask=Image.fromarray(mask.resized(rgb.size).astype(np.uint8) * 255))
    return out
