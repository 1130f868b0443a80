"""The cheap path for product shots: plain-background segmentation with numpy and scipy.

A catalog photo is usually one product (or a few side by side) on a light, nearly uniform
background. The border tells us the background colour; pixels far from it are foreground,
except soft drop shadows (darker, same hue). Connected foreground blobs that are not close to
each other are separate products, each with a tight box. No model and no torch: a few
milliseconds per image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

__all__ = ["ForegroundAnalysis", "analyse_foreground", "foreground_mask", "paint_background"]

WORK_SIDE = 256
"""Images are analysed at this longer side (boxes are scaled back to full size)."""

_BORDER_FRACTION = 0.03
_PLAIN_SHARE = 0.9  # share of a border side's pixels that must match the background
_PLAIN_TOLERANCE = 28.0  # max channel difference of a "background" border pixel
_MIN_OBJECT_SHARE = 0.004  # blobs smaller than this share of the image are noise
_MERGE_GAP = 0.025  # blobs closer than this share of the longer side are one product
_MAX_FOREGROUND_SHARE = 0.97
_MAX_BLOBS = 200
_KEEP_SHARE = 0.5


@dataclass(frozen=True)
class ForegroundAnalysis:
    """What the border and the foreground mask say about one image (full-size pixels)."""

    plain: bool
    background: tuple[int, int, int]
    boxes: list[tuple[float, float, float, float]]
    coverage: float
    """Share of the image covered by foreground."""


def _work_array(img: Image.Image) -> tuple[np.ndarray, float]:
    rgb = img if img.mode == "RGB" else img.convert("RGB")
    scale = min(1.0, WORK_SIDE / max(rgb.width, rgb.height))
    if scale < 1.0:
        size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        rgb = rgb.resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0)
    return np.asarray(rgb, dtype=np.float32), scale


def _sides(arr: np.ndarray) -> list[np.ndarray]:
    """The pixels of the four border bands (top, bottom, left, right)."""
    h, w = arr.shape[:2]
    band = max(1, round(min(h, w) * _BORDER_FRACTION))
    return [
        arr[:band].reshape(-1, 3),
        arr[-band:].reshape(-1, 3),
        arr[:, :band].reshape(-1, 3),
        arr[:, -band:].reshape(-1, 3),
    ]


def _clean(mask: np.ndarray) -> np.ndarray:
    # Close outlines first (a white garment on white shows little but its outline), fill what
    # they enclose, then drop specks.
    mask = ndimage.binary_closing(mask, structure=np.ones((3, 3), bool), iterations=2)
    mask = ndimage.binary_fill_holes(mask)
    return np.asarray(ndimage.binary_opening(mask, iterations=1), dtype=bool)


def _masks(
    arr: np.ndarray, background: np.ndarray, tolerance: float
) -> tuple[np.ndarray, np.ndarray]:
    """Foreground with and without shadow-like pixels (darker background, same hue).

    Drop shadows would loosen the box, but a pale grey garment looks like a shadow too: callers
    use the shadow-free mask only where it keeps most of the object.
    """
    diff = np.abs(arr - background).max(axis=2)
    full = diff > tolerance
    luminance = arr.mean(axis=2)
    ratio = luminance / max(float(background.mean()), 1.0)
    chroma = (arr - luminance[..., None]) - (background - background.mean())
    shadow = (ratio > 0.62) & (ratio < 1.0) & (np.abs(chroma).max(axis=2) < 10.0)
    return _clean(full), _clean(full & ~shadow)


def _tighten(box: list[float], full: np.ndarray, strict: np.ndarray) -> list[float]:
    """``box`` shrunk to its shadow-free pixels when they are most of the object."""
    x0, y0, x1, y1 = (int(v) for v in box)
    inner = strict[y0:y1, x0:x1]
    if inner.sum() < _KEEP_SHARE * full[y0:y1, x0:x1].sum():
        return box
    ys, xs = np.nonzero(inner)
    return [x0 + xs.min(), y0 + ys.min(), x0 + xs.max() + 1, y0 + ys.max() + 1]


def _estimate(arr: np.ndarray) -> tuple[bool, np.ndarray, float]:
    """Is the border plain (3 of its 4 sides), its colour, and the foreground threshold.

    A product may touch or be cut by one side (or cast its shadow there), so one side may differ.
    """
    sides = _sides(arr)
    background = np.median(np.concatenate(sides), axis=0)
    shares = [
        float((np.abs(side - background).max(axis=1) <= _PLAIN_TOLERANCE).mean()) for side in sides
    ]
    plain_sides = [side for side, share in zip(sides, shares, strict=True) if share >= _PLAIN_SHARE]
    if len(plain_sides) < 3:
        return False, background, 0.0
    border = np.concatenate(plain_sides)
    background = np.median(border, axis=0)
    distance = np.abs(border - background).max(axis=1)
    tolerance = max(24.0, float(np.percentile(distance, 95)) + 8.0)
    return True, background, tolerance


def _merge(boxes: list[list[float]], gap: float) -> list[list[float]]:
    """Merge boxes that overlap or lie within ``gap`` pixels of each other, until stable."""
    merged = [list(b) for b in boxes]
    changed = True
    while changed:
        changed = False
        for i in range(len(merged)):
            for j in range(i + 1, len(merged)):
                a, b = merged[i], merged[j]
                if (
                    a[0] - gap <= b[2]
                    and b[0] - gap <= a[2]
                    and a[1] - gap <= b[3]
                    and b[1] - gap <= a[3]
                ):
                    merged[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                    del merged[j]
                    changed = True
                    break
            if changed:
                break
    return merged


def analyse_foreground(img: Image.Image) -> ForegroundAnalysis:
    """Decide whether ``img`` is on a plain background and box its separate foreground objects.

    Boxes are largest first; none when the background is not plain or nothing stands out.
    """
    arr, scale = _work_array(img)
    plain, background, tolerance = _estimate(arr)
    bg = (int(background[0]), int(background[1]), int(background[2]))
    if not plain or min(arr.shape[:2]) < 8:
        return ForegroundAnalysis(False, bg, [], 0.0)
    mask, strict = _masks(arr, background, tolerance)
    coverage = float(mask.mean())
    if coverage > _MAX_FOREGROUND_SHARE:
        return ForegroundAnalysis(True, bg, [], coverage)
    labels, _ = ndimage.label(mask)
    h, w = mask.shape
    # Specks join their neighbours first (a pattern on a garment close to the background's
    # colour shows as dots), then whole groups too small to be a product are dropped.
    boxes: list[list[float]] = [
        [found[1].start, found[0].start, found[1].stop, found[0].stop]
        for found in ndimage.find_objects(labels)
        if found is not None
    ]
    if len(boxes) > _MAX_BLOBS:  # a busy image: only its largest blobs can be products
        boxes = sorted(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))[-_MAX_BLOBS:]
    boxes = _merge(boxes, _MERGE_GAP * max(h, w))
    min_pixels = _MIN_OBJECT_SHARE * h * w
    boxes = [
        _tighten(b, mask, strict)
        for b in boxes
        if int(mask[int(b[1]) : int(b[3]), int(b[0]) : int(b[2])].sum()) >= min_pixels
    ]
    boxes.sort(key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True)
    full_w, full_h = img.width, img.height
    out = [
        (
            max(0.0, b[0] / scale),
            max(0.0, b[1] / scale),
            min(float(full_w), b[2] / scale),
            min(float(full_h), b[3] / scale),
        )
        for b in boxes
    ]
    return ForegroundAnalysis(True, bg, out, coverage)


def foreground_mask(img: Image.Image) -> np.ndarray | None:
    """A full-size boolean foreground mask of a plain-background image, else ``None``."""
    arr, _ = _work_array(img)
    plain, background, tolerance = _estimate(arr)
    if not plain or min(arr.shape[:2]) < 8:
        return None
    full, strict = _masks(arr, background, tolerance)
    mask = strict if strict.sum() >= _KEEP_SHARE * full.sum() else full
    if not mask.any() or mask.mean() > _MAX_FOREGROUND_SHARE:
        return None
    small = Image.fromarray(mask.astype(np.uint8) * 255)
    return np.asarray(small.resize(img.size, Image.Resampling.BILINEAR)) >= 128


def paint_background(
    img: Image.Image, colour: tuple[int, int, int] = (255, 255, 255)
) -> Image.Image:
    """``img`` with everything outside its foreground painted ``colour`` (a copy).

    Images whose background is not plain enough to separate come back unchanged (as a copy):
    a wrong mask would cut the garment, which hurts more than a busy background.
    """
    rgb = img.convert("RGB") if img.mode != "RGB" else img.copy()
    mask = foreground_mask(rgb)
    if mask is None:
        return rgb
    alpha = Image.fromarray(mask.astype(np.uint8) * 255)
    out = Image.new("RGB", rgb.size, colour)
    out.paste(rgb, mask=alpha)
    return out
