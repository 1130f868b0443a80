"""Copy-paste augmentation: catalog product shots, cut from their plain background, pasted
onto street photos with their boxes (Ghiasi et al., "Simple Copy-Paste", CVPR 2021).

Street photos hold few bags and fewer of them in the open; the catalog holds hundreds of bags
and shoes on white. A cutout lands where it hides at most a third of any garment already boxed,
at a height typical of its class in a full-length street photo.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from lab.detector.data import CLASSES, Sample
from services.detector.foreground import foreground_mask
from shared.errors import InvalidInputError, NotFoundError

__all__ = ["PASTE_HEIGHT", "Cutout", "paste_photos", "read_cutouts"]

PASTE_HEIGHT: dict[str, tuple[float, float]] = {
    "top": (0.22, 0.38),
    "bottom": (0.25, 0.45),
    "dress": (0.35, 0.55),
    "outerwear": (0.25, 0.45),
    "footwear": (0.05, 0.11),
    "bag": (0.10, 0.26),
    "accessory": (0.04, 0.10),
}
"""Share of the photo's height a pasted product spans, drawn uniformly in this range."""
_MAX_HIDDEN = 0.3  # a cutout may hide at most this share of a boxed garment
_TRIES = 20


@dataclass(frozen=True)
class Cutout:
    """A product cut from its background: RGBA, tight around the product, with its class."""

    image: Image.Image
    label: int


def read_cutouts(labels_csv: str | Path, classes: Sequence[str]) -> list[Cutout]:
    """The products of a catalog ``labels.csv`` (``filename``, ``articleType``) whose garment
    class falls under one of ``classes``, cut where their background is plain enough."""
    from shared.images import load_image
    from shared.taxonomy import garment_class

    table = Path(labels_csv)
    if not table.is_file():
        raise NotFoundError(f"{table} not found: a catalog is labels.csv plus its images")
    unknown = sorted(set(classes) - set(CLASSES))
    if unknown:
        raise InvalidInputError(f"no detector class {unknown}; the classes are {list(CLASSES)}")
    out = []
    with table.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if not {"filename", "articleType"} <= set(reader.fieldnames or []):
            raise InvalidInputError(f"{table} needs the columns filename and articleType")
        for row in reader:
            kind = garment_class(row["articleType"])
            if kind is None or kind.parent not in classes:
                continue
            path = table.parent / row["filename"]
            if not path.is_file():
                continue
            img = load_image(path)
            mask = foreground_mask(img)
            if mask is None:
                continue
            ys, xs = np.nonzero(mask)
            x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
            if min(x1 - x0, y1 - y0) < 16:
                continue
            rgba = img.convert("RGBA")
            rgba.putalpha(Image.fromarray(mask.astype(np.uint8) * 255))
            out.append(Cutout(rgba.crop((x0, y0, x1, y1)), CLASSES.index(kind.parent)))
    if not out:
        raise InvalidInputError(f"{table}: no product of {list(classes)} could be cut out")
    return out


def _hides_too_much(box: np.ndarray, boxes: np.ndarray) -> bool:
    if len(boxes) == 0:
        return False
    ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return bool(np.any(ix * iy > _MAX_HIDDEN * np.maximum(areas, 1.0)))


def _paste_one(
    img: Image.Image, cutout: Cutout, boxes: np.ndarray, rng: random.Random
) -> np.ndarray | None:
    """Paste ``cutout`` into ``img`` (in place); its box, or ``None`` if no place was found."""
    low, high = PASTE_HEIGHT[CLASSES[cutout.label]]
    height = img.height * rng.uniform(low, high)
    width = height * cutout.image.width / cutout.image.height
    if width > 0.8 * img.width:
        width, height = 0.8 * img.width, 0.8 * img.width * cutout.image.height / cutout.image.width
    size = (max(2, round(width)), max(2, round(height)))
    piece = cutout.image.resize(size, Image.Resampling.BILINEAR)
    if rng.random() < 0.5:
        piece = ImageOps.mirror(piece)
    rgb = ImageEnhance.Brightness(piece.convert("RGB")).enhance(rng.uniform(0.7, 1.1))
    for _ in range(_TRIES):
        x = rng.randint(0, img.width - size[0])
        y = rng.randint(0, img.height - size[1])
        box = np.array([x, y, x + size[0], y + size[1]], np.float32)
        if not _hides_too_much(box, boxes):
            img.paste(rgb, (x, y), piece.getchannel("A"))
            return box
    return None


def paste_photos(
    photos: Sequence[Sample],
    cutouts: Sequence[Cutout],
    count: int,
    seed: int,
    per_photo: tuple[int, int] = (1, 3),
) -> list[Sample]:
    """``count`` copies of random ``photos``, each with 1-3 cutouts pasted in (class-balanced:
    a class is drawn first, then one of its products)."""
    if count and not photos:
        raise InvalidInputError("copy-paste needs street photos to paste onto")
    rng = random.Random(seed)  # noqa: S311 - augmentation, not secrets
    by_class: dict[int, list[Cutout]] = {}
    for cutout in cutouts:
        by_class.setdefault(cutout.label, []).append(cutout)
    labels = sorted(by_class)
    out = []
    for _ in range(count):
        base = rng.choice(photos)
        img = base.image.copy()
        boxes, classes = base.boxes.copy(), base.labels.copy()
        for _ in range(rng.randint(*per_photo)):
            cutout = rng.choice(by_class[rng.choice(labels)])
            box = _paste_one(img, cutout, boxes, rng)
            if box is not None:
                boxes = np.vstack([boxes, box[None]])
                classes = np.append(classes, cutout.label)
        out.append(Sample(img, boxes.astype(np.float32), classes.astype(np.int64)))
    return out
