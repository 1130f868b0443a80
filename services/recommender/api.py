"""The recommender service (``python -m services.recommender``): the library over HTTP."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from services.recommender.schemas import (
    ProductPoints,
    SearchRequest,
    SearchResponse,
    SessionQuery,
    SessionResult,
    SimilarQuery,
    SimilarResult,
    TextQuery,
    TextResult,
)
from services.recommender.service import Recommender
from shared.settings import Settings, get_settings
from shared.vectors import VectorIndex, open_index
from shared.web import readiness, service_app

log = logging.getLogger(__name__)
router = APIRouter()


def _recommender(request: Request) -> Recommender:
    return request.app.state.recommender


RecommenderDep = Annotated[Recommender, Depends(_recommender)]


@router.get("/readyz", tags=["ops"])
async def readyz(recommender: RecommenderDep) -> JSONResponse:
    """The index answers (503 if not)."""
    return readiness([await run_in_threadpool(recommender.check)])


@router.post("/search", response_model=SearchResponse, tags=["recommend"])
async def search(body: SearchRequest, recommender: RecommenderDep) -> SearchResponse:
    """k-NN, filters and re-ranking for each query (one result per query, in order)."""
    results = await run_in_threadpool(recommender.recommend, body.queries)
    return SearchResponse(results=results)


@router.post("/text", response_model=TextResult, tags=["recommend"])
async def text(body: TextQuery, recommender: RecommenderDep) -> TextResult:
    """Products by words over their text (sentence model and lexical match, fused by rank)."""
    return await run_in_threadpool(recommender.search_text, body)


@router.post("/session", response_model=SessionResult, tags=["recommend"])
async def session(body: SessionQuery, recommender: RecommenderDep) -> SessionResult:
    """ "Based on what you viewed": a group per kind of garment of the viewed products."""
    return await run_in_threadpool(recommender.recommend_session, body)


@router.get("/products/{product_id}/points", response_model=ProductPoints, tags=["recommend"])
async def product_points(product_id: int, recommender: RecommenderDep) -> ProductPoints:
    """A product's indexed crops with their vectors (for "more like this")."""
    return await run_in_threadpool(recommender.product_points, product_id)


@router.post("/products/{product_id}/similar", response_model=SimilarResult, tags=["recommend"])
async def similar(
    product_id: int, body: SimilarQuery, recommender: RecommenderDep
) -> SimilarResult:
    """ "More like this": products like this one, its stored vectors the query."""
    return await run_in_threadpool(recommender.similar_to_product, product_id, body)


def create_app(settings: Settings | None = None, *, index: VectorIndex | None = None) -> FastAPI:
    """The recommender service; ``index`` may be handed in (tests), else it opens its own."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = index is None
        opened = index or open_index(
            settings.qdrant_url, settings.qdrant_path, settings.qdrant_api_key
        )
        app.state.recommender = Recommender(opened, candidates=settings.recommender.candidates)
        log.info("recommender ready")
        try:
            yield
        finally:
            if owned:
                opened.close()

    return service_app("Lookalike recommender", router, lifespan)
