"""The embedder service (``python -m services.embedder``): query crops over HTTP.

``POST /features`` takes crops as multipart ``crops`` parts: image files (JPEG, PNG, ...), or
raw RGB bytes with a ``shapes`` field (``WxH,WxH``) as the gateway's client sends them;
``classify=false`` skips the categories.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from PIL import Image
from starlette.datastructures import UploadFile

from services.embedder.client import RAW_TYPE
from services.embedder.provider import ModelProvider
from services.embedder.schemas import Features, WordsRequest, WordVectors
from services.embedder.service import MAX_CROPS, EmbedderService
from shared.db import Catalog
from shared.errors import InvalidInputError
from shared.images import load_image
from shared.settings import Settings, get_settings
from shared.web import readiness, service_app

log = logging.getLogger(__name__)
router = APIRouter()


def _service(request: Request) -> EmbedderService:
    return request.app.state.embedder


ServiceDep = Annotated[EmbedderService, Depends(_service)]


@router.get("/readyz", tags=["ops"])
async def readyz(service: ServiceDep) -> JSONResponse:
    """Ready once the active model is loaded (503 while it loads)."""
    return readiness([service.check()])


def _shapes(text: str | None, count: int) -> list[tuple[int, int]] | None:
    if not text:
        return None
    try:
        shapes = [tuple(int(v) for v in part.split("x", 1)) for part in text.split(",")]
    except ValueError as exc:
        raise InvalidInputError(f"shapes must look like 64x48,32x32, got {text!r}") from exc
    if len(shapes) != count or any(len(s) != 2 or min(s) <= 0 for s in shapes):
        raise InvalidInputError(f"{len(shapes)} shapes for {count} crops")
    return [(s[0], s[1]) for s in shapes]


def _decode(
    parts: list[tuple[bytes, str | None]], shapes: list[tuple[int, int]] | None, settings: Settings
) -> list[Image.Image]:
    crops = []
    for i, (data, content_type) in enumerate(parts):
        if shapes is not None and content_type == RAW_TYPE:
            width, height = shapes[i]
            if width * height > settings.images.max_image_pixels or len(data) != width * height * 3:
                raise InvalidInputError(f"crop {i}: {len(data)} bytes is not {width}x{height} RGB")
            crops.append(Image.frombytes("RGB", (width, height), data))
        else:
            crops.append(
                load_image(
                    data,
                    max_bytes=settings.images.max_upload_bytes,
                    max_pixels=settings.images.max_image_pixels,
                )
            )
    return crops


@router.post("/features", response_model=Features, tags=["embed"])
async def features(request: Request, service: ServiceDep) -> Features:
    """Embedding and categories of each crop (multipart ``crops``)."""
    settings: Settings = request.app.state.settings
    async with request.form(max_files=MAX_CROPS, max_fields=4) as form:
        uploads = [part for part in form.getlist("crops") if isinstance(part, UploadFile)]
        if not uploads:
            raise InvalidInputError("send the crops as multipart files named 'crops'")
        parts = [(await part.read(), part.content_type) for part in uploads]
        shapes_field = form.get("shapes")
        shapes = _shapes(shapes_field if isinstance(shapes_field, str) else None, len(parts))
        classify = str(form.get("classify", "true")).lower() not in ("false", "0", "no")
    crops = await run_in_threadpool(_decode, parts, shapes, settings)
    return await run_in_threadpool(partial(service.features, crops, classify=classify))


@router.post("/words", response_model=WordVectors, tags=["embed"])
async def words(body: WordsRequest, service: ServiceDep) -> WordVectors:
    """Words as vectors among the active model's pictures (its text tower or word bridge)."""
    return await run_in_threadpool(service.words, body.texts)


def create_app(
    settings: Settings | None = None,
    *,
    catalog: Catalog | None = None,
    service: EmbedderService | None = None,
) -> FastAPI:
    """The embedder service; the models load in the background at start."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = catalog is None
        opened = catalog or Catalog.from_settings(settings)
        app.state.settings = settings
        app.state.embedder = service or EmbedderService(ModelProvider(opened, settings))
        warming = asyncio.get_running_loop().run_in_executor(None, app.state.embedder.warm)
        try:
            yield
        finally:
            await asyncio.wait([warming], timeout=30)
            app.state.embedder.close()
            if owned:
                opened.dispose()

    return service_app("Lookalike embedder", router, lifespan)
