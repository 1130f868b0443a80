"""A generated fashion shop served over HTTP, for tests, demos and crawl benchmarks.

``DemoCatalog.generate(n, seed=s)`` makes a deterministic catalog; ``DemoShop(catalog)`` serves
it on 127.0.0.1 (``with DemoShop(catalog) as shop: shop.url``); ``serve(...)`` runs it in the
foreground for ``lookalike demo-shop`` and ``python -m services.demo_shop``.
"""

from services.demo_shop.catalog import DemoCatalog, DemoProduct, generate_product
from services.demo_shop.images import (
    GarmentBox,
    OutfitPhoto,
    compose_outfit,
    render_image,
    render_outfit,
)
from services.demo_shop.pages import PAGE_SIZE, image_path, listing_path, product_path
from services.demo_shop.server import DemoShop, ShopApp, ShopStats, serve
from services.demo_shop.vocabulary import AVAILABILITY, CATEGORIES, COLOURS, PATTERNS, VIEWS

__all__ = [
    "AVAILABILITY",
    "CATEGORIES",
    "COLOURS",
    "PAGE_SIZE",
    "PATTERNS",
    "VIEWS",
    "DemoCatalog",
    "DemoProduct",
    "DemoShop",
    "GarmentBox",
    "OutfitPhoto",
    "ShopApp",
    "ShopStats",
    "compose_outfit",
    "generate_product",
    "image_path",
    "listing_path",
    "product_path",
    "render_image",
    "render_outfit",
    "serve",
]
