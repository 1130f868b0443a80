"""The gateway's own error types (the rest come from :mod:`shared.errors`)."""

from __future__ import annotations

from typing import ClassVar

from shared.errors import LookalikeError


class UnauthorizedError(LookalikeError):
    status_code = 401
    code = "unauthorized"
    headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": "ApiKey"}


class ForbiddenError(LookalikeError):
    status_code = 403
    code = "forbidden"


class PayloadTooLargeError(LookalikeError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaTypeError(LookalikeError):
    status_code = 415
    code = "unsupported_media_type"


class RateLimitedError(LookalikeError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.headers = {"Retry-After": str(max(1, round(retry_after_s + 0.499)))}
