"""What every Lookalike HTTP service shares: request ids, access logs and one error format.

* :class:`RequestContextMiddleware` (pure ASGI) takes ``X-Request-ID`` from the request or makes
  one, keeps it in :data:`REQUEST_ID` for the request's code (the service clients forward it
  downstream), returns it in the response header and logs one access line with it.
* :func:`serve` runs an app with uvicorn: a header timeout (:class:`HeaderTimeoutProtocol`),
  access lines only when asked for, no forwarded headers trusted by uvicorn itself.
* :func:`add_error_handlers` renders :class:`LookalikeError`, request validation errors and
  the framework's own HTTP errors (404 route, 405, a multipart body that does not parse) as
  ``{"error": <code>, "detail": <message>}`` with their status code.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from uvicorn.protocols.http.h11_impl import H11Protocol

from shared.errors import ConfigurationError, LookalikeError
from shared.logging import configure_logging
from shared.settings import Settings, settings_or_exit

if TYPE_CHECKING:
    from shared.health import Check

__all__ = [
    "REQUEST_ID",
    "REQUEST_ID_HEADER",
    "HeaderTimeoutProtocol",
    "RequestContextMiddleware",
    "add_error_handlers",
    "ensure_port_free",
    "new_app",
    "serve",
    "validation_message",
]

log = logging.getLogger("lookalike.access")

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID: ContextVar[str | None] = ContextVar("lookalike_request_id", default=None)
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
"""Probes and scrapes log at DEBUG: at INFO they would drown the requests that matter."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Observer = Callable[[Scope, int, float], None]


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if _VALID_ID.match(text):
                return text
    return uuid.uuid4().hex


class RequestContextMiddleware:
    """Request id in and out, an access log line with it, and an optional ``observe`` hook
    (``(scope, status, seconds)``, e.g. Prometheus metrics) called once per request."""

    def __init__(self, app: ASGIApp, *, observe: Observer | None = None) -> None:
        self.app = app
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        token = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            if self.observe is not None:
                self.observe(scope, status, seconds)
            path = str(scope.get("path", ""))
            log.log(
                logging.DEBUG if path in _QUIET_PATHS else logging.INFO,
                "%s %s %d %.1f ms request_id=%s",
                scope.get("method"),
                path,
                status,
                seconds * 1000,
                request_id,
            )
            REQUEST_ID.reset(token)


def validation_message(errors: list[Any]) -> str:
    """Pydantic errors as one readable line: ``k: Input should be ...; metric: ...``."""
    parts = []
    for error in errors:
        location = ".".join(
            str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path")
        )
        # A validator's own words, without pydantic's "Value error, " in front of them.
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{location}: {message}" if location else message)
    return "; ".join(parts) or "invalid request"


def add_error_handlers(app: FastAPI) -> None:
    """One error format for the project's errors, bad parameters (422) and HTTP errors."""

    @app.exception_handler(LookalikeError)
    async def _lookalike_error(request: Request, exc: LookalikeError) -> JSONResponse:
        if exc.status_code >= 500:
            log.warning(
                "%s %s -> %d %s: %s (request_id=%s)",
                request.method,
                request.url.path,
                exc.status_code,
                exc.code,
                exc.message,
                REQUEST_ID.get(),
            )
        headers = getattr(exc, "headers", None)
        return JSONResponse(exc.to_dict(), status_code=exc.status_code, headers=headers)

    async def _invalid(_request: Request, exc: Exception) -> JSONResponse:
        errors = exc.errors() if isinstance(exc, (RequestValidationError, ValidationError)) else []
        body = {"error": "invalid_input", "detail": validation_message(list(errors))}
        return JSONResponse(body, status_code=422)

    async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        try:
            code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_").replace("-", "_")
        except ValueError:
            code = "error"
        body = {"error": code, "detail": str(exc.detail)}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(HTTPException, _http_error)


async def healthz() -> dict[str, str]:
    """Liveness: the process serves requests."""
    return {"status": "ok"}


def readiness(checks: Sequence[Check]) -> JSONResponse:
    """``/readyz``'s answer: 200 when every check passes, else 503, with each check's detail."""
    ready = all(check.ok for check in checks)
    body = {
        "ready": ready,
        "checks": {
            check.name: {"ok": check.ok, "detail": check.detail, "latency_ms": check.latency_ms}
            for check in checks
        },
    }
    return JSONResponse(body, status_code=200 if ready else 503)


