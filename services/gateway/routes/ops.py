"""Ops and catalog routes: ``/readyz``, ``/status``, ``/products/{id}``. Request handling only;
the logic lives in the shared catalog API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.gateway.deps import CatalogDep, SettingsDep
from services.gateway.errors import error_responses
from services.gateway.limits import caller
from services.gateway.schemas import MAX_ID
from shared.db import CatalogStats, ProductOut, ShopStats
from shared.errors import NotFoundError
from shared.health import Check, check_broker, check_database
from shared.index_holder import Holder
from shared.vectors import EdgeIndex
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
    the in-process ingest consumer runs (a gateway that holds the embedded index by itself:
    no worker gave up on it); 503 with each check's detail if not."""
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
    elif isinstance(state.index, EdgeIndex) and (gone := state.index.turned_away()):
        checks.append(_no_ingest(gone))
    return readiness(checks)


def _no_ingest(gone: Holder) -> Check:
    """A worker gave up on the embedded index this gateway holds: nothing ingests."""
    at = datetime.fromtimestamp(gone.since, UTC).isoformat(timespec="seconds")
    detail = (
        f"{gone.describe()} exited at {at}: this gateway holds the embedded index, which one "
        "process only may open; run `lookalike run` (one process) or set QDRANT_URL"
    )
    return Check("ingest", False, detail, 0.0)


class StatusOut(CatalogStats):
    shops: list[ShopStats] = Field(
        description="Each shop's (source's) products and its images indexed, pending, failed."
    )


@router.get("/status", tags=["ops"], response_model=StatusOut)
async def status(catalog: CatalogDep) -> StatusOut:
    """Catalog counts: sources, active/inactive products, images per ingest state, and the
    same for each shop."""
    stats = await run_in_threadpool(catalog.stats)
    shops = await run_in_threadpool(catalog.shop_stats)
    return StatusOut(**stats.model_dump(), shops=shops)


@router.get(
    "/products/{product_id}",
    tags=["catalog"],
    response_model=ProductOut,
    responses=error_responses(403, 404, 422),
)
async def get_product(
    request: Request, product_id: Annotated[int, Path(ge=1, le=MAX_ID)], catalog: CatalogDep
) -> ProductOut:
    """One catalog product with its images and their ingest state (404 if unknown, or of a
    shop outside the caller's storefront key)."""
    who = await run_in_threadpool(caller, request)
    if who.shops is not None:
        shop = await run_in_threadpool(catalog.product_shops, [product_id])
        if shop.get(product_id) not in who.shops:
            raise NotFoundError(f"no product {product_id}")
    return await run_in_threadpool(catalog.get_product, product_id)
