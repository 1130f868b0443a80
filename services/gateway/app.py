"""The gateway's FastAPI application: factory, lifespan and error handling."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.gateway.api import router
from shared.db import Catalog
from shared.errors import LookalikeError
from shared.settings import Settings, get_settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, catalog: Catalog | None = None) -> FastAPI:
    """Build the gateway. ``catalog`` may be handed in (the embedded runner shares one)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = catalog is None
        app.state.settings = settings
        app.state.catalog = catalog or Catalog.from_settings(settings)
        log.info("gateway ready (catalog: %s)", app.state.catalog.dialect)
        try:
            yield
        finally:
            if owned:
                app.state.catalog.dispose()

    app = FastAPI(
        title="Lookalike gateway",
        summary="Visual recommendations for fashion shops: photo in, similar products out.",
        version="0.1.0",
        lifespan=lifespan,
    )

    @app.exception_handler(LookalikeError)
    async def _lookalike_error(_request: Request, exc: LookalikeError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.status_code)

    app.include_router(router)
    return app
