"""Gateway pieces of the recommendation API that need no services: parameters, rate limit
arithmetic, the error format and request ids."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from services.gateway.errors import RateLimitedError
from services.gateway.schemas import RecommendJSON, RecommendParams
from shared.errors import ServiceUnavailableError
from shared.web import RequestContextMiddleware, add_error_handlers, validation_message

pytestmark = pytest.mark.unit


def test_params_accept_lists_as_commas_or_lists() -> None:
    params = RecommendParams.model_validate({"category": "tops, pants", "brand": ["A", " "]})
    assert params.category == ["tops", "pants"]
    assert params.brand == ["A"]
    assert RecommendParams.model_validate({"category": ""}).category is None
    assert RecommendParams.model_validate({"k": "5", "cross_category": "on"}).k == 5


def test_params_refuse_contradictions_and_unknown_fields() -> None:
    with pytest.raises(ValidationError, match="either category or cross_category"):
        RecommendParams.model_validate({"category": "tops", "cross_category": True})
    with pytest.raises(ValidationError, match="Extra inputs"):
        RecommendParams.model_validate({"colours": "red"})
    with pytest.raises(ValidationError, match="give image_url, product_id, text or viewed"):
        RecommendJSON.model_validate({})
    with pytest.raises(ValidationError, match="image_url or product_id, not both"):
        RecommendJSON.model_validate({"image_url": "https://x.example/a.jpg", "product_id": 1})
    try:
        RecommendParams.model_validate({"k": 0, "metric": "dot"})
    except ValidationError as exc:
        message = validation_message(list(exc.errors()))
    assert message.startswith("k: Input should be greater than or equal to 1; metric: ")


def test_retry_after_rounds_the_wait_up_to_whole_seconds() -> None:
    assert RateLimitedError("slow down", retry_after_s=0.2).headers == {"Retry-After": "1"}
    assert RateLimitedError("slow down", retry_after_s=19.6).headers == {"Retry-After": "20"}


def test_error_format_and_request_ids() -> None:
    app = FastAPI()
    add_error_handlers(app)
    app.add_middleware(RequestContextMiddleware)

    @app.get("/down")
    async def down() -> None:
        raise ServiceUnavailableError("the embedder at http://x did not answer within 1 s")

    @app.get("/number/{n}")
    async def number(n: int) -> int:
        return n

    with TestClient(app) as client:
        response = client.get("/down", headers={"X-Request-ID": "abc-1"})
        assert response.status_code == 503
        assert response.json() == {
            "error": "service_unavailable",
            "detail": "the embedder at http://x did not answer within 1 s",
        }
        assert response.headers["X-Request-ID"] == "abc-1"
        bad = client.get("/number/x", headers={"X-Request-ID": "bad id with spaces"})
        assert bad.status_code == 422
        assert bad.json()["detail"].startswith("n: Input should be a valid integer")
        assert bad.headers["X-Request-ID"] != "bad id with spaces"
