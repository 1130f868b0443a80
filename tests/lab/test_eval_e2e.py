"""``lookalike eval-e2e`` end to end on generated data: a demo-shop catalog folder with a
``labels.csv`` and outfit photos with a ``boxes.csv``, in the dev datasets' formats."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from services.cli import main
from services.demo_shop.catalog import DemoCatalog
from services.demo_shop.images import compose_outfit, render_image
from services.demo_shop.vocabulary import LOWER_BODY, UPPER_BODY
from shared.settings import Settings, get_settings
from shared.taxonomy import TARGET_PARENTS, parent
from tests.ingest_support import link_models, shared_models_dir

pytestmark = pytest.mark.integration

LABELS = (
    "filename,item_id,gender,masterCategory,subCategory,articleType,baseColour,season,usage,"
    "productDisplayName"
)
BOXES = "filename,category,coarse_category,x1,y1,x2,y2,area_px,width,height"


def _catalog(folder: Path, shop: DemoCatalog) -> None:
    (folder / "images").mkdir(parents=True)
    with (folder / "labels.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(LABELS.split(","))
        for n, product in enumerate(shop.products):
            name = f"images/{1000 + n}.jpg"
            (folder / name).write_bytes(render_image(product, "front", (224, 224)))
            writer.writerow(
                [name, 1000 + n, "Women", "Apparel", product.category.title(), product.category,
                 product.colour.title(), "Fall", "Casual", product.title]
            )  # fmt: skip


def _street(folder: Path, shop: DemoCatalog, photos: int) -> None:
    (folder / "images").mkdir(parents=True)
    tops = [p for p in shop.products if p.category in UPPER_BODY]
    bottoms = [p for p in shop.products if p.category in LOWER_BODY]
    with (folder / "boxes.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(BOXES.split(","))
        for n in range(photos):
            outfit = compose_outfit(tops[n % len(tops)], bottoms[n % len(bottoms)], seed=n)
            name = f"images/{n:04d}.jpg"
            (folder / name).write_bytes(outfit.jpeg)
            for garment in outfit.boxes:
                x0, y0, x1, y1 = garment.box
                writer.writerow(
                    [name, garment.category, parent(garment.category), x0, y0, x1, y1,
                     (x1 - x0) * (y1 - y0), *outfit.size]
                )  # fmt: skip


@pytest.fixture
def runner(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("LOOKALIKE_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_eval_e2e_on_a_generated_shop(
    runner: CliRunner, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    shop = DemoCatalog.generate(24, seed=5)
    _catalog(tmp_path / "catalog", shop)
    _street(tmp_path / "street", shop, photos=3)
    data_dir = tmp_path / "eval-data"
    link_models(data_dir, shared_models_dir(tmp_path_factory))
    markdown = tmp_path / "BENCHMARKS.md"
    markdown.write_text("# Benchmarks\n\n## Other\n\nkept\n")
    args = [
        "eval-e2e",
        "--catalog", str(tmp_path / "catalog"),
        "--street", str(tmp_path / "street"),
        "--holdout", "0.25",
        "--data-dir", str(data_dir),
        "--json", str(tmp_path / "e2e.json"),
        "--markdown", str(markdown),
        "--sheets", str(tmp_path / "sheets"),
        "--sheets-max", "2",
        "--variant", 'strict={"detector": {"min_score": 0.99}}',
    ]  # fmt: skip
    result = runner.invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "e2e.json").read_text())
    assert {"generated_at", "command", "machine", "config", "ingest", "street", "products"} <= set(
        report
    )
    assert report["ingest"]["products"] == 18 and report["ingest"]["images_done"] == 18
    assert report["ingest"]["images_failed"] == 0

    street = report["street"]
    assert street["photos"] == 3
    assert set(street["per_class"]) == {*TARGET_PARENTS, "overall", "other"}
    overall = street["per_class"]["overall"]
    assert overall["boxes"] == 6 and 0 <= overall["found"] <= 6
    for row in street["per_class"].values():
        for key in ("found_rate", "class_right_rate", "hit10_rate"):
            assert row[key] is None or 0 <= row[key] <= 1
    assert street["groups_per_photo"] > 0 and street["spurious_per_photo"] >= 0
    fine = street["per_fine_class"]  # the demo's "pants" and "skirts" are finer than "bottom"
    assert fine["overall"]["boxes"] == 3
    assert set(fine) - {"trousers", "skirt"} == {"overall", "overall, stocked"}
    assert fine["overall, stocked"]["boxes"] <= 3 and fine["overall"]["shop_products"] is None
    for row in fine.values():
        assert row["class_p10"] is None or 0 <= row["class_p10"] <= 1
        if row["boxes"]:
            assert row["class_hit10_rate"] <= row["hit10_rate"]
    assert street["p50_ms"] > 0 and "detect" in street["stages_p50_ms"]
    assert 0 <= street["main_found"] <= 3
    assert street["main_first_rate"] is None or 0 <= street["main_first_rate"] <= 1

    products = report["products"]
    assert products["queries"] == 6
    for key in ("same_type", "same_class", "same_parent", "same_type_colour"):
        assert 0 <= products[key] <= 1
    assert products["same_parent"] >= products["same_class"] >= products["same_type"]
    assert products["same_type"] >= products["same_type_colour"]
    # the demo's colours are shopper names: every query names one, exact label or not
    assert products["named"] == 6 and 0 <= products["same_type_colour_name"] <= 1
    assert products["same_colour_name"] >= products["same_type_colour_name"]
    assert sum(row["queries"] for row in products["per_colour"].values()) == 6
    assert report["street"]["colour_column"] is None
    assert products["same_type"] > 0, "a demo product's category neighbours come back"
    assert 0 <= products["own_first_rate"] <= 1  # every demo product's type names a class

    text = markdown.read_text()
    assert text.startswith("# Benchmarks") and "kept" in text
    assert "## End to end: photos to products (issue #17)" in text
    assert "| **overall** | 6 |" in text
    assert "**At the class level**" in text and "| **overall** |  | 3 |" in text
    # A variant is scored on the same indexed catalog: a detector that keeps almost nothing
    # finds at most what the defaults found.
    strict = report["variants"]["strict"]
    assert strict["settings"] == {"detector": {"min_score": 0.99}}
    assert strict["street"]["per_class"]["overall"]["found"] <= overall["found"]
    assert strict["products"]["queries"] == 6
    assert "Main garment first:" in text and "the product's own class first:" in text
    assert "**Per colour**" in text and "Street boxes: no colour figures" in text
    assert "**Variants**" in text and '| strict `{"detector": {"min_score": 0.99}}` |' in text
    sheets = sorted(p.name for p in (tmp_path / "sheets").iterdir())
    assert [s.split("-")[0] for s in sheets] == ["product", "product", "street", "street"]
    assert all(s.endswith(".jpg") for s in sheets)

    again = runner.invoke(main, args)
    assert again.exit_code != 0 and "already holds a catalog" in again.output


@pytest.mark.parametrize(
    ("variant", "message"),
    [
        ("nameless", "want NAME=JSON object"),
        ("x=[1]", "want NAME=JSON object"),
        ("x={not json", "Expecting property name"),
        ('x={"ingest": {"detect": true}}', "only recommender, detector, gateway"),
        ('x={"detector": {"min_scor": 0.5}}', "detector has no setting min_scor"),
        ('x={"detector": {"min_score": 7}}', "invalid detector settings"),
        ('x={"recommender": 3}', "must be an object of settings"),
    ],
)
def test_a_bad_variant_is_refused_before_any_work(
    runner: CliRunner, tmp_path: Path, variant: str, message: str
) -> None:
    _catalog(tmp_path / "catalog", DemoCatalog.generate(12, seed=1))
    _street(tmp_path / "street", DemoCatalog.generate(12, seed=1), photos=1)
    args = [
        "eval-e2e",
        "--catalog", str(tmp_path / "catalog"),
        "--street", str(tmp_path / "street"),
        "--variant", variant,
    ]  # fmt: skip
    result = runner.invoke(main, args)
    assert result.exit_code == 2, result.output
    assert "--variant" in result.output and message in result.output


def test_held_out_photos_are_those_the_shipped_models_never_trained_on(tmp_path: Path) -> None:
    from lab.detector.data import read_boxes, split
    from lab.evaluate.e2e import choose_photos, read_street
    from shared.errors import ConfigurationError

    _street(tmp_path / "street", DemoCatalog.generate(12, seed=1), photos=10)
    photos = read_street(tmp_path / "street")
    chosen = choose_photos(photos, "held-out")
    _, detector_val = split(read_boxes(tmp_path / "street"), 0.3, seed=0)
    assert [p.path.name for p in chosen] == [item.path.name for item in detector_val]
    assert len(chosen) == 3 and choose_photos(photos, "all") == photos
    with pytest.raises(ConfigurationError, match="held-out"):
        choose_photos(photos, "some")
