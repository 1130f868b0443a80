"""Catalog data for the garment-mapping tests: products whose crops carry classifier votes."""

from __future__ import annotations

from collections.abc import Sequence

from shared.db import Catalog, CropIn, ImageIn, ImageResult, ProductIn

SHOP = "https://shop.example"
BOX = (0.0, 0.0, 10.0, 10.0)


def add_product(
    catalog: Catalog, source_id: int, n: int, category: str | None, votes: Sequence[str | None]
) -> int:
    """A product of ``category`` with one image whose crops the classifier read as ``votes``
    (``None``: a crop without a vote)."""
    item = ProductIn(
        canonical_url=f"{SHOP}/{source_id}/p/{n}",
        title=f"Product {n}",
        category=category,
        images=(ImageIn(url=f"{SHOP}/{source_id}/img/{n}.jpg"),),
    )
    report = catalog.upsert_products(source_id, [item])
    (product_id,) = report.created
    (image_id,) = report.new_image_ids
    crops = tuple(
        CropIn(box=BOX, garment=garment, garment_p=0.9 if garment else None) for garment in votes
    )
    result = ImageResult(content_hash="h", width=10, height=10, n_bytes=1, crops=crops)
    assert catalog.record_images_done({image_id: result}) == []
    return product_id
