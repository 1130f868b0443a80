"""Routes of the recommendation API: ``POST /recommend``, ``POST /feedback``, ``GET /metrics``."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile

from services.gateway.errors import PayloadTooLargeError, UnsupportedMediaTypeError
from services.gateway.limits import check_api_key, enforce_rate_limit
from services.gateway.metrics import GatewayMetrics
from services.gateway.pipeline import RecommendPipeline
from services.gateway.schemas import (
    FeedbackBody,
    FeedbackOut,
    RecommendForm,
    RecommendJSON,
    RecommendParams,
    RecommendResponse,
)
from shared.db import Catalog, FeedbackIn
from shared.errors import InvalidInputError
from shared.web import validation_message

router = APIRouter()

Model = TypeVar("Model", bound=BaseModel)


def _pipeline(request: Request) -> RecommendPipeline:
    return request.app.state.pipeline


def _catalog(request: Request) -> Catalog:
    return request.app.state.catalog


PipelineDep = Annotated[RecommendPipeline, Depends(_pipeline)]
CatalogDep = Annotated[Catalog, Depends(_catalog)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "API key missing"},
    403: {"description": "API key wrong"},
    404: {"description": "Unknown product, or not indexed yet"},
    413: {"description": "Upload larger than gateway.max_upload_bytes"},
    415: {"description": "Not an image (content is sniffed), or neither multipart nor JSON"},
    422: {"description": "Bad parameter, bad or unfetchable image_url, private address"},
    429: {"description": "Over the per-client rate limit (see Retry-After)"},
    503: {"description": "A downstream service did not answer in time"},
}
_RECOMMEND_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": RecommendForm.model_json_schema()},
            "application/json": {"schema": RecommendJSON.model_json_schema()},
        },
    }
}


def _parse(model: type[Model], values: dict[str, Any]) -> Model:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise InvalidInputError(validation_message(list(exc.errors()))) from exc


def _fields(items: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """Form or query items as a dict; a repeated name becomes a list."""
    out: dict[str, Any] = {}
    for key, value in items:
        if key in out:
            previous = out[key]
            out[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            out[key] = value
    return out


@router.post(
    "/recommend",
    response_model=RecommendResponse,
    tags=["recommend"],
    summary="Products that look like each garment of a photo",
    dependencies=[Depends(enforce_rate_limit)],
    responses={k: v for k, v in _ERRORS.items() if k not in (401, 403)},
    openapi_extra=_RECOMMEND_BODY,
)
async def recommend(request: Request, pipeline: PipelineDep) -> RecommendResponse:
    """Send a photo as multipart ``image`` (any parameter as a form field or query parameter),
    or JSON with ``image_url`` (fetched; private addresses refused) or ``product_id`` ("more
    like this": the product's own vectors). Each garment found gets its box, category with the
    classifier's probability, and the ``k`` most similar active products; ``timings_ms`` has
    the time per stage."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    query = _fields(request.query_params.multi_items())
    limit = pipeline.settings.gateway.max_upload_bytes
    if content_type == "multipart/form-data":
        async with request.form(max_files=1, max_fields=20) as form:
            upload = form.get("image")
            if not isinstance(upload, UploadFile):
                raise InvalidInputError("send the photo as a multipart file field named 'image'")
            data = await upload.read(limit + 1)
            fields = _fields((k, v) for k, v in form.multi_items() if k != "image")
        if len(data) > limit:
            raise PayloadTooLargeError(f"the image is larger than the limit of {limit} bytes")
        params = _parse(RecommendParams, {**query, **fields})
        return await run_in_threadpool(pipeline.from_bytes, data, params)
    if content_type == "application/json":
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"the body is not valid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise InvalidInputError("the JSON body must be an object")
        request_json = _parse(RecommendJSON, {**query, **body})
        params = RecommendParams.model_validate(
            request_json.model_dump(exclude={"image_url", "product_id"})
        )
        if request_json.product_id is not None:
            return await run_in_threadpool(pipeline.from_product, request_json.product_id, params)
        assert request_json.image_url is not None
        return await run_in_threadpool(pipeline.from_url, request_json.image_url, params)
    raise UnsupportedMediaTypeError(
        "send multipart/form-data with an 'image' file, or application/json with image_url "
        f"or product_id (got {content_type or 'no content type'!r})"
    )


@router.post(
    "/feedback",
    response_model=FeedbackOut,
    status_code=201,
    tags=["recommend"],
    summary="Record an impression, click or purchase of a recommended product",
    dependencies=[Depends(check_api_key)],
    responses={k: _ERRORS[k] for k in (401, 403, 404, 422)},
)
async def feedback(body: FeedbackBody, catalog: CatalogDep) -> FeedbackOut:
    """Stored in the catalog DB for offline and A/B measurement. Needs the API key
    (``X-API-Key``) when ``LOOKALIKE_API_KEY`` is set."""
    event = FeedbackIn(**body.model_dump())
    event_id = await run_in_threadpool(catalog.record_feedback, event)
    return FeedbackOut(id=event_id)


@router.get("/metrics", tags=["ops"], response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus metrics: requests, latency per route, time per /recommend stage, and ingest
    (images per state, queue depths, images indexed per second, failures by reason)."""
    registry: GatewayMetrics = request.app.state.metrics
    return Response(await run_in_threadpool(registry.render), media_type=CONTENT_TYPE_LATEST)
