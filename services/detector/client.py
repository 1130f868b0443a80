"""How callers get a :class:`shared.detection.GarmentDetector`: :func:`make_detector`, the
detector service over HTTP (:class:`HttpDetector`) when ``detector_url`` is set, else the
in-process detector (:class:`~services.detector.loader.LazyDetector`).

Images travel as lossless PNG (boxes come back in their pixels), up to :data:`MAX_IMAGES` per
request; a longer batch is split into several requests.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from PIL import Image

from services.detector.loader import LazyDetector
from services.detector.schemas import DetectResponse
from shared.detection import DetectionResult, GarmentDetector
from shared.health import Check
from shared.images import to_rgb
from shared.service_client import ServiceClient
from shared.settings import Settings

__all__ = ["MAX_IMAGES", "HttpDetector", "make_detector"]

MAX_IMAGES = 16
"""Images per request (the service accepts up to this many ``image`` parts)."""


def _png(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    to_rgb(img).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


class HttpDetector:
    """``POST /detect`` of the detector service (``python -m services.detector``).

    Raises :class:`shared.errors.ServiceUnavailableError` when the service is down or slow;
    odd images never make it fail (the service answers them with the whole-image fallback).
    """

    def __init__(self, base_url: str, *, timeout_s: float, transport: Any = None) -> None:
        self.http = ServiceClient("detector", base_url, timeout_s=timeout_s, transport=transport)

    def detect(self, images: Sequence[Image.Image]) -> list[DetectionResult]:
        results: list[DetectionResult] = []
        for start in range(0, len(images), MAX_IMAGES):
            chunk = images[start : start + MAX_IMAGES]
            files = [("image", (f"{i}.png", _png(img), "image/png")) for i, img in enumerate(chunk)]
            response = self.http.request("POST", "/detect", files=files)
            body = DetectResponse.model_validate(response.json())
            results.extend(result.to_result() for result in body.results)
        return results

    def check(self) -> Check:
        return self.http.check()

    def close(self) -> None:
        self.http.close()


def make_detector(settings: Settings) -> GarmentDetector:
    """The HTTP client when ``detector_url`` is set, else the in-process detector (loaded on
    first use; the same one ingest crops the catalog with, so queries and catalog match)."""
    if settings.detector_url:
        return HttpDetector(settings.detector_url, timeout_s=settings.detector.timeout_s)
    return LazyDetector(settings.detector)
