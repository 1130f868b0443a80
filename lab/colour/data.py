"""The crops the colour model learns from and is measured on, cut as the product cuts them.

* Catalog photos (``labels.csv`` + images): decoded as ingest decodes them, run through the
  shipped detector and :func:`shared.crops.garment_crops` (framed whole, ``crops.detect``
  off, the default), labelled with ``baseColour`` read onto the shopper names
  (:func:`shared.colour.label_colour`; rows whose label names no one colour are left out).
* Street garments (``boxes.csv`` + images): each ground-truth box of a garment class handed
  to :func:`shared.crops.garment_crops` as a detection grown by the detector's margin, as the
  gateway cuts a street photo; no colour labels.

Each crop is the product's :class:`~shared.crops.GarmentCrop` (picture, tight box, garment
mask); products are split into train and validation by a hash of their id (one photo per
product in this catalog).
"""

from __future__ import annotations

import csv
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from shared.colour import label_colour
from shared.crops import GarmentCrop, garment_crops
from shared.detection import Detection, DetectionResult, GarmentDetector, grow_box
from shared.images import DEFAULT_MAX_PIXELS, load_work_image
from shared.settings import DetectorSettings

__all__ = ["ColourCrop", "catalog_crops", "is_validation", "street_crops"]

_GARMENTS = frozenset({"top", "bottom", "dress", "outerwear"})
_MAX_BYTES = 20_000_000


@dataclass(frozen=True)
class ColourCrop:
    """One crop: its id, the product's crop, its colour name (``None``: unlabelled) and the
    kind of garment (article type or street class)."""

    key: str
    crop: GarmentCrop
    colour: str | None
    kind: str

    @property
    def picture(self) -> Image.Image:
        return self.crop.picture


def is_validation(key: str, share: float = 0.2) -> bool:
    """Whether a product is in the validation split (a stable hash of its id)."""
    return (zlib.crc32(key.encode()) % 1000) < share * 1000


def _batches(rows: Sequence[dict[str, str]], size: int) -> Iterator[Sequence[dict[str, str]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def catalog_crops(
    folder: Path, detector: GarmentDetector, *, limit: int | None = None, named: bool = False
) -> list[ColourCrop]:
    """The catalog's labelled photos cut as ingest cuts them (one crop each: framed whole);
    ``named``: with the shipped model's colour names."""
    with (folder / "labels.csv").open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if label_colour(r.get("baseColour") or "")]
    rows = rows[:limit] if limit is not None else rows
    out: list[ColourCrop] = []
    for batch in _batches(rows, 32):
        decoded = [
            load_work_image(
                (folder / r["filename"]).read_bytes(),
                max_bytes=_MAX_BYTES,
                max_pixels=DEFAULT_MAX_PIXELS,
            )
            for r in batch
        ]
        results = detector.detect([image for image, _ in decoded])
        for row, (image, size), result in zip(batch, decoded, results, strict=True):
            crops = garment_crops(
                image, size, result, detect=False, name=row["filename"], name_colours=named
            )
            if not crops:
                continue
            out.append(
                ColourCrop(
                    key=row["item_id"],
                    crop=crops[0],
                    colour=label_colour(row["baseColour"]),
                    kind=row.get("articleType") or "",
                )
            )
    return out


def street_crops(
    folder: Path, *, limit: int | None = None, named: bool = False
) -> list[ColourCrop]:
    """Garment boxes of the street photos (tops, bottoms, dresses, outerwear), cut with the
    detector's margin; ``named``: with the shipped model's colour names."""
    with (folder / "boxes.csv").open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["coarse_category"] in _GARMENTS]
    rows = rows[:limit] if limit is not None else rows
    margin = DetectorSettings().margin
    out: list[ColourCrop] = []
    opened: dict[str, Image.Image] = {}
    for index, row in enumerate(rows):
        if row["filename"] not in opened:
            opened.clear()
            with Image.open(folder / row["filename"]) as img:
                opened[row["filename"]] = img.convert("RGB")
        image = opened[row["filename"]]
        box = (float(row["x1"]), float(row["y1"]), float(row["x2"]), float(row["y2"]))
        found = Detection(
            box=box,
            category=row["coarse_category"],
            score=1.0,
            crop_box=grow_box(box, margin, image.width, image.height),
        )
        result = DetectionResult(image.width, image.height, [found], path="model")
        for crop in garment_crops(
            image, image.size, result, detect=True, name=row["filename"], name_colours=named
        ):
            out.append(
                ColourCrop(
                    key=f"{Path(row['filename']).stem}-{index}",
                    crop=crop,
                    colour=None,
                    kind=row["category"],
                )
            )
    return out
