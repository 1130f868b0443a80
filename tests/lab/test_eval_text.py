"""``lookalike eval-text`` on a small labelled folder: the text path finds the asked type and
colour by the published titles."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from lab.evaluate.words import queries, run

ROWS = [
    ("Tshirts", "Navy Blue", "Koru Men Navy Blue Cotton T-Shirt"),
    ("Tshirts", "Navy Blue", "Halden Navy Blue Printed T-Shirt"),
    ("Tshirts", "Red", "Koru Red Polo T-Shirt"),
    ("Tshirts", "Red", "Fjell Red Slim T-Shirt"),
    ("Jeans", "Blue", "Northwind Blue Skinny Jeans"),
    ("Jeans", "Blue", "Casa Verde Blue Straight Jeans"),
    ("Handbags", "Black", "Atelier Black Leather Handbag"),
    ("Handbags", "Black", "Mistral Black Tote Handbag"),
]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "images").mkdir()
    with (tmp_path / "labels.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "item_id", "articleType", "baseColour", "productDisplayName"])
        for n, (kind, colour, title) in enumerate(ROWS, start=1):
            (tmp_path / "images" / f"{n}.jpg").write_bytes(b"x")
            writer.writerow([f"images/{n}.jpg", n, kind, colour, title])
    return tmp_path


def test_queries_in_catalog_and_shopper_words() -> None:
    from lab.evaluate.records import CatalogItem

    items = [
        CatalogItem(str(n), Path(f"{n}.jpg"), kind, "", colour, title, {})
        for n, (kind, colour, title) in enumerate(ROWS)
    ]
    asked = {q[0]: q[1] for q in queries(items, min_products=2)}
    assert asked["navy blue tshirts"] == "navy tee"
    assert asked["blue jeans"] == "blue denim"
    assert asked["black handbags"] == "black purse"


def test_every_variant_and_wording_is_measured(folder: Path) -> None:
    figures = run(folder, min_products=2, progress=lambda _: None)
    assert figures["queries"] == 4
    published, hidden = figures["published"], figures["hidden"]
    # Two products per pair, ten places: at most 0.2 of the same type and colour.
    assert published["catalog"]["p10_type_colour"] == pytest.approx(0.2)
    assert published["shopper"]["p10_type_colour"] == pytest.approx(0.2)
    # Eight products, ten places: hidden titles still list them all, in any order.
    assert hidden["catalog"]["p10_type_colour"] <= published["catalog"]["p10_type_colour"]
    assert published["catalog"]["cpu_ms_p50"] > 0
