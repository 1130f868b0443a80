"""The recommender's typed clients: the library in process, or the HTTP service.

``make_recommender(settings, index=...)`` picks by configuration: ``LOOKALIKE_RECOMMENDER_URL``
set -> :class:`HttpRecommender` (with the recommender timeout), else the in-process
:class:`~services.recommender.service.Recommender` over the given index. Both have the same
methods and return the same models.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from services.recommender.schemas import (
    RecommendQuery,
    RecommendResult,
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
from shared.errors import ConfigurationError
from shared.health import Check
from shared.service_client import ServiceClient
from shared.settings import Settings
from shared.vectors import VectorIndex

__all__ = ["HttpRecommender", "RecommenderClient", "make_recommender"]


class RecommenderClient(Protocol):
    def recommend(self, queries: Sequence[RecommendQuery]) -> list[RecommendResult]: ...

    def similar_to_product(self, product_id: int, query: SimilarQuery) -> SimilarResult: ...

    def search_text(self, query: TextQuery) -> TextResult: ...

    def recommend_session(self, query: SessionQuery) -> SessionResult: ...

    def check(self) -> Check: ...


class HttpRecommender:
    """The recommender service over HTTP (``python -m services.recommender``)."""

    def __init__(self, base_url: str, *, timeout_s: float, transport: Any = None) -> None:
        self.http = ServiceClient("recommender", base_url, timeout_s=timeout_s, transport=transport)

    def recommend(self, queries: Sequence[RecommendQuery]) -> list[RecommendResult]:
        body = SearchRequest(queries=list(queries)).model_dump(mode="json")
        response = self.http.request("POST", "/search", json=body)
        return SearchResponse.model_validate(response.json()).results

    def similar_to_product(self, product_id: int, query: SimilarQuery) -> SimilarResult:
        body = query.model_dump(mode="json")
        response = self.http.request("POST", f"/products/{int(product_id)}/similar", json=body)
        return SimilarResult.model_validate(response.json())

    def search_text(self, query: TextQuery) -> TextResult:
        response = self.http.request("POST", "/text", json=query.model_dump(mode="json"))
        return TextResult.model_validate(response.json())

    def recommend_session(self, query: SessionQuery) -> SessionResult:
        response = self.http.request("POST", "/session", json=query.model_dump(mode="json"))
        return SessionResult.model_validate(response.json())

    def check(self) -> Check:
        return self.http.check()

    def close(self) -> None:
        self.http.close()


def make_recommender(settings: Settings, *, index: VectorIndex | None) -> RecommenderClient:
    """The HTTP client when ``recommender_url`` is set, else the library over ``index``."""
    if settings.recommender_url:
        return HttpRecommender(settings.recommender_url, timeout_s=settings.recommender.timeout_s)
    if index is None:
        raise ConfigurationError("the in-process recommender needs the vector index")
    return Recommender(index, candidates=settings.recommender.candidates)