def new_app(**kwargs: Any) -> FastAPI:
    """A FastAPI app whose ``/docs`` (Swagger UI) and ``/redoc`` load their scripts from the
    app itself (the ``fastapi-offline`` package ships them), not from a CDN: the API docs work
    on a machine with no internet."""
    from fastapi_offline import FastAPIOffline

    return FastAPIOffline(static_url="/static-docs", **kwargs)


def service_app(
    title: str,
    routers: APIRouter | Sequence[APIRouter],
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
    *,
    summary: str | None = None,
    observe: Observer | None = None,
    inner: Sequence[Middleware] = (),
    outer: Sequence[Middleware] = (),
) -> FastAPI:
    """A Lookalike service: ``/healthz`` and the routers' routes (in order), request ids and
    access logs (``observe`` called per request), the JSON error format, and offline docs.
    ``inner`` middleware sees requests after the request context, ``outer`` before it (each
    list innermost first)."""
    app = new_app(title=title, summary=summary, version="0.1.0", lifespan=lifespan)
    add_error_handlers(app)
    for middleware in inner:
        app.add_middleware(middleware.cls, *middleware.args, **middleware.kwargs)
    app.add_middleware(RequestContextMiddleware, observe=observe)
    for middleware in outer:
        app.add_middleware(middleware.cls, *middleware.args, **middleware.kwargs)
    app.add_api_route("/healthz", healthz, methods=["GET"], tags=["ops"])
    for router in [routers] if isinstance(routers, APIRouter) else routers:
        app.include_router(router)
    return app


def ensure_port_free(host: str, port: int, setting: str) -> None:
    """Fail with one line that names ``setting`` when ``host:port`` cannot be bound (checked
    before a process does any work, rather than a traceback after it did)."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # Servers bind with SO_REUSEADDR too: a port in TIME_WAIT is free for them.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ConfigurationError(
                f"cannot listen on {host}:{port} ({reason}): stop what uses it, "
                f"or pick another port with {setting}"
            ) from exc


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol with a time limit on a connection's first request head: a client
    that has not sent its whole head within :attr:`header_timeout_s` gets 408 and is closed,
    so trickled headers cannot hold connections open. Later requests on a kept-alive
    connection are limited by uvicorn's keep-alive timeout (5 s), which runs until a whole
    head has arrived. :func:`header_timeout_protocol` makes one with another limit."""

    header_timeout_s: float = 10.0
    _RESPONSE = (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"connection: close\r\ncontent-length: 31\r\n\r\nrequest headers took too long\r\n"
    )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._header_timer: asyncio.TimerHandle | None = self.loop.call_later(
            self.header_timeout_s, self._header_timeout
        )

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.scope is not None:  # a whole request head has arrived
            self._cancel_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.scope is None and not self.transport.is_closing():
            log.debug("no request head from %s in %.0f s: 408", self.client, self.header_timeout_s)
            self.transport.write(self._RESPONSE)
            self.transport.close()


def header_timeout_protocol(seconds: float) -> type[HeaderTimeoutProtocol]:
    """:class:`HeaderTimeoutProtocol` with a limit of ``seconds``."""
    return type("HeaderTimeoutProtocol", (HeaderTimeoutProtocol,), {"header_timeout_s": seconds})


def serve(
    app: ASGIApp,
    host: str,
    port: int,
    *,
    setting: str = "LOOKALIKE_PORT",
    access_log: bool = False,
    header_timeout_s: float = 10.0,
) -> None:
    """Serve ``app`` with uvicorn until interrupted: the port checked first, a header timeout,
    our access line per request (with the request id; uvicorn's own is off) only with
    ``access_log``, our logging set-up, and no forwarded headers trusted by uvicorn itself."""
    import uvicorn

    try:
        ensure_port_free(host, port, setting)
    except ConfigurationError as exc:
        logging.getLogger(__name__).error("%s", exc.message)
        raise SystemExit(2) from exc
    # Errors (5xx, logged at WARNING) still reach the console without access lines.
    log.setLevel(logging.NOTSET if access_log else logging.WARNING)
    # proxy_headers off: uvicorn would trust X-Forwarded-For from any local peer; the gateway
    # applies gateway.trusted_proxies itself.
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        http=header_timeout_protocol(header_timeout_s),
    )


def run_service(create_app: Callable[[Settings], ASGIApp]) -> None:
    """A service's ``python -m`` entry point: its settings (a bad one: one line, exit 2), our
    logging, and its app served on LOOKALIKE_HOST:LOOKALIKE_PORT with the access-log and
    header-timeout settings."""
    settings = settings_or_exit()
    configure_logging(settings.log_level)
    serve(
        create_app(settings),
        settings.host,
        settings.port,
        access_log=settings.logs_requests,
        header_timeout_s=settings.header_timeout_s,
    )
