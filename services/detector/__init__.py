"""Garment detection and cropping, as a library and a FastAPI service (issue #6).

``make_detector(settings)`` (:mod:`services.detector.client`) gives a
:class:`shared.detection.GarmentDetector`: the HTTP client
when ``LOOKALIKE_DETECTOR_URL`` is set, else the in-process detector (foreground path for
product shots, the trained model for photos of people, the whole image when nothing is found).
``crop_detections(image, result, remove_background=...)`` cuts the crops for the embedder.
Nothing heavy is imported here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from services.detector.client import make_detector

if TYPE_CHECKING:
    from services.detector.service import crop_detections

__all__ = ["crop_detections", "make_detector"]


def __getattr__(name: str) -> Any:
    if name == "crop_detections":
        from services.detector.service import crop_detections

        return crop_detections
    raise AttributeError(name)
