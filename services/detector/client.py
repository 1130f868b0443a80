"""The detector service over HTTP, as a :class:`shared.detection.GarmentDetector`.

Images travel as lossless PNG (boxes come back in their pixels), up to :data:`MAX_IMAGES` per
request; a longer batch is split into several requests.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from PIL import Image

from services.detector.schemas import DetectResponse
from shared.detection import DetectionResult
from shared.health import Check
from shared.images import to_rgb
from shared.service_client import ServiceClient

__all__ = ["MAX_IMAGES", "HttpDetector"]

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
