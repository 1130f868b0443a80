"""``lookalike eval-text`` on a small labelled folder of real product shots, indexed by the real
ingest: every path answers, the titles find the asked type and colour, and hidden titles leave
words alone to the pictures."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from lab.evaluate.words import queries, run
from shared.settings import Settings
from tests.ingest_support import link_models, shared_models_dir

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
PAINT = {
    "Navy Blue": (25, 35, 80),
    "Red": (190, 30, 35),
    "Blue": (60, 100, 170),
    "Black": (20, 20, 20),
}
SHAPES = {
    "Tshirts": [
        (60, 40),
        (140, 40),
        (190, 90),
        (160, 110),
        (150, 200),
        (50, 200),
        (40, 110),
        (10, 90),
    ],
    "Jeans": [(60, 20), (140, 20), (150, 210), (110, 210), (100, 80), (90, 210), (50, 210)],
    "Handbags": [(40, 90), (160, 90), (170, 200), (30, 200)],
}


def _shot(kind: str, colour: str, path: Path) -> None:
    """A product shot: the garment's silhouette in its colour on a white background."""
    image = Image.new("RGB", (200, 230), (250, 250, 250))
    ImageDraw.Draw(image).polygon(SHAPES[kind], fill=PAINT[colour])
    image.save(path, quality=92)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "images").mkdir()
    with (tmp_path / "labels.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "item_id", "articleType", "baseColour", "productDisplayName"])
        for n, (kind, colour, title) in enumerate(ROWS * 2, start=1):
            _shot(kind, colour, tmp_path / "images" / f"{n}.jpg")
            writer.writerow([f"images/{n}.jpg", n, kind, colour, f"{title} {n}"])
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


@pytest.mark.timeout(600)
def test_every_path_is_measured_end_to_end(
    folder: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    data_dir = tmp_path / "kept"
    settings = Settings(_env_file=None, data_dir=tmp_path / "data")
    link_models(data_dir, shared_models_dir(tmp_path_factory))
    figures = run(folder, data_dir, settings, min_products=1, progress=lambda _: None)
    assert figures["bridge"]["products"] == 8  # learnt on the other half only
    assert figures["queries"] >= 3
    published, hidden = figures["published"], figures["hidden"]
    for variant in (published, hidden):
        assert set(variant) == {"text", "pictures", "both"}
        assert variant["both"]["catalog"]["cpu_ms_p50"] > 0
    assert set(published["text"]["catalog"]["answered_by"]) == {"text"}
    assert set(hidden["pictures"]["catalog"]["answered_by"]) == {"pictures"}
    # Hidden titles say nothing of type or colour: words alone are left to the pictures. (A
    # shop of 8 products shows all of them in 10 places, so P@10 cannot tell the paths apart.)
    assert set(hidden["both"]["catalog"]["answered_by"]) == {"pictures"}
    # The indexed shop is kept: a second run reuses it and the bridge it learnt.
    again = run(
        folder,
        data_dir,
        settings,
        min_products=1,
        variants=["published"],
        paths=["text"],
        bridge=data_dir / "bridge",
        progress=lambda _: None,
    )
    for words in ("catalog", "shopper"):
        first, second = published["text"][words], again["published"]["text"][words]
        assert {**first, "cpu_ms_p50": 0} == {**second, "cpu_ms_p50": 0}
