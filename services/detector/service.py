"""The in-process detector: picks, per image, the path that answers (no FastAPI, no Celery).

- ``foreground``: the image has a plain, nearly uniform border (a catalog product shot); each
  separate foreground object is one tight box. No model runs, unless the one object looks like
  a person (tall) and the model finds two or more different garments on it: then ``model``.
- ``model``: a trained detector (the shipped default, a torchvision checkpoint or a YOLO file)
  finds garments with categories and scores; shoe pairs, boxes inside their own class's box and
  a dress's upper half are merged into the garments a shopper sees
  (:func:`~services.detector.postprocess.merge_garments`).

Every path answers its garments most prominent first (area, centrality, score:
:func:`~services.detector.postprocess.prominence`): callers show the first one first.
- ``whole-image``: nothing found, or an image too small to look at: the whole image is one
  crop and ``fallback`` is true.

Odd images (tiny, huge, grayscale, transparent) never raise: the worst answer is the fallback.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from PIL import Image

from services.detector.foreground import analyse_foreground, paint_background
from services.detector.postprocess import by_prominence, merge_garments, one_per_garment
from shared.detection import FOREGROUND, WHOLE_IMAGE, Detection, DetectionResult, grow_box
from shared.errors import LookalikeError
from shared.images import to_rgb
from shared.settings import DetectorSettings

__all__ = [
    "FOREGROUND",
    "MIN_SIDE",
    "MODEL",
    "Detector",
    "ModelBackend",
    "crop_detections",
]

log = logging.getLogger(__name__)

MODEL = "model"
MIN_SIDE = 16
"""Images with a side shorter than this are answered with the whole image."""
_PERSON_ASPECT = 1.6
_PERSON_MIN_SCORE = 0.5


class ModelBackend(Protocol):
    """A detection model: boxes in each image's own pixels, best first."""

    version: str

    def detect(
        self, images: Sequence[Image.Image], *, min_score: float, max_detections: int
    ) -> list[list[Detection]]: ...


class Detector:
    """:class:`shared.detection.GarmentDetector` in process: foreground, model or whole image."""

    def __init__(self, settings: DetectorSettings, model: ModelBackend | None = None) -> None:
        self.settings = settings
        self.model = model

    @property
    def version(self) -> str:
        return self.model.version if self.model is not None else FOREGROUND

    def detect(self, images: Sequence[Image.Image]) -> list[DetectionResult]:
        results: list[DetectionResult | None] = [None] * len(images)
        rgb: list[Image.Image | None] = [None] * len(images)
        for index, img in enumerate(images):
            try:
                rgb[index] = to_rgb(img)
            except LookalikeError as exc:
                log.warning("cannot read image %d for detection: %s", index, exc)
        # First the cheap path; the model then runs once over every image left.
        pending: list[tuple[int, Image.Image]] = []
        person_checks: dict[int, tuple[float, float, float, float]] = {}
        for index, decoded in enumerate(rgb):
            if decoded is None or min(decoded.size) < MIN_SIDE:
                continue
            analysis = analyse_foreground(decoded)
            if analysis.plain and analysis.boxes:
                box = analysis.boxes[0]
                tall = (box[3] - box[1]) >= _PERSON_ASPECT * (box[2] - box[0])
                if len(analysis.boxes) == 1 and tall and self.model is not None:
                    person_checks[index] = box
                    pending.append((index, decoded))
                    continue
                results[index] = self._result(decoded, FOREGROUND, analysis.boxes, None)
            else:
                pending.append((index, decoded))
        if pending and self.model is not None:
            floors = self.settings.class_min_score.values()
            found = self.model.detect(
                [img for _, img in pending],
                min_score=min([self.settings.min_score, *floors]),
                max_detections=self.settings.max_detections,
            )
            for (index, img), detections in zip(pending, found, strict=True):
                if index in person_checks:
                    garments = {d.category for d in detections if d.score >= _PERSON_MIN_SCORE}
                    if len(garments) < 2:
                        results[index] = self._result(img, FOREGROUND, [person_checks[index]], None)
                        continue
                merged = merge_garments(self._confident(detections))
                detections = one_per_garment(merged, self.settings.overlap_iou)
                if detections:
                    results[index] = self._result(img, MODEL, [], detections)
        return [
            result
            if result is not None
            else DetectionResult.whole_image(img.width, img.height, model_version=self.version)
            for result, img in zip(results, images, strict=True)
        ]

    def _confident(self, detections: list[Detection]) -> list[Detection]:
        """The detections above their class's own lowest score (``class_min_score``)."""
        floors = self.settings.class_min_score
        if not floors:
            return detections
        floor = self.settings.min_score
        return [d for d in detections if d.score >= floors.get(d.category or "", floor)]

    def _result(
        self,
        img: Image.Image,
        path: str,
        boxes: list[tuple[float, float, float, float]],
        detections: list[Detection] | None,
    ) -> DetectionResult:
        found = detections or [Detection(box=box, category=None, score=1.0) for box in boxes]
        found = by_prominence(found, img.width, img.height)
        margin = self.settings.margin
        out = [
            Detection(
                box=d.box,
                category=d.category,
                score=d.score,
                crop_box=grow_box(d.box, margin, img.width, img.height),
            )
            for d in found[: self.settings.max_detections]
        ]
        return DetectionResult(
            width=img.width,
            height=img.height,
            detections=out,
            fallback=False,
            path=path,
            model_version=self.version,
        )

    def crops(self, image: Image.Image, result: DetectionResult) -> list[Image.Image]:
        """The crops of ``result`` for the embedder (backgrounds removed if the setting says so)."""
        return crop_detections(image, result, remove_background=self.settings.remove_background)


def crop_detections(
    image: Image.Image,
    result: DetectionResult,
    *,
    remove_background: bool = False,
    fill: tuple[int, int, int] = (255, 255, 255),
) -> list[Image.Image]:
    """One RGB crop per detection (its ``region``).

    With ``remove_background``, a foreground-path crop keeps only its segmented object on
    ``fill``; a model crop gets its margin (outside the tight box) painted ``fill``, then the
    same segmentation where the crop's border is plain. Whole-image fallbacks are left as they are.
    """
    rgb = to_rgb(image)
    crops = []
    for detection in result.detections:
        x0, y0, x1, y1 = (round(v) for v in detection.region)
        x0, y0 = max(0, x0), max(0, y0)
        x1, y1 = min(rgb.width, max(x1, x0 + 1)), min(rgb.height, max(y1, y0 + 1))
        crop = rgb.crop((x0, y0, x1, y1))
        if remove_background and result.path != WHOLE_IMAGE:
            if result.path != FOREGROUND and detection.crop_box is not None:
                bx0, by0, bx1, by1 = detection.box
                canvas = Image.new("RGB", crop.size, fill)
                inner = (round(bx0 - x0), round(by0 - y0), round(bx1 - x0), round(by1 - y0))
                canvas.paste(crop.crop(inner), inner[:2])
                crop = canvas
            crop = paint_background(crop, fill)
        crops.append(crop)
    return crops
