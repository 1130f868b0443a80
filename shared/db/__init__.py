"""The catalog database API that services and team members import.

``Catalog`` is the facade; ``shared.db.schemas`` holds its typed inputs and outputs and
``shared.db.models`` the SQLAlchemy tables.
"""

from shared.db.catalog import Catalog
from shared.db.models import CrawlStatus, FeedbackKind, ImageState
from shared.db.schemas import (
    ApiKeyIn,
    ApiKeyOut,
    CatalogStats,
    CategoryGarment,
    ClaimedImage,
    CropIn,
    Facets,
    FeedbackIn,
    ImageIn,
    ImageResult,
    IngestProgress,
    ModelVersionIn,
    NewApiKey,
    ProductIn,
    ProductOut,
    ShopStats,
    SourceIn,
    SourceOut,
    UpsertReport,
)

__all__ = [
    "ApiKeyIn",
    "ApiKeyOut",
    "Catalog",
    "CatalogStats",
    "CategoryGarment",
    "ClaimedImage",
    "CrawlStatus",
    "CropIn",
    "Facets",
    "FeedbackIn",
    "FeedbackKind",
    "ImageIn",
    "ImageResult",
    "ImageState",
    "IngestProgress",
    "ModelVersionIn",
    "NewApiKey",
    "ProductIn",
    "ProductOut",
    "ShopStats",
    "SourceIn",
    "SourceOut",
    "UpsertReport",
]
