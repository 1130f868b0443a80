"""Box datasets (``DIR/boxes.csv`` + images) and the split (the detector's input transform,
``letterbox``, is serving code: ``services.detector.inference``).

``boxes.csv`` has one row per garment box: ``filename`` (relative to DIR), ``coarse_category``
and ``x1,y1,x2,y2`` in pixels (the street-photo format of ``../shared/data``). Coarse categories
outside :data:`CLASSES` (eyewear, jewellery, legwear, hat ...) are dropped.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from shared.detection import COARSE_CATEGORIES, held_out
from shared.errors import InvalidInputError, NotFoundError

__all__ = [
    "CLASSES",
    "BoxedImage",
    "Sample",
    "data_fingerprint",
    "read_boxes",
    "split",
]

CLASSES: tuple[str, ...] = COARSE_CATEGORIES
"""What the shipped detector predicts: top, bottom, dress, outerwear, footwear, bag, accessory."""


@dataclass(frozen=True)
class BoxedImage:
    """One image and its ground-truth boxes (pixels) with class indices into ``CLASSES``."""

    path: Path
    boxes: np.ndarray  # (n, 4) float32 x1, y1, x2, y2
    labels: np.ndarray  # (n,) int64

    @property
    def name(self) -> str:
        return self.path.name


@dataclass
class Sample:
    """A training image in memory with its boxes (pixels) and class indices."""

    image: Image.Image
    boxes: np.ndarray  # (n, 4) float32
    labels: np.ndarray  # (n,) int64


def read_boxes(data_dir: str | Path, classes: tuple[str, ...] = CLASSES) -> list[BoxedImage]:
    """Every image named in ``DIR/boxes.csv`` with its boxes of ``classes``, sorted by name.

    Images with no box of ``classes`` are kept (with no boxes): they teach "nothing here".
    """
    root = Path(data_dir)
    table = root / "boxes.csv"
    if not table.is_file():
        raise NotFoundError(f"{table} not found: a box dataset is DIR/boxes.csv plus its images")
    index = {name: i for i, name in enumerate(classes)}
    per_image: dict[str, list[tuple[list[float], int]]] = {}
    with table.open(newline="") as fh:
        reader = csv.DictReader(fh)
        needed = {"filename", "coarse_category", "x1", "y1", "x2", "y2"}
        missing = needed - set(reader.fieldnames or [])
        if missing:
            raise InvalidInputError(f"{table} lacks the column(s) {sorted(missing)}")
        for row in reader:
            boxes = per_image.setdefault(row["filename"], [])
            label = index.get(row["coarse_category"])
            if label is None:
                continue
            box = [float(row[k]) for k in ("x1", "y1", "x2", "y2")]
            if box[2] > box[0] and box[3] > box[1]:
                boxes.append((box, label))
    items = []
    for name in sorted(per_image):
        path = root / name
        if not path.is_file():
            raise NotFoundError(f"{path} (listed in {table}) does not exist")
        rows = per_image[name]
        items.append(
            BoxedImage(
                path,
                np.array([b for b, _ in rows], dtype=np.float32).reshape(-1, 4),
                np.array([label for _, label in rows], dtype=np.int64),
            )
        )
    if not items:
        raise InvalidInputError(f"{table} lists no images")
    return items


def split(
    items: list[BoxedImage], val_fraction: float, seed: int
) -> tuple[list[BoxedImage], list[BoxedImage]]:
    """A seeded shuffle split by image: ``(train, val)``; the same seed gives the same split."""
    if not 0.0 <= val_fraction < 1.0:
        raise InvalidInputError(f"val_fraction must be in [0, 1), got {val_fraction}")
    val_ids = held_out(len(items), val_fraction, seed)
    train = [item for i, item in enumerate(items) if i not in val_ids]
    val = [item for i, item in enumerate(items) if i in val_ids]
    return train, val


def data_fingerprint(data_dir: str | Path) -> str:
    """SHA-256 of ``boxes.csv`` and the names and sizes of the images it lists."""
    root = Path(data_dir)
    digest = hashlib.sha256((root / "boxes.csv").read_bytes())
    for item in read_boxes(root):
        digest.update(f"{item.path.name}:{item.path.stat().st_size}\n".encode())
    return digest.hexdigest()
