"""eval-e2e's colour figures (per colour, per article type, shopper colour names, the answer's
named colour) on small made-up answers, and its contact sheets showing the garment's mask."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lab.evaluate.e2e import (
    NO_COLOUR,
    _product_score,
    product_figures,
    said_colour,
    street_colour_column,
    street_figures,
)
from lab.evaluate.records import Answer, CatalogItem
from lab.evaluate.report import render_markdown
from lab.evaluate.sheets import THUMB, _sheet, catalog_crop, write_sheets
from services.gateway.schemas import Group, Recommendation, RecommendResponse, SeenColour
from shared.crops import GarmentCrop, garment_crops
from shared.detection import DetectionResult

pytestmark = pytest.mark.unit


def item(n: int, article_type: str, colour: str, path: Path | None = None) -> CatalogItem:
    return CatalogItem(
        item_id=str(n),
        path=path or Path(f"{n}.jpg"),
        article_type=article_type,
        sub_category="",
        colour=colour,
        title=f"Product {n}",
        attributes={},
    )


def group(products: list[CatalogItem], box: list[float] | None = None) -> Group:
    return Group(
        box=box or [0.0, 0.0, 10.0, 10.0],
        category="shirt",
        probability=None,
        recommendations=[
            Recommendation(
                id=int(p.item_id), title=p.title, url=f"u/{p.item_id}", image_url=None,
                price=None, currency=None, brand=None, category=p.article_type, score=0.5,
            )
            for p in products
        ],
    )  # fmt: skip


def scored(query: CatalogItem, found: list[CatalogItem], said: str | None = None) -> Answer:
    answered = group(found)
    if said is not None:
        answered.colour = SeenColour(name=said, probability=0.9)
    response = RecommendResponse(groups=[answered], timings_ms={}, model_version=None)
    extra = _product_score(query, answered, {f"u/{p.item_id}": p for p in found})
    return Answer(query.path, (), response, 1.0, extra={**extra, "own_first": None})


NAVY_SHIRT = item(1, "Shirts", "Navy Blue")
FOUND = [
    item(10, "Shirts", "Navy Blue"),  # type + exact label
    item(11, "Shirts", "Blue"),  # a blue is not a navy
    item(12, "Tshirts", "Navy Blue"),  # the colour name, not the type
    item(13, "Shirts", "Multi"),
]


def test_a_product_photo_counts_exact_labels_and_shopper_colour_names() -> None:
    extra = scored(NAVY_SHIRT, FOUND).extra
    assert extra["colour"] == "navy" and extra["article_type"] == "Shirts"
    assert (extra["same_type"], extra["same_type_colour"]) == (3, 1)
    assert (extra["same_type_colour_name"], extra["same_colour_name"]) == (1, 2)
    # "Off White" and "Cream" are whites: the same name, not the same label
    white = scored(
        item(2, "Tops", "White"), [item(20, "Tops", "Off White"), item(21, "Tops", "Cream")]
    )
    assert white.extra["same_type_colour"] == 0 and white.extra["same_type_colour_name"] == 2
    # a label that names no one colour: no colour-name figures for that query
    multi = scored(item(3, "Tops", "Multi"), [item(30, "Tops", "Multi")]).extra
    assert multi["colour"] is None and multi["same_type_colour"] == 1
    assert multi["same_type_colour_name"] is None and multi["same_colour_name"] is None


def test_the_answers_named_colour_is_read_when_the_response_has_one() -> None:
    assert said_colour(None) is None
    assert said_colour(group(FOUND)) is None  # today's groups name no colour
    assert scored(NAVY_SHIRT, FOUND).extra["said_colour_right"] is None
    assert scored(NAVY_SHIRT, FOUND, said="navy").extra["said_colour_right"] is True
    assert scored(NAVY_SHIRT, FOUND, said="blue").extra["said_colour_right"] is False
    assert scored(item(3, "Tops", "Multi"), FOUND, said="red").extra["said_colour_right"] is None


def test_product_figures_per_colour_and_per_type() -> None:
    answers = [scored(NAVY_SHIRT, FOUND, said="navy") for _ in range(10)]
    answers += [scored(item(2, "Tops", "White"), [item(20, "Tops", "Off White")], said="grey")]
    answers += [scored(item(3, "Tops", "Multi"), [item(30, "Tops", "Multi")])]
    figures = product_figures(answers)
    assert figures["queries"] == 12 and figures["named"] == 11
    # colour-name figures count only the 11 queries whose label names a colour
    assert figures["same_type_colour_name"] == pytest.approx(round(11 / 110, 3))
    assert figures["same_type_colour"] == pytest.approx(round(11 / 120, 3))
    assert figures["said_colour"] == 11
    assert figures["said_colour_right_rate"] == pytest.approx(round(10 / 11, 3))
    per_colour = figures["per_colour"]
    assert list(per_colour) == ["white", "navy", NO_COLOUR]  # the vocabulary's order
    assert per_colour["navy"]["queries"] == 10 and per_colour["navy"]["same_colour_name"] == 0.2
    assert per_colour["white"]["said_colour_right_rate"] == 0.0
    assert per_colour[NO_COLOUR]["named"] == 0
    assert per_colour[NO_COLOUR]["same_type_colour_name"] is None
    # only the types with at least 10 queries get a row
    assert list(figures["per_type"]) == ["Shirts"] and figures["other_type_queries"] == 2
    assert figures["per_type"]["Shirts"]["same_type"] == 0.3


def test_street_colour_column(tmp_path: Path) -> None:
    (tmp_path / "boxes.csv").write_text("filename,category,x1,y1,x2,y2\n")
    assert street_colour_column(tmp_path) is None
    (tmp_path / "boxes.csv").write_text("filename,category,baseColour,x1,y1,x2,y2\n")
    assert street_colour_column(tmp_path) == "baseColour"


def _report(products: dict[str, object]) -> dict[str, object]:
    return {
        "generated_at": "2026-12-05T00:00:00+00:00",
        "command": "lookalike eval-e2e",
        "seconds": 1.0,
        "machine": {"cores": 2, "cpu": "test", "python": "3.11"},
        "config": {"model_version": "m", "classifier": "c", "detector": "d", "holdout": 0.1,
                   "seed": 0, "k": 10, "min_iou": 0.5, "hit_min_same": 3},
        "ingest": {"products": 5, "images_done": 5, "points": 5, "detect": False,
                   "images_per_s": 1.0},
        "street": {**street_figures([]), "colour_column": None},
        "products": products,
    }  # fmt: skip


def test_the_markdown_has_the_colour_and_type_tables() -> None:
    answers = [scored(NAVY_SHIRT, FOUND) for _ in range(10)]
    answers.append(scored(item(3, "Tops", "Multi"), [item(30, "Tops", "Multi")]))
    text = render_markdown(_report(product_figures(answers)))
    assert "| same type + colour | same type + colour name | same colour name |" in text
    assert "| **overall** | 11 | 28.2% | 28.2% | 37.3% | 10.0% | 10.0% | 20.0% |" in text
    assert "**Per colour**" in text and "named right" not in text
    assert "| navy | 10 | 30.0% | 10.0% | 10.0% | 20.0% |" in text
    assert f"| {NO_COLOUR} | 1 | 10.0% | 10.0% | - | - |" in text
    assert (
        "**Per article type** (the types with at least 10 queries; queries of the other types: 1)"
        in text
    )
    assert "| Shirts | 10 | 30.0% | 30.0% | 10.0% | 10.0% | 20.0% |" in text
    assert "Street boxes: no colour figures" in text

    said = render_markdown(_report(product_figures([scored(NAVY_SHIRT, FOUND, said="navy")])))
    assert (
        "named right |" in said and "| navy | 1 | 30.0% | 10.0% | 10.0% | 20.0% | 100.0% |" in said
    )
    assert "for 100.0% of the 1 queries" in said


def _photo(path: Path) -> Image.Image:
    """A red garment on a blue-grey backdrop."""
    picture = Image.new("RGB", (160, 200), (90, 110, 140))
    picture.paste((200, 30, 30), (40, 40, 120, 170))
    picture.save(path)
    return picture


def test_the_sheet_shows_the_query_crops_mask_and_the_products_dimmed(tmp_path: Path) -> None:
    query_path, product_path = tmp_path / "query.png", tmp_path / "product.png"
    picture = _photo(query_path)
    _photo(product_path)
    [crop] = garment_crops(
        picture, picture.size, DetectionResult.whole_image(*picture.size), detect=False
    )
    product = item(7, "Shirts", "Red", product_path)
    answered = group([product], box=[round(v, 1) for v in crop.box])
    response = RecommendResponse(groups=[answered], timings_ms={}, model_version=None)
    answer = Answer(query_path, (), response, 1.0, crops=(crop,))
    by_url = {f"u/{product.item_id}": product}

    found = catalog_crop(product_path)
    assert isinstance(found, GarmentCrop) and found.mask.pixels[32, 32]
    assert not found.mask.pixels[0, 0]
    sheet = np.asarray(_sheet(picture, answer, by_url, catalog_crop, "label: Red"), dtype=int)
    left = round(picture.width * 480 / picture.height) + 24
    # the query tile: the crop, then the garment alone, its background painted green
    assert sheet[3, left + 3].tolist() == [90, 110, 140]
    assert sheet[3, left + THUMB + 5].tolist() == [0, 200, 0]
    assert sheet[THUMB // 2, left + THUMB + 2 + THUMB // 2].tolist() == [200, 30, 30]
    # the product: its background faded towards grey, the garment left as it is
    x = left + 2 * THUMB + 2 + 12
    assert np.abs(sheet[3, x + 3] - [132, 138, 147]).max() <= 1
    assert sheet[THUMB // 2, x + THUMB // 2].tolist() == [200, 30, 30]

    assert write_sheets(tmp_path / "sheets", [], [answer], by_url, 5) == 1
    assert (tmp_path / "sheets" / "product-query.jpg").is_file()
