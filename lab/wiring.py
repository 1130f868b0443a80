"""What the lab's evaluations and benchmarks both run: the gateway's recommend pipeline, wired
in process as ``lookalike run`` wires it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

from shared.db import Catalog
from shared.settings import Settings

if TYPE_CHECKING:
    from services.gateway.service import RecommendPipeline

__all__ = ["gateway_pipeline"]


@contextmanager
def gateway_pipeline(
    settings: Settings, catalog: Catalog, index: Any, http: Any
) -> Iterator[RecommendPipeline]:
    """The recommend pipeline as the gateway wires it in process with ``settings``."""
    from services.detector.client import make_detector
    from services.embedder.client import make_embedder
    from services.gateway.service import RecommendPipeline
    from services.recommender.client import make_recommender

    with ExitStack() as stack:
        embedder = make_embedder(settings, catalog=catalog)
        recommender = make_recommender(settings, index=index)
        detector = make_detector(settings)
        for thing in (embedder, recommender, detector):
            close = getattr(thing, "close", None)
            if callable(close):
                stack.callback(close)
        yield RecommendPipeline(settings, catalog, detector, embedder, recommender, http=http)
