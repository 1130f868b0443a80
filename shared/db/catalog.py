"""The catalog database API: one facade with typed methods, for services and for analysts.

>>> from shared.db import Catalog
>>> catalog = Catalog.from_settings()          # DATABASE_URL or the embedded SQLite file
>>> catalog.get_product(42)
>>> catalog.run_query("SELECT category, count(*) AS n FROM products GROUP BY category")

Every method opens and commits its own short transaction; nothing is held between calls. The
methods live in one repository per concern (:mod:`shared.db.sources`, :mod:`~shared.db.products`,
:mod:`~shared.db.images`, :mod:`~shared.db.versions`, :mod:`~shared.db.feedback`,
:mod:`~shared.db.garments`, :mod:`~shared.db.analytics`, :mod:`~shared.db.keys`); services and
analysts use the facade, and no SQL lives outside ``shared/db``.
"""

from __future__ import annotations

from shared.db.analytics import AnalyticsRepository
from shared.db.feedback import FeedbackRepository
from shared.db.garments import GarmentsRepository
from shared.db.images import ImagesRepository
from shared.db.keys import KeysRepository
from shared.db.products import ProductsRepository
from shared.db.sources import SourcesRepository
from shared.db.versions import ModelVersionsRepository
from shared.settings import Settings, get_settings

__all__ = ["Catalog"]


class Catalog(
    SourcesRepository,
    ProductsRepository,
    AnalyticsRepository,
    ImagesRepository,
    ModelVersionsRepository,
    FeedbackRepository,
    GarmentsRepository,
    KeysRepository,
):
    """Typed access to sources, crawl runs, products, images, crops, models, feedback, the
    garment class of each shop category and the storefronts' API keys."""

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Catalog:
        return cls((settings or get_settings()).catalog_url)
