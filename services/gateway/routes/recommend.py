"""Routes of the recommendation API: ``POST /recommend``, ``POST /feedback``, ``GET /metrics``."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile

from services.gateway.answers import RecentAnswers
from services.gateway.deps import CatalogDep, PipelineDep
from services.gateway.errors import ConflictError, UnauthorizedError, error_responses
from services.gateway.limits import Caller, caller, enforce_feedback_limit, enforce_rate_limit
from services.gateway.metrics import GatewayMetrics
from services.gateway.schemas import (
    MAX_LISTED,
    FeedbackBody,
    FeedbackOut,
    RecommendForm,
    RecommendJSON,
    RecommendParams,
    RecommendResponse,
)
from services.gateway.service import RecommendPipeline
from shared.db import Catalog, FeedbackIn
from shared.errors import (
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)
from shared.web import REQUEST_ID, validation_message

router = APIRouter()

Model = TypeVar("Model", bound=BaseModel)


def _inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with its ``$defs`` (enums) written in place, so that it can sit
    in an OpenAPI operation of its own."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    return resolve(schema)


_RECOMMEND_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": _inline_schema(RecommendForm)},
            "application/json": {"schema": _inline_schema(RecommendJSON)},
        },
    }
}
_FEEDBACK_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": _inline_schema(FeedbackBody)}},
    }
}


MAX_FORM_FIELDS = 2 * MAX_LISTED + 30
"""Form fields read at most (more: 400): every parameter, and a list's items one field each."""


def _parse(model: type[Model], values: dict[str, Any]) -> Model:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise InvalidInputError(validation_message(list(exc.errors()))) from exc


