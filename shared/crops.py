"""A photo's garment crops, made the same way for the catalog (ingest) and for a shopper's
photo (the gateway), so that both sides of a search compare like with like.

:func:`garment_crops` takes a decoded work image (:func:`shared.images.load_work_image`) and
what the detector found on it, and gives each garment's box in the original photo's pixels,
its crop and its colour descriptor (:mod:`shared.colour`). One framing rule serves both sides
(``crops.detect``): a product shot on a plain background (the detector's foreground path) is
framed whole, as the catalog's photos are, unless the catalog is cropped to its garments too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from shared.colour import colour_descriptor
from shared.detection import FOREGROUND, Detection, DetectionResult
from shared.errors import InvalidInputError
from shared.images import crop_box

__all__ = ["GarmentCrop", "garment_crops"]

log = logging.getLogger(__name__)

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class GarmentCrop:
    """One garment of a photo: its box in the original photo's pixels (unrounded), the
    detector's class and score, the crop to embed and its colour descriptor."""

    box: Box
    category: str | None
    score: float
    picture: Image.Image
    colour: np.ndarray


def _framed_whole(detections: Sequence[Detection], width: int, height: int) -> Detection:
    """A product shot framed as the catalog frames its photos when it does not detect: whole
    (a pair of shoes is one product); its box spans what the detector found."""
    box = (
        min(d.box[0] for d in detections),
        min(d.box[1] for d in detections),
        max(d.box[2] for d in detections),
        max(d.box[3] for d in detections),
    )
    return Detection(box=box, category=None, score=1.0, crop_box=(0.0, 0.0, width, height))


def garment_crops(
    image: Image.Image,
    size: tuple[int, int],
    result: DetectionResult,
    *,
    detect: bool,
    select: Callable[[Sequence[Detection]], Sequence[Detection]] | None = None,
    name: str = "photo",
) -> list[GarmentCrop]:
    """The garment crops of ``image`` (the decoded work image of a photo whose original
    ``size`` is ``(width, height)``) from the detector's ``result`` on it.

    ``detect`` is ``crops.detect``: off, a product shot (the foreground path) is one crop of
    the whole image, as every catalog photo then is. ``select`` keeps some of the framed
    detections (ingest keeps the product's own kind of garment). A region that cuts nothing
    out of the image is dropped with a warning naming ``name``.
    """
    detections: Sequence[Detection] = result.detections
    if result.path == FOREGROUND and not detect and detections:
        detections = [_framed_whole(detections, image.width, image.height)]
    if select is not None:
        detections = select(detections)
    sx, sy = size[0] / image.width, size[1] / image.height
    whole = (0.0, 0.0, float(image.width), float(image.height))
    crops = []
    for detection in detections:
        region = detection.region
        try:
            picture = image if region == whole else crop_box(image, region)
        except InvalidInputError as exc:
            log.warning("%s: dropped box %s (%s)", name, region, exc)
            continue
        x0, y0, x1, y1 = detection.box
        crops.append(
            GarmentCrop(
                box=(x0 * sx, y0 * sy, x1 * sx, y1 * sy),
                category=detection.category,
                score=detection.score,
                picture=picture,
                colour=colour_descriptor(picture),
            )
        )
    return crops
