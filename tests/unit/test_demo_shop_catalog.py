"""The demo shop's catalog generator, mutations and drawn pictures."""

from __future__ import annotations

import io
import itertools
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import pytest
from PIL import Image

from services.demo_shop import (
    CATEGORIES,
    PATTERNS,
    VIEWS,
    DemoCatalog,
    DemoProduct,
    compose_outfit,
    generate_product,
    render_image,
    render_outfit,
)
from shared.product_codes import normalize_gtin

pytestmark = pytest.mark.unit

FIXED_NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


def fixed_clock() -> datetime:
    return FIXED_NOW


def decode(jpeg: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(jpeg))
    image.load()
    return image


def silhouette(jpeg: bytes) -> np.ndarray:
    """The garment's mask cropped to its bounding box and resized to 32x32."""
    pixels = np.asarray(decode(jpeg).convert("RGB"), dtype=np.int16)
    mask = np.abs(pixels - pixels[2, 2]).sum(axis=-1) > 60
    ys, xs = np.nonzero(mask)
    crop = mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    small = Image.fromarray(crop.astype(np.uint8) * 255).resize((32, 32))
    return np.asarray(small) > 127


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def navy_solid(category: str, index: int) -> DemoProduct:
    return replace(generate_product(0, index, category=category), colour="navy", pattern="solid")


def test_generation_is_deterministic_by_seed() -> None:
    first = DemoCatalog.generate(40, seed=7).products
    again = DemoCatalog.generate(40, seed=7).products
    other = DemoCatalog.generate(40, seed=8).products

    assert first == again
    assert [p.title for p in first] != [p.title for p in other]
    assert DemoCatalog.generate(10, seed=7).products == first[:10]


def test_products_are_unique_and_well_formed() -> None:
    products = DemoCatalog.generate(200, seed=1).products

    assert len({p.sku for p in products}) == 200
    assert len({p.slug for p in products}) == 200
    for product in products:
        assert product.price == product.price.quantize(Decimal("0.01"))
        assert product.price > 0
        assert product.currency == "EUR"
        assert product.views[0] == "front"
        assert 1 <= len(product.views) <= 3
        assert product.sku.lower() in product.slug
        assert product.brand in product.title


def test_catalog_has_variety() -> None:
    products = DemoCatalog.generate(200, seed=2).products

    first_sixteen = [p.category for p in products[:16]]
    assert {c: first_sixteen.count(c) for c in CATEGORIES} == dict.fromkeys(CATEGORIES, 2)
    assert {p.pattern for p in products} == set(PATTERNS)
    assert len({p.colour for p in products}) >= 12
    assert len({p.brand for p in products}) >= 8
    assert {len(p.views) for p in products} == {1, 2, 3}


def test_mutations_update_products_and_timestamps() -> None:
    catalog = DemoCatalog.generate(10, seed=3, clock=fixed_clock)
    first, second, third = catalog.products[:3]
    generated_mark = catalog.last_modified

    repriced = catalog.set_price(first.sku, "19.9")
    assert repriced.price == Decimal("19.90")
    assert catalog.get(first.sku) == repriced
    assert repriced.last_modified == FIXED_NOW
    assert repriced.image_modified == first.image_modified
    assert catalog.last_modified == FIXED_NOW > generated_mark

    bumped = catalog.bump_image(second.sku)
    assert bumped.image_version == second.image_version + 1
    # The clock stands still, but every change still gets a later second.
    assert bumped.last_modified == bumped.image_modified > repriced.last_modified

    removed = catalog.remove(third.sku)
    assert removed == third
    assert third.sku not in catalog
    assert catalog.find_by_slug(third.slug) is None
    with pytest.raises(KeyError):
        catalog.get(third.sku)
    assert len(catalog) == 9

    added = catalog.add_product(category="hats")
    assert added.category == "hats"
    assert catalog.products[-1] == added
    assert added.sku not in {p.sku for p in DemoCatalog.generate(10, seed=3).products}
    assert added.last_modified == catalog.last_modified
    assert catalog.find_by_slug(added.slug) == added

    unavailable = catalog.set_availability(first.sku, "OutOfStock")
    assert unavailable.availability_url == "https://schema.org/OutOfStock"


def test_mutation_errors() -> None:
    catalog = DemoCatalog.generate(3, seed=0)
    sku = catalog.products[0].sku
    revision = catalog.revision

    with pytest.raises(ValueError, match="price"):
        catalog.set_price(sku, "-1")
    with pytest.raises(ValueError, match="price"):
        catalog.set_price(sku, "cheap")
    with pytest.raises(KeyError):
        catalog.bump_image("NOPE")
    with pytest.raises(ValueError, match="duplicate"):
        catalog.add_product(catalog.products[1])
    with pytest.raises(ValueError, match="category"):
        catalog.add_product(category="socks")
    with pytest.raises(ValueError, match="category"):
        replace(catalog.products[0], category="socks")
    assert catalog.revision == revision