async def _json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object, or a 422 that says what is wrong with it."""
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"the body is not valid JSON: {exc}") from exc
    except ValueError as exc:  # Python's limit on the digits of an integer
        raise InvalidInputError(
            "the body has a number too long to read (more than 4,300 digits)"
        ) from exc
    except RecursionError as exc:
        raise InvalidInputError("the body is not valid JSON: nested too deeply") from exc
    if not isinstance(body, dict):
        raise InvalidInputError("the JSON body must be an object")
    return body


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
    summary="Products that look like each garment of a photo, or that match words",
    dependencies=[Depends(enforce_rate_limit)],
    responses=error_responses(400, 403, 404, 413, 415, 422, 429, 503),
    openapi_extra=_RECOMMEND_BODY,
)
async def recommend(request: Request, pipeline: PipelineDep) -> RecommendResponse:
    """Send a photo as multipart ``image`` (any parameter as a form field or query parameter),
    or JSON with ``image_url`` (fetched; private addresses refused) or ``product_id`` ("more
    like this": the product's own vectors), or ``text`` alone (words over the products' titles,
    brands, categories, colours and attributes; one group). Each garment found gets its box,
    category with the classifier's probability, and the ``k`` most similar active products;
    ``text`` with a photo or product refines their ranking (``text_weight``, negative: "not
    this"). Each group says which path answered (``answered_by``) and what the words were read
    as (``intent``); ``timings_ms`` has the time per stage. ``shop`` scopes every path to
    those shops; a storefront's API key (``X-API-Key``, ``lookalike keys add``) sees only its
    own shops (403 for another, 404 for another shop's ``product_id``). ``viewed`` (JSON:
    products with an optional ``weight`` and ``seen_at``) and ``not_for_me`` ask "based on
    what you viewed": a group per kind of garment of the session, recent views counting more,
    the products named never shown (422 for an unknown one or another shop's)."""
    who = await run_in_threadpool(caller, request)
    answer = await _recommend(request, pipeline, who)
    request_id = REQUEST_ID.get()
    if request_id is not None:
        shown = [
            product_id
            for group in answer.groups
            for r in group.recommendations
            for product_id in (r.id, *(offer.id for offer in r.offers))
        ]
        await run_in_threadpool(request.app.state.answers.remember, request_id, shown)
    return answer


async def _recommend(
    request: Request, pipeline: RecommendPipeline, who: Caller
) -> RecommendResponse:
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    query = _fields(request.query_params.multi_items())
    limit = pipeline.settings.images.max_upload_bytes
    if content_type == "multipart/form-data":
        async with request.form(max_files=1, max_fields=MAX_FORM_FIELDS) as form:
            upload = form.get("image")
            fields = _fields((k, v) for k, v in form.multi_items() if k != "image")
            if upload is None and "text" in fields:
                params = _parse(RecommendParams, {**query, **fields})
                return await run_in_threadpool(pipeline.from_text, params, shops=who.shops)
            if not isinstance(upload, UploadFile):
                raise InvalidInputError(
                    "send the photo as a multipart file field named 'image' (or words in 'text')"
                )
            data = await upload.read(limit + 1)
        if len(data) > limit:
            raise PayloadTooLargeError(f"the image is larger than the limit of {limit} bytes")
        if not data:
            raise InvalidInputError("the image is empty (0 bytes)")
        params = _parse(RecommendParams, {**query, **fields})
        return await run_in_threadpool(pipeline.from_bytes, data, params, shops=who.shops)
    if content_type == "application/json":
        body = await _json_object(request)
        request_json = _parse(RecommendJSON, {**query, **body})
        params = RecommendParams.model_validate(
            request_json.model_dump(exclude={"image_url", "product_id", "viewed", "not_for_me"})
        )
        if request_json.viewed is not None:
            return await run_in_threadpool(
                pipeline.from_session,
                request_json.viewed,
                request_json.not_for_me or [],
                params,
                shops=who.shops,
            )
        if request_json.product_id is not None:
            return await run_in_threadpool(
                pipeline.from_product, request_json.product_id, params, shops=who.shops
            )
        if request_json.image_url is None:
            return await run_in_threadpool(pipeline.from_text, params, shops=who.shops)
        return await run_in_threadpool(
            pipeline.from_url, request_json.image_url, params, shops=who.shops
        )
    raise UnsupportedMediaTypeError(
        "send multipart/form-data with an 'image' file, or application/json with image_url, "
        f"product_id or text (got {content_type or 'no content type'!r})"
    )


@router.post(
    "/feedback",
    response_model=FeedbackOut,
    status_code=201,
    tags=["recommend"],
    summary="Record an impression, click or purchase of a recommended product",
    responses=error_responses(401, 403, 404, 409, 413, 422, 429),
    openapi_extra=_FEEDBACK_BODY,
)
async def feedback(request: Request, catalog: CatalogDep) -> FeedbackOut:
    """Stored in the catalog DB for offline and A/B measurement. With ``LOOKALIKE_API_KEY`` set
    it needs a key (``X-API-Key``): the admin's takes any event, a storefront's any event of
    its own shops' products (404 for another shop's). Without a key (the storefront page) it
    is rate limited per client, ``request_id`` must be the ``X-Request-ID`` of a recent
    ``/recommend`` answer that showed the product (422 if not), and each kind of event counts
    once per answer and product (409 for a repeat)."""
    who = await run_in_threadpool(caller, request)
    if not who.keyed and request.app.state.settings.api_key:
        raise UnauthorizedError("this endpoint needs an API key (X-API-Key header)")
    if not who.keyed:
        await run_in_threadpool(enforce_feedback_limit, request)
    body = _parse(FeedbackBody, await _json_object(request))
    if who.shops is not None:
        await run_in_threadpool(_own_product, catalog, who.shops, body.product_id)
    if not who.keyed:
        await run_in_threadpool(_bind_to_answer, request.app.state.answers, body)
    event = FeedbackIn(**body.model_dump())
    event_id = await run_in_threadpool(catalog.record_feedback, event)
    return FeedbackOut(id=event_id)


def _own_product(catalog: Catalog, shops: frozenset[str], product_id: int) -> None:
    """A storefront key's feedback names one of its own shops' products (else 404, as an
    unknown product)."""
    if catalog.product_shops([product_id]).get(product_id) not in shops:
        raise NotFoundError(f"no product {product_id}")


def _bind_to_answer(answers: RecentAnswers, body: FeedbackBody) -> None:
    if body.request_id is None:
        raise InvalidInputError(
            "request_id: give the X-Request-ID of the /recommend answer that showed the product"
        )
    taken = answers.take(body.request_id, body.product_id, body.kind.value)
    if taken is None:
        raise InvalidInputError(
            f"request_id: no recent /recommend answer {body.request_id!r} showed product "
            f"{body.product_id}"
        )
    if not taken:
        raise ConflictError(
            f"a {body.kind.value} of product {body.product_id} for answer {body.request_id!r} "
            "was recorded already"
        )


@router.get("/metrics", tags=["ops"], response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus metrics: requests, latency per route, time per /recommend stage, and ingest
    (images per state, queue depths, images indexed per second, failures by reason)."""
    registry: GatewayMetrics = request.app.state.metrics
    return Response(await run_in_threadpool(registry.render), media_type=CONTENT_TYPE_LATEST)
