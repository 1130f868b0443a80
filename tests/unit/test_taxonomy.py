"""The garment taxonomy: every label the house meets maps to one class and parent."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from services.demo_shop.vocabulary import CATEGORIES, NOUNS
from services.ingest.garments import crop_votes
from shared.taxonomy import (
    CLASSES,
    PARENTS,
    TARGET_PARENTS,
    GarmentClass,
    garment_class,
    is_not_garment,
    normalise,
    parent,
    read_classes,
)

pytestmark = pytest.mark.unit

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
"""The development data beside the repository (``../shared/data``); tests that read it skip
without it."""
NO_GARMENT = {
    "",
    "Apparel",
    "Apparel Set",
    "Deodorant",
    "Footballs",
    "Fragrance",
    "Fragrance Gift Set",
    "Free Gifts",
    "Free Items",
    "Perfume and Body Mist",
    "Personal Care",
    "Sporting Goods",
    "Sports Equipment",
}
"""Labels of the dev catalog that are no garment (or too broad to be one class)."""

CATALOG_SAMPLE = {
    # articleType / subCategory values of catalog-products-dev -> parent
    "Tshirts": "top",
    "Shirts": "top",
    "Kurtas": "top",
    "Sweatshirts": "top",
    "Jackets": "outerwear",
    "Track Pants": "bottom",
    "Capris": "bottom",
    "Leggings": "bottom",
    "Skirts": "bottom",
    "Dresses": "dress",
    "Casual Shoes": "footwear",
    "Flip Flops": "footwear",
    "Sports Sandals": "footwear",
    "Handbags": "bag",
    "Clutches": "bag",
    "Wallets": "bag",
    "Mobile Pouch": "bag",
    "Caps": "hat",
    "Sunglasses": "eyewear",
    "Socks": "legwear",
    "Belts": "accessory",
    "Shoe Accessories": "accessory",
    "Watches": "jewellery",
    "Necklace and Chains": "jewellery",
    "Innerwear Vests": "innerwear",
    "Loungewear and Nightwear": "innerwear",
    "Topwear": "top",
    "Bottomwear": "bottom",
}
STREET_SAMPLE = {
    # category -> coarse_category of street-photos-boxes-dev
    "blouse": "top",
    "t-shirt": "top",
    "vest": "top",
    "bodysuit": "top",
    "jeans": "bottom",
    "leggings": "bottom",
    "skirt": "bottom",
    "romper": "dress",
    "cardigan": "outerwear",
    "suit": "outerwear",
    "cape": "outerwear",
    "loafers": "footwear",
    "pumps": "footwear",
    "purse": "bag",
    "wallet": "bag",
    "stockings": "legwear",
    "belt": "accessory",
    "scarf": "accessory",
    "watch": "jewellery",
    "bra": "swimwear/intimate",
    "sunglasses": "eyewear",
}
STREET_CROP_FOLDERS = {
    "bags": "bag",
    "belts": "accessory",
    "dresses": "dress",
    "eyewear": "eyewear",
    "footwear": "footwear",
    "hats": "hat",
    "leggings": "bottom",
    "outerwear": "outerwear",
    "pants": "bottom",
    "skirts": "bottom",
    "tops": "top",
}
DETECTOR_CLASSES = ("top", "bottom", "dress", "outerwear", "footwear", "bag", "accessory")


def test_the_tree_is_two_levels_with_unique_spellings() -> None:
    names = [c.name for c in CLASSES]
    assert len(names) == len(set(names))
    assert set(TARGET_PARENTS) <= set(PARENTS)
    for garment in CLASSES:
        assert garment.parent in PARENTS
        assert garment_class(garment.name) is garment
        for synonym in garment.synonyms:
            assert garment_class(synonym) is garment, synonym


@pytest.mark.parametrize(
    ("label", "name"),
    [
        ("Women > Clothing > Tops", "top"),
        ("Men / Shoes / Ankle Boots", "boots"),
        ("Home | Bags", "bag"),
        ("T-Shirts", "t-shirt"),
        ("t shirt", "t-shirt"),
        ("TSHIRT", "t-shirt"),
        ("Skinny Jeans", "jeans"),
        ("Denim Jacket", "jacket"),
        ("Trench Coat", "coat"),
        ("Dresses", "dress"),
        ("T-Shirt Dress", "dress"),
        ("Tops & T-Shirts", "t-shirt"),
        ("  sneakers!! ", "footwear"),
        ("Flip-Flops", "sandals"),
        ("Watches", "jewellery"),
        ("swimwear/intimate", "innerwear"),
    ],
)
def test_spellings(label: str, name: str) -> None:
    found = garment_class(label)
    assert found is not None and found.name == name


@pytest.mark.parametrize("label", [None, "", "   ", "Women > Clothing", "Herren", "Perfume"])
def test_no_class(label: str | None) -> None:
    assert garment_class(label) is None
    assert parent(label) is None


def test_parent_of_a_class_or_a_label() -> None:
    jeans = garment_class("jeans")
    assert isinstance(jeans, GarmentClass) and parent(jeans) == "bottom"
    assert parent("Pleated Skirt") == "bottom"
    assert normalise("Tops & T-Shirts") == "tops and t shirts"


def test_fixed_samples_of_real_labels() -> None:
    for label, expected in CATALOG_SAMPLE.items():
        assert parent(label) == expected, label
    for label, coarse in STREET_SAMPLE.items():
        assert parent(label) == parent(coarse), label
    for folder, expected in STREET_CROP_FOLDERS.items():
        assert parent(folder) == expected, folder
    for label in NO_GARMENT:
        assert garment_class(label) is None, label
        # Too broad to be one class is not "no garment": their crops' votes still place them.
        assert is_not_garment(label) == (label not in {"", "Apparel", "Apparel Set"}), label
    for label in ("Football Shoes", "Accessory Gift Set", "Ball Gown", "Sonstiges", None):
        assert not is_not_garment(label), label
    assert is_not_garment("Beauty > Fragrance") and is_not_garment("Nail Polish")


def test_model_and_demo_shop_classes() -> None:
    for name in DETECTOR_CLASSES:
        assert parent(name) == name
    for category in CATEGORIES:
        assert parent(category) is not None, category
        for noun in NOUNS[category]:
            assert parent(noun) == parent(category), noun


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        pytest.skip(f"{path} is not here (development data)")
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_every_label_of_the_dev_catalog() -> None:
    rows = _rows(DATA / "catalog-products-dev" / "labels.csv")
    for column in ("articleType", "subCategory"):
        for label in {row[column] for row in rows}:
            assert (garment_class(label) is None) == (label in NO_GARMENT), (column, label)


def test_every_label_of_the_dev_street_boxes() -> None:
    rows = _rows(DATA / "street-photos-boxes-dev" / "boxes.csv")
    for category, coarse in {(row["category"], row["coarse_category"]) for row in rows}:
        assert parent(coarse) is not None, coarse
        assert parent(category) == parent(coarse), (category, coarse)


def test_every_folder_of_the_dev_street_crops() -> None:
    folder = DATA / "street-crops-dev"
    if not folder.is_dir():
        pytest.skip(f"{folder} is not here (development data)")
    for path in folder.iterdir():
        if path.is_dir():
            assert parent(path.name) == STREET_CROP_FOLDERS[path.name], path.name


def test_every_class_of_the_shipped_models() -> None:
    import json

    root = Path(__file__).resolve().parents[2] / "services"
    for card in [
        *root.glob("detector/artifacts/*/model.json"),
        *root.glob("embedder/artifacts/*/model.json"),
    ]:
        for name in json.loads(card.read_text()).get("classes", []):
            assert parent(name) is not None, (card, name)


def test_a_models_classes_are_read_once_for_the_catalog_and_the_query() -> None:
    """``read_classes`` is the reading the catalog's crop votes and a shopper's search scope
    share: the taxonomy's names, most probable first, unreadable classes left out (their mass
    too), two model classes of one class added up."""
    probabilities = {"tops": 0.1, "pants": 0.5, "gadgets": 0.25, "trousers": 0.15}
    assert read_classes(probabilities) == {"trousers": 0.65, "top": 0.1}
    assert list(read_classes(probabilities)) == ["trousers", "top"]
    assert read_classes({"skirts": 0.5, "dresses": 0.5}) == {"skirt": 0.5, "dress": 0.5}
    assert list(read_classes({"skirts": 0.5, "dresses": 0.5})) == ["skirt", "dress"]
    votes = crop_votes(["tops", "gadgets", "pants"], np.array([[0.2, 0.5, 0.3]], np.float32))
    assert votes[0].top == (("trousers", 0.3), ("top", 0.2))
