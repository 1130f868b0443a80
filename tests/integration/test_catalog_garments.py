"""Crops' garment votes and the garment class of each shop category, on SQLite and Postgres."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy import select, update

from shared.db import Catalog, CategoryGarment, CropIn, SourceIn
from shared.db.models import GarmentCrop, Product
from tests.garment_support import BOX, SHOP, add_product

pytestmark = pytest.mark.integration


@pytest.fixture
def shops(catalog: Catalog) -> tuple[int, int]:
    acme = catalog.upsert_source(
        SourceIn(
            name="acme",
            base_url=SHOP,
            config={"garment_map": {"neuheiten": "trousers", "Sonstiges": "no such class"}},
        )
    ).id
    other = catalog.upsert_source(SourceIn(name="other", base_url="https://other.example")).id
    add_product(catalog, acme, 1, "Hosen", ["jeans", "jeans", "top"])
    add_product(catalog, acme, 2, "Hosen", ["trousers", "trousers", None])
    add_product(catalog, acme, 3, "Casual Shoes", [])
    add_product(catalog, acme, 4, "Neuheiten", ["dress"])
    add_product(catalog, acme, 5, None, ["dress", "dress", "dress"])
    add_product(catalog, acme, 6, "Sonstiges", ["bag"])
    gone = add_product(catalog, acme, 7, "Hosen", ["top"] * 5)
    with catalog.writing() as session:
        session.execute(update(Product).where(Product.id == gone).values(active=False))
    add_product(catalog, other, 1, "Hosen", ["shorts", "shorts", "shorts"])
    return acme, other


def test_crops_store_the_classifiers_vote(catalog: Catalog, shops: tuple[int, int]) -> None:
    with catalog.reading() as session:
        stored = session.execute(select(GarmentCrop.garment, GarmentCrop.garment_p)).all()
    assert ("jeans", 0.9) in stored and (None, None) in stored
    assert CropIn(box=BOX, garment="Pants").garment == "trousers"  # stored as the class name
    with pytest.raises(ValidationError, match="'Hosen' is not a garment class"):
        CropIn(box=BOX, garment="Hosen")
    with pytest.raises(ValidationError):
        CropIn(box=BOX, garment="top", garment_p=1.5)


def test_votes_per_source_and_category_of_active_products(
    catalog: Catalog, shops: tuple[int, int]
) -> None:
    acme, other = shops
    assert catalog.garment_votes() == {
        (acme, "Hosen"): {"jeans": 2, "trousers": 2, "top": 1},
        (acme, "Neuheiten"): {"dress": 1},
        (acme, None): {"dress": 3},
        (acme, "Sonstiges"): {"bag": 1},
        (other, "Hosen"): {"shorts": 3},
    }
    assert catalog.garment_votes(other) == {(other, "Hosen"): {"shorts": 3}}
    assert catalog.garment_votes(999) == {}


def test_category_garments_combine_products_votes_and_the_override(
    catalog: Catalog, shops: tuple[int, int]
) -> None:
    acme, other = shops
    rows = catalog.category_garments()
    assert [(r.source, r.category, r.products) for r in rows] == [
        ("acme", "Hosen", 2),  # the inactive one is left out
        ("acme", None, 1),
        ("acme", "Casual Shoes", 1),
        ("acme", "Neuheiten", 1),
        ("acme", "Sonstiges", 1),
        ("other", "Hosen", 1),
    ]
    by_key = {(r.source_id, r.category): r for r in rows}
    assert by_key[acme, "Hosen"] == CategoryGarment(
        source_id=acme,
        source="acme",
        category="Hosen",
        garment="bottom",  # jeans and trousers tie within the winning parent
        parent="bottom",
        how="votes",
        votes=5,
        share=0.8,
        products=2,
    )
    assert (by_key[acme, "Casual Shoes"].garment, by_key[acme, "Casual Shoes"].how) == (
        "footwear",
        "name",
    )
    pinned = by_key[acme, "Neuheiten"]  # the override matches whatever the case
    assert (pinned.garment, pinned.parent, pinned.how, pinned.votes, pinned.share) == (
        "trousers",
        "bottom",
        "operator",
        1,
        0.0,
    )
    assert (by_key[acme, None].garment, by_key[acme, None].how) == ("dress", "votes")
    # An override naming no class (a hand-edited config) is ignored; one vote is too few.
    assert (by_key[acme, "Sonstiges"].garment, by_key[acme, "Sonstiges"].how) == (None, "unknown")
    assert (by_key[other, "Hosen"].garment, by_key[other, "Hosen"].how) == ("shorts", "votes")
    assert catalog.category_garments(other) == [by_key[other, "Hosen"]]


def test_category_garments_of_an_empty_catalog(catalog: Catalog) -> None:
    assert catalog.category_garments() == []
    assert catalog.garment_votes() == {}