def test_added_products_never_reuse_skus() -> None:
    catalog = DemoCatalog.generate(5, seed=4)
    last = catalog.products[-1]
    catalog.remove(last.sku)

    added = catalog.add_product()
    assert added.sku != last.sku
    assert added == replace(
        generate_product(4, 5),
        last_modified=added.last_modified,
        image_modified=added.image_modified,
    )


def test_render_image_is_a_deterministic_jpeg_of_the_right_size() -> None:
    product = DemoCatalog.generate(1, seed=5).products[0]

    jpeg = render_image(product, "front")
    assert jpeg[:3] == b"\xff\xd8\xff"
    image = decode(jpeg)
    assert image.format == "JPEG"
    assert image.size == (400, 500)
    assert image.mode == "RGB"
    assert render_image(product, "front") == jpeg
    assert render_image(generate_product(5, 0), "front") == jpeg
    assert decode(render_image(product, "front", size=(224, 224))).size == (224, 224)


def test_views_and_image_versions_change_the_picture() -> None:
    product = generate_product(6, 0)
    pictures = {view: render_image(product, view) for view in VIEWS}

    assert len(set(pictures.values())) == 3
    assert render_image(replace(product, image_version=2)) != pictures["front"]
    with pytest.raises(ValueError, match="view"):
        render_image(product, "side")


def test_categories_have_distinct_silhouettes() -> None:
    masks = {c: [silhouette(render_image(navy_solid(c, i))) for i in range(3)] for c in CATEGORIES}

    same = [iou(a, b) for c in CATEGORIES for a, b in itertools.combinations(masks[c], 2)]
    across = [iou(masks[a][0], masks[b][0]) for a, b in itertools.combinations(CATEGORIES, 2)]
    assert min(same) > 0.9
    assert max(across) < min(same) - 0.05


def test_products_of_one_category_look_alike_but_not_identical() -> None:
    first, second = navy_solid("dresses", 0), navy_solid("dresses", 1)

    assert render_image(first) != render_image(second)
    left = np.asarray(decode(render_image(first)), dtype=np.float32)
    right = np.asarray(decode(render_image(second)), dtype=np.float32)
    assert 0 < np.abs(left - right).mean() < 40


def test_colour_follows_the_product() -> None:
    red = replace(generate_product(0, 0, category="tops"), colour="red", pattern="solid")
    green = replace(red, colour="green")

    def garment_mean(product: DemoProduct) -> np.ndarray:
        pixels = np.asarray(decode(render_image(product)).convert("RGB"), dtype=np.float32)
        centre = pixels[220:280, 180:220]
        return centre.reshape(-1, 3).mean(axis=0)

    red_mean, green_mean = garment_mean(red), garment_mean(green)
    assert red_mean[0] > red_mean[1] + 80
    assert green_mean[1] > green_mean[0] + 50


def test_render_outfit_places_top_above_bottom() -> None:
    top = generate_product(0, 0, category="tops")
    bottom = generate_product(0, 1, category="pants")

    photo = compose_outfit(top, bottom)
    image = decode(photo.jpeg)
    assert image.size == photo.size == (480, 640)
    assert render_outfit(top, bottom) == photo.jpeg
    assert render_outfit(top, bottom, seed=1) != photo.jpeg

    (top_box, bottom_box) = photo.boxes
    assert (top_box.sku, top_box.category) == (top.sku, "tops")
    assert (bottom_box.sku, bottom_box.category) == (bottom.sku, "pants")
    for box in (top_box.box, bottom_box.box):
        x0, y0, x1, y1 = box
        assert 0 <= x0 < x1 <= 480
        assert 0 <= y0 < y1 <= 640
    assert top_box.box[1] < bottom_box.box[1]
    assert top_box.box[3] <= bottom_box.box[3]


def test_products_carry_a_valid_gtin_shared_by_the_same_seed_only() -> None:
    one, again, other = (DemoCatalog.generate(20, seed=s).products for s in (3, 3, 4))
    gtins = [p.gtin for p in one]
    assert all(normalize_gtin(g) == f"0{g}" and g.startswith("2") for g in gtins)
    assert len(set(gtins)) == len(gtins)
    assert gtins == [p.gtin for p in again]
    assert not set(gtins) & {p.gtin for p in other}
