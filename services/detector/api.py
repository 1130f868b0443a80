"""The detector service (``python -m services.detector``): garment boxes over HTTP.

``POST /detect`` takes one or more multipart ``image`` files and answers one result per image
(boxes, crop boxes, categories, scores, the path that answered, the fallback flag). Images that
are not images, corrupt or too large get a 4xx naming the part; odd but valid images (tiny,
grayscale, transparent, no garment) get a normal answer, at worst the whole-image fallback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from PIL import Image
from starlette.datastructures import UploadFile

from services.detector.client import MAX_IMAGES
from services.detector.loader import LazyDetector
from services.detector.schemas import DetectResponse, ResultOut
from shared.errors import InvalidInputError, LookalikeError
from shared.health import Check
from shared.images import load_image
from shared.settings import Settings, get_settings
from shared.web import readiness, service_app

log = logging.getLogger(__name__)
router = APIRouter()


def _detector(request: Request) -> LazyDetector:
    return request.app.state.detector


DetectorDep = Annotated[LazyDetector, Depends(_detector)]


@router.get("/readyz", tags=["ops"])
async def readyz(request: Request) -> JSONResponse:
    """Ready once the model is loaded (503 while it loads or when it failed)."""
    error: str | None = request.app.state.load_error
    ready: bool = request.app.state.ready
    detail = error or ("loaded" if ready else "loading")
    return readiness([Check("detector", ready, detail, 0.0)])


def _decode(parts: list[bytes], settings: Settings) -> list[Image.Image]:
    images = []
    for index, data in enumerate(parts):
        try:
            images.append(
                load_image(
                    data,
                    max_bytes=settings.images.max_upload_bytes,
                    max_pixels=settings.images.max_image_pixels,
                )
            )
        except LookalikeError as exc:
            exc.message = f"image {index}: {exc.message}"
            raise
    return images


@router.post("/detect", response_model=DetectResponse, tags=["detect"])
async def detect(request: Request, detector: DetectorDep) -> DetectResponse:
    """Garments of each image (multipart ``image`` files, up to 16), in the order sent."""
    settings: Settings = request.app.state.settings
    async with request.form(max_files=MAX_IMAGES, max_fields=0) as form:
        uploads = [part for part in form.getlist("image") if isinstance(part, UploadFile)]
        if not uploads:
            raise InvalidInputError("send the images as multipart files named 'image'")
        parts = [await part.read() for part in uploads]
    images = await run_in_threadpool(_decode, parts, settings)
    results = await run_in_threadpool(detector.detect, images)
    return DetectResponse(results=[ResultOut.of(r) for r in results])


def create_app(
    settings: Settings | None = None, *, detector: LazyDetector | None = None
) -> FastAPI:
    """The detector service; the model loads in the background at start."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.detector = detector or LazyDetector(settings.detector)
        app.state.ready = False
        app.state.load_error = None

        def warm() -> None:
            try:
                app.state.detector.load()
            except LookalikeError as exc:
                log.error("detector failed to load: %s", exc.message)
                app.state.load_error = exc.message
                return
            app.state.ready = True

        warming = asyncio.get_running_loop().run_in_executor(None, warm)
        try:
            yield
        finally:
            await asyncio.wait([warming], timeout=60)

    return service_app("Lookalike detector", router, lifespan)
