"""The base of the typed HTTP clients between services (gateway -> embedder, recommender).

Every call has a timeout; a timeout or a connection failure becomes a 503
:class:`ServiceUnavailableError` naming the service and its URL, a downstream 5xx a 503 with the
downstream's message, and a downstream 4xx the same status and message (the caller's fault
travels back unchanged). The request id of the current request is forwarded.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from shared.errors import LookalikeError, ServiceUnavailableError
from shared.health import Check
from shared.web import REQUEST_ID, REQUEST_ID_HEADER

__all__ = ["DownstreamError", "ServiceClient"]


class DownstreamError(LookalikeError):
    """A downstream service refused the request (4xx): its code, message and status."""

    def __init__(self, message: str, *, status_code: int, code: str) -> None:
        super().__init__(message, status_code=status_code)
        self.code = code


class ServiceClient:
    """A pooled HTTP client for one downstream service."""

    def __init__(
        self, name: str, base_url: str, *, timeout_s: float, transport: Any = None
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._client = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 2.0)),
            trust_env=False,
            transport=transport,
        )

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        request_id = REQUEST_ID.get()
        if request_id:
            headers[REQUEST_ID_HEADER] = request_id
        try:
            response = self._client.request(method, path, headers=headers, **kwargs)
        except httpx.TimeoutException as exc:
            raise ServiceUnavailableError(
                f"the {self.name} at {self.base_url} did not answer within {self.timeout_s:g} s"
            ) from exc
        except httpx.TransportError as exc:
            raise ServiceUnavailableError(
                f"cannot reach the {self.name} at {self.base_url} ({exc.__class__.__name__}: {exc})"
            ) from exc
        if response.status_code >= 400:
            code, detail = _error_of(response)
            if response.status_code >= 500:
                raise ServiceUnavailableError(
                    f"the {self.name} failed (HTTP {response.status_code}): {detail}"
                )
            raise DownstreamError(detail, status_code=response.status_code, code=code)
        return response

    def check(self) -> Check:
        """The service's own ``/readyz`` answers 200."""
        started = time.perf_counter()
        try:
            response = self._client.get("/readyz", timeout=min(self.timeout_s, 2.0))
        except httpx.HTTPError as exc:
            detail = f"{self.base_url}: {exc.__class__.__name__}"
            return Check(self.name, False, detail, _ms(started))
        ok = response.status_code == 200
        detail = f"{self.base_url}: HTTP {response.status_code}"
        return Check(self.name, ok, detail, _ms(started))

    def close(self) -> None:
        self._client.close()


def _error_of(response: httpx.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        return "downstream_error", response.text[:300] or response.reason_phrase
    if isinstance(body, dict):
        detail = body.get("detail", body)
        return str(body.get("error", "downstream_error")), str(detail)
    return "downstream_error", str(body)[:300]


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
