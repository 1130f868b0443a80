"""A photo's garment crops, made the same way for the catalog (ingest) and for a shopper's
photo (the gateway), so that both sides of a search compare like with like.

:func:`garment_crops` takes a decoded work image (:func:`shared.images.load_work_image`) and
what the detector found on it, and gives each garment's box in the original photo's pixels,
its crop, the garment's own pixels in it (:mod:`shared.mask`), its colour descriptor and its
named colour (:mod:`shared.colour`). One framing rule serves both sides
(``crops.detect``): a product shot on a plain background (the detector's foreground path) is
framed whole, as the catalog's photos are, unless the catalog is cropped to its garments too.
With ``crops.remove_background`` the crop handed on is the garment alone (:data:`CUTOUT_FILL`
around it), on both sides alike.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from shared.colour import (
    best_name,
    colour_descriptor,
    grid_lab,
    lab_probabilities,
    weighted_descriptor,
)
from shared.detection import FOREGROUND, Detection, DetectionResult
from shared.errors import InvalidInputError
from shared.images import crop_box
from shared.mask import GarmentMask, garment_mask, keep_garment

__all__ = ["CUTOUT_FILL", "GarmentCrop", "garment_crops"]

log = logging.getLogger(__name__)

Box = tuple[float, float, float, float]

CUTOUT_FILL = (255, 255, 255)
"""What replaces a crop's background with ``crops.remove_background``: white, the backdrop of
the catalog's own product shots (which the embedder was fine-tuned on), so a cut-out street
garment looks like a product shot and a product shot on white barely changes. A mean grey
(zero after the CNN's normalisation) would be a backdrop no training photo has."""


@dataclass(frozen=True)
class GarmentCrop:
    """One garment of a photo: its box in the original photo's pixels (unrounded), the
    detector's class and score, the crop to embed (the garment alone with
    ``remove_background``), the detector's tight box in the crop's pixels (``inner``), the
    garment's pixels in the crop, its colour descriptor and its named colour (a shopper
    colour name of :mod:`shared.colour` and the model's probability; ``None`` only when the
    caller asked for no names: the lab, training the namer)."""

    box: Box
    category: str | None
    score: float
    picture: Image.Image
    colour: np.ndarray
    inner: Box
    mask: GarmentMask
    colour_name: str | None
    colour_p: float | None
    colour_probs: np.ndarray | None = None
    """The probability of each shopper colour name (:data:`shared.colour.SHOPPER_COLOURS`)."""


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


def _inner_box(box: Box, region: Box, size: tuple[int, int]) -> Box:
    """The detector's tight ``box`` in the pixels of the crop cut at ``region`` (as
    :func:`shared.images.crop_box` cuts it), clipped to the crop."""
    left, top = max(0, math.floor(region[0])), max(0, math.floor(region[1]))
    width, height = size
    x0, y0 = min(max(box[0] - left, 0.0), width), min(max(box[1] - top, 0.0), height)
    x1, y1 = min(max(box[2] - left, 0.0), width), min(max(box[3] - top, 0.0), height)
    if x1 <= x0 or y1 <= y0:
        return 0.0, 0.0, float(width), float(height)
    return x0, y0, x1, y1


def garment_crops(
    image: Image.Image,
    size: tuple[int, int],
    result: DetectionResult,
    *,
    detect: bool,
    select: Callable[[Sequence[Detection]], Sequence[Detection]] | None = None,
    name: str = "photo",
    name_colours: bool = True,
    remove_background: bool = False,
) -> list[GarmentCrop]:
    """The garment crops of ``image`` (the decoded work image of a photo whose original
    ``size`` is ``(width, height)``) from the detector's ``result`` on it.

    ``detect`` is ``crops.detect``: off, a product shot (the foreground path) is one crop of
    the whole image, as every catalog photo then is. ``select`` keeps some of the framed
    detections (ingest keeps the product's own kind of garment). A region that cuts nothing
    out of the image is dropped with a warning naming ``name``. ``name_colours`` off leaves
    the crops' colour unnamed (the lab, before there is a model to name it with).
    ``remove_background`` is ``crops.remove_background``: each crop's ``picture`` is its
    garment alone (everything outside the mask painted :data:`CUTOUT_FILL`) and its colour
    descriptor counts the mask's pixels alone; a crop whose mask fell back (nothing to
    separate) stays whole.
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
        # A crop framed whole is the whole photo on both sides (ingest may not even run the
        # detector then): its garment is looked for in the whole frame, not the objects' box.
        inner = whole if region == whole else _inner_box(detection.box, region, picture.size)
        lab = grid_lab(picture)
        mask = garment_mask(lab, inner, picture.size)
        probabilities = lab_probabilities(lab, mask.pixels) if name_colours else None
        colour_name, colour_p = (
            best_name(probabilities) if probabilities is not None else (None, None)
        )
        if remove_background and not mask.fallback:
            colour = weighted_descriptor(lab, mask.pixels)
            picture = keep_garment(picture, mask, CUTOUT_FILL)
        else:
            colour = colour_descriptor(picture, lab)
        crops.append(
            GarmentCrop(
                box=(x0 * sx, y0 * sy, x1 * sx, y1 * sy),
                category=detection.category,
                score=detection.score,
                picture=picture,
                colour=colour,
                inner=inner,
                mask=mask,
                colour_name=colour_name,
                colour_p=colour_p,
                colour_probs=probabilities,
            )
        )
    return crops
