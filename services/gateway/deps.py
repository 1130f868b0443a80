"""The gateway's request dependencies: what its routes take from the app's state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.gateway.service import RecommendPipeline
from shared.db import Catalog
from shared.settings import Settings

__all__ = ["CatalogDep", "PipelineDep", "SettingsDep"]


def catalog(request: Request) -> Catalog:
    """The catalog the app opened (or was handed) in its lifespan."""
    return request.app.state.catalog


def settings(request: Request) -> Settings:
    """The settings the app was built with."""
    return request.app.state.settings


def pipeline(request: Request) -> RecommendPipeline:
    """The logic behind ``POST /recommend``."""
    return request.app.state.pipeline


CatalogDep = Annotated[Catalog, Depends(catalog)]
SettingsDep = Annotated[Settings, Depends(settings)]
PipelineDep = Annotated[RecommendPipeline, Depends(pipeline)]
