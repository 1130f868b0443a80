"""The gateway's FastAPI application: factory, lifespan, middleware and error handling."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from services.detector.client import make_detector
from services.embedder.client import EmbedderClient, make_embedder
from services.gateway.answers import make_answers
from services.gateway.limits import make_rate_limiter
from services.gateway.metrics import GatewayMetrics
from services.gateway.routes import ROUTERS
from services.gateway.routes.page import STATIC_DIR
from services.gateway.service import RecommendPipeline
from services.gateway.warmup import ModelWarmup
from services.recommender.client import RecommenderClient, make_recommender
from shared.db import Catalog
from shared.detection import GarmentDetector
from shared.download import make_client
from shared.errors import PayloadTooLargeError
from shared.index_holder import GATEWAY
from shared.queue import queue_depths
from shared.settings import Settings, get_settings
from shared.vectors import VectorIndex, open_index
from shared.web import ASGIApp, Message, Receive, Scope, Send, service_app

log = logging.getLogger(__name__)

_BODY_SLACK = 256 * 1024
"""Multipart framing and form fields on top of the largest allowed image."""


class BodyLimitMiddleware:
    """413 for any request body over the upload limit, whatever its shape: a declared
    ``Content-Length`` is refused before reading, and a body without one (chunked) is counted
    as it streams in, so no more than the limit is ever read or buffered."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _answer(self, size: str) -> list[Message]:
        error = PayloadTooLargeError(
            f"the request is {size} bytes; the upload limit is {self.max_bytes - _BODY_SLACK} bytes"
        )
        data = json.dumps(error.to_dict()).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(data)).encode()),
            (b"connection", b"close"),
        ]
        return [
            {"type": "http.response.start", "status": 413, "headers": headers},
            {"type": "http.response.body", "body": data},
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                for message in self._answer(value.decode()):
                    await send(message)
                return
        received = 0
        refused = started = False

        async def counted_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    refused = True
                    if not started:
                        for answer in self._answer(f"over {self.max_bytes}"):
                            await send(answer)
                    return {"type": "http.disconnect"}  # the app stops reading here
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 went out: whatever the app makes of the cut body is dropped
            started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except ClientDisconnect:
            if not refused:
                raise


def _close(thing: Any) -> None:
    close = getattr(thing, "close", None)
    if callable(close):
        close()


def create_app(
    settings: Settings | None = None,
    *,
    catalog: Catalog | None = None,
    index: VectorIndex | None = None,
    detector: GarmentDetector | None = None,
    embedder: EmbedderClient | None = None,
    recommender: RecommenderClient | None = None,
) -> FastAPI:
    """Build the gateway. Anything handed in is shared, not owned: the embedded runner passes
    its catalog and sets ``app.state.index`` (one index object per process); what is not
    given is made from the settings (``*_url`` set: HTTP clients, else in process)."""
    settings = settings or get_settings()
    metrics = GatewayMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned: list[Any] = []
        app.state.settings = settings
        app.state.catalog = catalog or Catalog.from_settings(settings)
        shared_index = index or getattr(app.state, "index", None)
        if shared_index is None and not settings.recommender_url:
            shared_index = open_index(
                settings.qdrant_url, settings.qdrant_path, settings.qdrant_api_key, role=GATEWAY
            )
            owned.append(shared_index)
        app.state.index = shared_index
        app.state.recommender = recommender or make_recommender(settings, index=shared_index)
        app.state.embedder = embedder or make_embedder(settings, catalog=app.state.catalog)
        owned += [
            x
            for x, given in ((app.state.recommender, recommender), (app.state.embedder, embedder))
            if given is None
        ]
        http = make_client(timeout_s=settings.gateway.download_timeout_s)
        owned.append(http)
        app.state.rate_limiter = make_rate_limiter(
            settings, settings.gateway.rate_limit_per_minute, prefix="lookalike:recommend:"
        )
        app.state.feedback_limiter = make_rate_limiter(
            settings, settings.gateway.feedback_rate_limit_per_minute, prefix="lookalike:feedback:"
        )
        app.state.answers = make_answers(settings)
        owned += [app.state.rate_limiter, app.state.feedback_limiter, app.state.answers]
        app.state.detector = detector or make_detector(settings)
        app.state.pipeline = RecommendPipeline(
            settings,
            app.state.catalog,
            app.state.detector,
            app.state.embedder,
            app.state.recommender,
            http=http,
            observe=metrics.observe_stages,
        )
        metrics.watch_ingest(
            app.state.catalog.ingest_progress, partial(queue_depths, settings.broker_url)
        )
        app.state.warmup = ModelWarmup(app.state.detector, app.state.embedder)
        warming = asyncio.get_running_loop().run_in_executor(None, app.state.warmup.run)
        log.info("gateway serving (catalog: %s); loading the models", app.state.catalog.dialect)
        try:
            yield
        finally:
            app.state.warmup.stop()
            await asyncio.wait([warming], timeout=60)
            for thing in reversed(owned):
                _close(thing)
            if catalog is None:
                app.state.catalog.dispose()

    app = service_app(
        "Lookalike gateway",
        ROUTERS,
        lifespan,
        summary="Visual recommendations for fashion shops: photo in, similar products out.",
        observe=metrics.observe_request,
        inner=[
            Middleware(
                BodyLimitMiddleware, max_bytes=settings.images.max_upload_bytes + _BODY_SLACK
            )
        ],
        # Outermost: the client address is settled before logs and limits see it. Serve with
        # uvicorn's own proxy_headers off, which would trust any local peer.
        outer=[Middleware(ProxyHeadersMiddleware, trusted_hosts=settings.gateway.trusted_proxies)],
    )
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.state.metrics = metrics
    return app
