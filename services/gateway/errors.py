"""The gateway's own error types (the rest come from :mod:`shared.errors`)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, Field

from shared.errors import LookalikeError


class ErrorOut(BaseModel):
    """Every error answer: a stable machine-readable code and a message for people."""

    error: str = Field(examples=["invalid_input"])
    detail: str


_MEANINGS = {
    400: "The multipart body does not parse",
    401: "API key missing",
    403: "API key wrong, or a shop outside the storefront key's shops",
    404: "Unknown product, or not indexed yet",
    409: "This feedback was already recorded",
    413: "Body larger than images.max_upload_bytes (declared or streamed)",
    415: "Not an image (content is sniffed), or neither multipart nor JSON",
    422: "Bad parameter or body, bad or unfetchable image_url, private address",
    429: "Over the per-client rate limit (see Retry-After)",
    503: "A downstream service did not answer in time",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses, each with the project's error body."""
    return {status: {"model": ErrorOut, "description": _MEANINGS[status]} for status in statuses}


class UnauthorizedError(LookalikeError):
    status_code = 401
    code = "unauthorized"
    headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": "ApiKey"}


class ForbiddenError(LookalikeError):
    status_code = 403
    code = "forbidden"


class RateLimitedError(LookalikeError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.headers = {"Retry-After": str(max(1, round(retry_after_s + 0.499)))}


class ConflictError(LookalikeError):
    status_code = 409
    code = "duplicate"
