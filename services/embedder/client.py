"""The embedder's typed clients for query crops: in process, or the HTTP service.

``make_embedder(settings, catalog=...)`` picks by configuration: ``LOOKALIKE_EMBEDDER_URL`` set
-> :class:`HttpEmbedder` (timeout ``gateway.embedder_timeout_s``), else an in-process
:class:`~services.embedder.service.EmbedderService`. Crops travel as raw RGB (lossless), so
both give the same vectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from PIL import Image

from services.embedder.provider import variant_of
from services.embedder.schemas import Features, WordVectors
from shared.db import Catalog
from shared.errors import ServiceUnavailableError
from shared.health import Check
from shared.images import to_rgb
from shared.service_client import ServiceClient
from shared.settings import Settings

__all__ = ["EmbedderClient", "HttpEmbedder", "make_embedder"]

RAW_TYPE = "application/x-lookalike-rgb"


class EmbedderClient(Protocol):
    def features(self, crops: Sequence[Image.Image], *, classify: bool = True) -> Features: ...

    def words(self, texts: Sequence[str]) -> WordVectors: ...

    def check(self) -> Check: ...


class HttpEmbedder:
    """The embedder service over HTTP (``python -m services.embedder``). ``variant`` is how
    this process cuts its crops (:attr:`shared.settings.CropSettings.variant`): vectors that a
    service with another ``crops`` setting names are refused (503), as they would search
    another index than the one their crops were made for."""

    def __init__(
        self, base_url: str, *, timeout_s: float, transport: Any = None, variant: str = ""
    ) -> None:
        self.http = ServiceClient("embedder", base_url, timeout_s=timeout_s, transport=transport)
        self.variant = variant

    def features(self, crops: Sequence[Image.Image], *, classify: bool = True) -> Features:
        pictures = [to_rgb(crop) for crop in crops]
        files = [
            ("crops", (f"crop-{i}.rgb", picture.tobytes(), RAW_TYPE))
            for i, picture in enumerate(pictures)
        ]
        shapes = ",".join(f"{p.width}x{p.height}" for p in pictures)
        response = self.http.request(
            "POST",
            "/features",
            files=files,
            data={"shapes": shapes, "classify": "true" if classify else "false"},
        )
        features = Features.model_validate(response.json())
        self._check_variant(features.model_version)
        return features

    def _check_variant(self, model_version: str) -> None:
        if variant_of(model_version) != self.variant:
            ours = "on" if self.variant else "off"
            raise ServiceUnavailableError(
                f"the embedder service names its vectors {model_version}, but this process has "
                f"crops.remove_background {ours}: set LOOKALIKE_CROPS__REMOVE_BACKGROUND alike "
                "for every service"
            )

    def words(self, texts: Sequence[str]) -> WordVectors:
        response = self.http.request("POST", "/words", json={"texts": list(texts)})
        return WordVectors.model_validate(response.json())

    def check(self) -> Check:
        return self.http.check()

    def close(self) -> None:
        self.http.close()


def make_embedder(settings: Settings, *, catalog: Catalog) -> EmbedderClient:
    """The HTTP client when ``embedder_url`` is set, else the in-process service."""
    if settings.embedder_url:
        return HttpEmbedder(
            settings.embedder_url,
            timeout_s=settings.gateway.embedder_timeout_s,
            variant=settings.crops.variant,
        )
    from services.embedder.provider import ModelProvider
    from services.embedder.service import EmbedderService

    return EmbedderService(ModelProvider(catalog, settings))
