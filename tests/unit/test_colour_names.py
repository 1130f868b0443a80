"""The colour vocabulary, the garment mask and the named colour of a crop (shared.colour,
shared.mask), on generated crops: the same code the catalog and a shopper's photo go through."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from services.demo_shop.vocabulary import COLOURS as DEMO_COLOURS
from shared.colour import (
    COLOUR_MODEL_FILE,
    COLOUR_NAMES,
    FEATURE_DIM,
    SHOPPER_COLOURS,
    ColourModel,
    colour_model,
    colour_name,
    grid_lab,
    label_colour,
    name_colour,
    name_lab,
)
from shared.crops import garment_crops
from shared.detection import FOREGROUND, Detection, DetectionResult
from shared.errors import ConfigurationError, InvalidInputError
from shared.mask import MASK_SIDE, garment_mask, keep_garment
from shared.words import COLOURS, read_intent

pytestmark = pytest.mark.unit


def garment_on(
    colour: tuple[int, int, int],
    background: tuple[int, int, int] = (255, 255, 255),
    size: tuple[int, int] = (200, 240),
) -> tuple[Image.Image, tuple[float, float, float, float]]:
    """A T-shirt-like shape of one solid colour on a plain background, shaded as a photo of
    it is (light from the left, a little sensor noise), and its tight box."""
    img = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(img)
    w, h = size
    body = (0.3 * w, 0.2 * h, 0.7 * w, 0.85 * h)
    draw.rectangle(body, fill=colour)
    draw.polygon([(0.3 * w, 0.2 * h), (0.12 * w, 0.42 * h), (0.3 * w, 0.5 * h)], fill=colour)
    draw.polygon([(0.7 * w, 0.2 * h), (0.88 * w, 0.42 * h), (0.7 * w, 0.5 * h)], fill=colour)
    pixels = np.asarray(img).astype(np.float32)
    garment = np.all(pixels == np.asarray(colour, np.float32), axis=2, keepdims=True)
    shade = 1.0 - 0.25 * np.linspace(0.0, 1.0, w)[None, :, None]
    noise = np.random.default_rng(0).normal(0.0, 4.0, pixels.shape)
    shaded = np.where(garment, np.clip(pixels * shade + noise, 0, 255), pixels)
    return Image.fromarray(shaded.astype(np.uint8)), (0.12 * w, 0.2 * h, 0.88 * w, 0.85 * h)


# ------------------------------------------------------------------------------ vocabulary


def test_every_colour_word_means_one_shopper_name_and_text_search_keeps_its_broad_colours() -> None:
    words = [w for c in COLOUR_NAMES for w in c.words]
    assert len(words) == len(set(words))
    assert all(c.name in c.words for c in COLOUR_NAMES)
    assert {c.family for c in COLOUR_NAMES} == set(COLOURS)
    assert {w for ws in COLOURS.values() for w in ws} == set(words)
    # Text search reads the broad colour, as before: a navy backpack is a blue one.
    assert read_intent("navy backpack").colour == "blue"
    assert read_intent("maroon kurta").colour == "red"
    assert colour_name("Maroon") == "burgundy"
    assert colour_name("navy") == "navy"
    assert colour_name("tartan") is None


@pytest.mark.parametrize(
    ("label", "name"),
    [
        ("Navy Blue", "navy"),
        ("Off White", "white"),
        ("Cream", "white"),
        ("Maroon", "burgundy"),
        ("Steel", "grey"),
        ("Grey Melange", "grey"),
        ("Turquoise Blue", "blue"),
        ("Khaki", "olive"),
        ("Coffee Brown", "brown"),
        ("Multi", None),
        ("", None),
        ("Metallic", None),
        ("Plaid", None),
    ],
)
def test_catalog_colour_labels_read_onto_shopper_names(label: str, name: str | None) -> None:
    assert label_colour(label) == name


# ------------------------------------------------------------------------------------- mask


def test_the_mask_keeps_the_garment_and_drops_the_background() -> None:
    img, box = garment_on((28, 42, 92))
    mask = garment_mask(grid_lab(img), box, img.size)
    small = img.resize((MASK_SIDE, MASK_SIDE), Image.Resampling.NEAREST)
    truth = np.asarray(small).min(axis=2) < 200
    iou = (mask.pixels & truth).sum() / (mask.pixels | truth).sum()
    assert not mask.fallback
    assert iou > 0.85
    cut = np.asarray(keep_garment(img, mask, (0, 255, 0)))
    assert tuple(cut[5, 5]) == (0, 255, 0)
    assert tuple(cut[120, 100]) == tuple(np.asarray(img)[120, 100])


@pytest.mark.parametrize(
    "case", ["blank photo", "garment fills the frame", "tiny crop", "box of one pixel"]
)
def test_a_mask_that_would_cover_nothing_falls_back_on_the_box_centre(case: str) -> None:
    if case == "blank photo":
        img, box = Image.new("RGB", (300, 200), (250, 250, 250)), (0.0, 0.0, 300.0, 200.0)
    elif case == "garment fills the frame":
        img, box = Image.new("RGB", (120, 160), (150, 20, 40)), (0.0, 0.0, 120.0, 160.0)
    elif case == "tiny crop":
        img, box = Image.new("RGB", (1, 1), (10, 10, 10)), (0.0, 0.0, 1.0, 1.0)
    else:
        img, box = garment_on((200, 30, 30))[0], (100.0, 100.0, 100.5, 100.5)
    mask = garment_mask(grid_lab(img), box, img.size)
    assert mask.pixels.shape == (MASK_SIDE, MASK_SIDE)
    assert mask.pixels.any()
    if case != "box of one pixel":
        assert mask.fallback
    name, p = name_colour(img, mask.pixels)
    assert name in SHOPPER_COLOURS
    assert 0.0 < p <= 1.0
    if case == "garment fills the frame":
        assert name in {"burgundy", "red"}


def test_the_mask_refuses_a_grid_of_the_wrong_size() -> None:
    with pytest.raises(ValueError, match="64x64x3"):
        garment_mask(np.zeros((32, 32, 3), np.float32), None, (32, 32))


# ------------------------------------------------------------------------------ named colour

# Each demo-shop colour (the shop's RGB for each shopper name) as a solid garment on white.
SOLID = {name: DEMO_COLOURS[name] for name in SHOPPER_COLOURS}


# Measured misses of the shipped model (docs/lab/2026-12-colour.md): a flat, saturated demo
# beige and brown are read as grey; the catalog's browns are mostly dark leather.
KNOWN_MISSES = {"beige", "brown"}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(
            name,
            marks=pytest.mark.xfail(reason="a known miss of the shipped model", strict=False),
        )
        if name in KNOWN_MISSES
        else name
        for name in sorted(SOLID)
    ],
)
def test_a_solid_colour_garment_is_named_its_colour(name: str) -> None:
    img, box = garment_on(SOLID[name])
    mask = garment_mask(grid_lab(img), box, img.size)
    got, p = name_colour(img, mask.pixels)
    assert got == name, f"{name} garment named {got} ({p:.2f})"
    assert p > 1.0 / len(SHOPPER_COLOURS)


def test_naming_refuses_a_mask_that_keeps_nothing_or_does_not_fit() -> None:
    img, _ = garment_on((28, 42, 92))
    with pytest.raises(InvalidInputError, match="keeps no pixel"):
        name_colour(img, np.zeros((MASK_SIDE, MASK_SIDE), bool))
    with pytest.raises(InvalidInputError, match="a mask"):
        name_colour(img, np.ones((10, 10), bool))
    with pytest.raises(InvalidInputError, match="keeps no pixel"):
        name_lab(grid_lab(img), np.full((MASK_SIDE, MASK_SIDE), -1.0))


def test_the_shipped_model_loads_with_its_card_and_a_broken_one_is_refused() -> None:
    card = json.loads(COLOUR_MODEL_FILE.read_text())
    model = colour_model()
    assert set(model.classes) == set(SHOPPER_COLOURS)
    assert card["model"]["version"] == model.version
    assert card["command"].startswith("python -m lab.colour.train")
    assert card["metrics"]["validation"]["n"] > 0
    probabilities = model.probabilities(np.zeros((2, FEATURE_DIM)))
    assert probabilities.shape == (2, len(model.classes))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    broken = model.as_json()
    broken["layers"][0]["weight"] = [[0.0]]
    with pytest.raises(ConfigurationError, match="does not fit"):
        ColourModel.from_json(broken, "broken.json")
    with pytest.raises(ConfigurationError, match="not a colour model"):
        ColourModel.from_json({"classes": ["navy"]}, "empty.json")
    assert ColourModel.from_json(model.as_json()).version == model.version


def test_a_model_file_that_is_not_json_is_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shared.colour

    bad = tmp_path / "colour_names.json"
    bad.write_text("{not json")
    monkeypatch.setattr(shared.colour, "COLOUR_MODEL_FILE", bad)
    colour_model.cache_clear()
    try:
        with pytest.raises(ConfigurationError, match="cannot read the colour model"):
            colour_model()
    finally:
        colour_model.cache_clear()


# ------------------------------------------------------------------------------ the crops


def test_garment_crops_carry_the_mask_and_the_named_colour() -> None:
    img, box = garment_on((28, 42, 92), size=(400, 480))
    result = DetectionResult(
        img.width,
        img.height,
        [Detection(box=box, category="top", score=0.9, crop_box=(20.0, 60.0, 380.0, 440.0))],
        path="model",
    )
    [crop] = garment_crops(img, img.size, result, detect=True)
    assert crop.inner == pytest.approx((box[0] - 20, box[1] - 60, box[2] - 20, box[3] - 60))
    assert crop.mask.pixels.shape == (MASK_SIDE, MASK_SIDE)
    assert not crop.mask.fallback
    assert (crop.colour_name, crop.colour_p) == name_colour(crop.picture, crop.mask.pixels)
    assert crop.colour_name == "navy"
    # The catalog's framing (a product shot framed whole) masks the same way.
    whole = DetectionResult(
        img.width, img.height, [Detection(box=box, category=None, score=1.0)], path=FOREGROUND
    )
    [framed] = garment_crops(img, img.size, whole, detect=False)
    assert framed.box == pytest.approx(box)
    assert framed.inner == (0.0, 0.0, float(img.width), float(img.height))
    assert framed.colour_name == "navy"
