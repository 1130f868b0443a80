"""Labelled training sets: box crops cut as the detector cuts them, several sources read in the
primary source's classes through the taxonomy, and a validation split that stays primary."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lab.embedder.data import (
    combine,
    hold_out_photos,
    load_labelled,
    relabel,
    stratified_split,
    to_classes,
)
from shared.detection import grow_box, held_out
from shared.errors import InvalidInputError
from shared.settings import DetectorSettings

STREET = ("bags", "dresses", "footwear", "leggings", "pants", "tops")


def _folder(root: Path, counts: dict[str, int]) -> Path:
    for label, n in counts.items():
        (root / label).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (20, 30), (i * 20, 90, 30)).save(root / label / f"{i}_{label}.jpg")
    return root


def _boxes(root: Path, rows: list[tuple[str, str, tuple[int, int, int, int]]]) -> Path:
    (root / "images").mkdir(parents=True)
    path = root / "boxes.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["filename", "category", "x1", "y1", "x2", "y2"])
        for name, label, box in rows:
            if not (root / "images" / name).exists():
                img = Image.new("RGB", (200, 300), (200, 200, 200))
                img.paste((255, 0, 0), (0, 0, 100, 150))
                img.save(root / "images" / name)
            writer.writerow([name, label, *box])
    return path


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("Tshirts", "tops"),  # a class whose parent is a class of the set
        ("blouse", "tops"),
        ("Casual Shoes", "footwear"),
        ("purse", "bags"),
        ("Dresses", "dresses"),
        ("Track Pants", "pants"),
        ("jeans", "pants"),  # by alias: the taxonomy files jeans apart from trousers
        ("Stockings", "leggings"),
        ("Watches", None),  # jewellery: none of the classes
        ("scarf", None),
        ("not a garment at all", None),
    ],
)
def test_labels_are_read_in_the_primary_classes(label: str, expected: str | None) -> None:
    aliases = {"jeans": "pants", "stockings": "Leggings"}
    assert to_classes(label, STREET, {k: v.lower() for k, v in aliases.items()}) == expected


def test_box_crops_are_cut_with_the_detector_margin_once(tmp_path: Path) -> None:
    path = _boxes(
        tmp_path / "street",
        [
            ("a.jpg", "blouse", (10, 20, 110, 170)),
            ("a.jpg", "shoes", (50, 250, 90, 290)),
            ("b.jpg", "", (0, 0, 10, 10)),
            ("c.jpg", "bag", (30, 30, 20, 40)),
            ("missing.jpg", "bag", (0, 0, 10, 10)),
        ],
    )
    (tmp_path / "street" / "images" / "missing.jpg").unlink()
    crops = tmp_path / "crops"
    images = load_labelled(path, crops=crops)
    assert images.labels == ("blouse", "shoes")
    assert images.skipped == {"empty label": 1, "bad box": 1, "file not found": 1}
    margin = DetectorSettings().margin
    x0, y0, x1, y1 = grow_box((10, 20, 110, 170), margin, 200, 300)
    with Image.open(images.paths[0]) as crop:
        assert crop.size == (x1 - x0, y1 - y0)
    stamp = images.paths[0].stat().st_mtime_ns
    assert load_labelled(path, crops=crops).paths == images.paths
    assert images.paths[0].stat().st_mtime_ns == stamp  # cut once, then read from the cache


def test_combined_sources_validate_on_the_primary_only(tmp_path: Path) -> None:
    primary = load_labelled(_folder(tmp_path / "street", {"tops": 6, "pants": 6, "bags": 4}))
    boxes = load_labelled(
        _boxes(
            tmp_path / "photos",
            [
                ("a.jpg", "blouse", (0, 0, 50, 50)),
                ("a.jpg", "jeans", (0, 50, 50, 150)),
                ("a.jpg", "bracelet", (0, 0, 9, 9)),
            ],
        ),
        crops=tmp_path / "crops",
    )
    combined = combine(primary, [boxes], {"jeans": "pants"})
    assert combined.classes == primary.classes
    assert combined.labels[-2:] == ("tops", "pants")
    assert combined.domains == (0,) * 16 + (1, 1)
    assert combined.sources == (primary.source, boxes.source)
    assert combined.skipped == {f"{boxes.source}: not one of the classes": 1}
    train, val = stratified_split(combined, 0.5, 0)
    _, primary_val = stratified_split(primary, 0.5, 0)
    np.testing.assert_array_equal(val, primary_val)  # `eval --split val` on the primary
    assert {16, 17} <= set(train.tolist())
    assert combined.fingerprint() != primary.fingerprint()
    assert combined.subset([0, 17]).domains == (0, 1)


def test_an_alias_must_name_a_primary_class(tmp_path: Path) -> None:
    primary = load_labelled(_folder(tmp_path / "street", {"tops": 2, "pants": 2}))
    with pytest.raises(InvalidInputError, match="not classes of"):
        combine(primary, [primary], {"jeans": "trousers"})


def test_box_crops_hold_out_whole_photos_as_the_detector_does(tmp_path: Path) -> None:
    names = [f"{i:04d}.jpg" for i in range(10)]
    rows = [(name, label, (5, 5, 60, 90)) for name in names for label in ("blouse", "jeans")]
    images = load_labelled(_boxes(tmp_path / "photos", rows), crops=tmp_path / "crops")
    train, held = hold_out_photos(images, 0.3, seed=0)
    expected = {names[i] for i in held_out(len(names), 0.3, 0)}
    assert set(held.groups) == expected and len(expected) == 3
    assert not set(train.groups) & expected
    assert len(held) == 6 and len(train) == 14
    checks = relabel(held, ["pants", "tops"], {"jeans": "pants"})
    assert sorted(set(checks.labels)) == ["pants", "tops"]
    street = load_labelled(_folder(tmp_path / "street", {"tops": 2, "pants": 2}))
    with pytest.raises(InvalidInputError, match="not a boxes CSV"):
        hold_out_photos(street, 0.3)


def test_the_detector_holds_out_the_same_photos() -> None:
    """One split of the street photos for both models (``shared.detection.held_out``)."""
    from lab.detector.data import BoxedImage, split

    items = [BoxedImage(Path(f"{i:04d}.jpg"), np.zeros((0, 4)), np.zeros(0)) for i in range(20)]
    _, val = split(items, 0.3, 0)
    assert {item.path.name for item in val} == {f"{i:04d}.jpg" for i in held_out(20, 0.3, 0)}
