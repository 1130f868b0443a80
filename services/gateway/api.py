"""Gateway routes. Request handling only; the logic lives in the shared catalog API."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from services.gateway.deps import CatalogDep, SettingsDep
from services.gateway.errors import error_responses
from services.gateway.schemas import MAX_ID
from shared.db import CatalogStats, ProductOut
from shared.health import check_broker, check_database
from shared.web import readiness

router = APIRouter()


class CheckOut(BaseModel):
    ok: bool
    detail: str
    latency_ms: float


class ReadyOut(BaseModel):
    ready: bool
    checks: dict[str, CheckOut]


@router.get(
    "/readyz",
    tags=["ops"],
    response_model=ReadyOut,
    responses={503: {"model": ReadyOut, "description": "Not ready: the failing checks say why."}},
)
async def readyz(request: Request, catalog: CatalogDep, settings: SettingsDep) -> JSONResponse:
    """Readiness: the catalog DB (at the current schema), the broker and the vector index (or
    the recommender service) answer, the query models are loaded and, in the embedded stack,
    the in-process ingest consumer runs; 503 with each check's detail if not."""
    state = request.app.state
    checks = [
        await run_in_threadpool(check_database, catalog),
        await run_in_threadpool(check_broker, settings.broker_url),
        await run_in_threadpool(state.recommender.check),
        state.warmup.check(),
    ]
    ingest = getattr(state, "ingest", None)
    if ingest is not None:
        checks.append(ingest.check())
    return readiness(checks)


@router.get("/status", tags=["ops"], response_model=CatalogStats)
async def status(catalog: CatalogDep) -> CatalogStats:
    """Catalog counts: sources, active/inactive products, images per ingest state."""
    return await run_in_threadpool(catalog.stats)


@router.get(
    "/products/{product_id}",
    tags=["catalog"],
    response_model=ProductOut,
    responses=error_responses(404, 422),
)
async def get_product(
    product_id: Annotated[int, Path(ge=1, le=MAX_ID)], catalog: CatalogDep
) -> ProductOut:
    """One catalog product with its images and their ingest state (404 if unknown)."""
    return await run_in_threadpool(catalog.get_product, product_id)
