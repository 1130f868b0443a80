"""``/admin/reindex``: the process that owns the index reindexes it while it keeps serving
(the runner of :mod:`shared.reindex`, installed as ``app.state.reindex`` by ``lookalike run``).
With ``LOOKALIKE_API_KEY`` set it needs the key; without one it answers this machine only."""

from __future__ import annotations

import ipaddress
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from services.gateway.errors import ErrorOut, ForbiddenError, error_responses
from services.gateway.limits import check_api_key
from shared.errors import NotFoundError
from shared.reindex import CannotReindexError, ReindexProgress, ReindexRequest, ReindexRunner

router = APIRouter(prefix="/admin", tags=["admin"])

_MEANINGS = {
    403: "API key wrong, or no API key set and the caller is not on this machine",
    404: "No reindex has run in this process",
    409: "A reindex runs (reindex_running), or this process cannot reindex (cannot_reindex)",
}


def _responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    responses = error_responses(*statuses)
    for status in set(statuses) & _MEANINGS.keys():
        responses[status] = {"model": ErrorOut, "description": _MEANINGS[status]}
    return responses


def _loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _runner(request: Request) -> ReindexRunner:
    """The caller may administer this gateway, and it has a reindex runner."""
    if not check_api_key(request) and not _loopback(
        request.client.host if request.client else None
    ):
        raise ForbiddenError(
            "admin endpoints answer only on this machine unless LOOKALIKE_API_KEY is set"
        )
    runner: ReindexRunner | None = getattr(request.app.state, "reindex", None)
    if runner is None:
        settings = request.app.state.settings
        reason = (
            "the index is a Qdrant server: run `lookalike reindex` with the same settings"
            if settings.qdrant_url
            else "this gateway runs no ingest (`lookalike run` does): stop it and run "
            "`lookalike reindex`, or set QDRANT_URL"
        )
        raise CannotReindexError(f"this process cannot reindex: {reason}")
    return runner


@router.post(
    "/reindex",
    status_code=202,
    response_model=ReindexProgress,
    responses=_responses(401, 403, 409, 422),
)
async def start_reindex(request: Request, body: ReindexRequest) -> ReindexProgress:
    """Embed the catalog with a (new) model into a new collection, then switch the alias,
    in the background while searches go on; 409 while one runs or when this process does
    not own the index."""
    runner = _runner(request)
    return await run_in_threadpool(runner.start, body)


@router.get(
    "/reindex",
    response_model=ReindexProgress,
    responses=_responses(401, 403, 404, 409),
)
async def reindex_progress(request: Request) -> ReindexProgress:
    """The running (or last) reindex of this process: phase, counts, and its end."""
    progress = _runner(request).progress()
    if progress is None:
        raise NotFoundError("no reindex has run in this process")
    return progress
