"""``crops.remove_background``: the crop handed to the embedder and the colour descriptor is
the garment alone (white around it); a crop whose mask falls back stays whole; the setting
names the vectors it makes (the model version's ``+cutout``)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from services.embedder.provider import base_version, variant_of
from shared.colour import colour_descriptor, grid_lab, weighted_descriptor
from shared.crops import CUTOUT_FILL, garment_crops
from shared.detection import FOREGROUND, Detection, DetectionResult
from shared.settings import CropSettings, Settings

pytestmark = pytest.mark.unit


def _street(size: tuple[int, int] = (300, 360)) -> tuple[Image.Image, tuple[float, ...]]:
    """A red garment on a busy green-and-grey street, and its tight box."""
    rng = np.random.default_rng(3)
    w, h = size
    street = np.zeros((h, w, 3), np.uint8)
    street[: h // 2] = (90, 140, 70)
    street[h // 2 :] = (120, 120, 125)
    street = np.clip(street + rng.normal(0, 6, street.shape), 0, 255).astype(np.uint8)
    img = Image.fromarray(street)
    box = (0.3 * w, 0.2 * h, 0.7 * w, 0.8 * h)
    ImageDraw.Draw(img).rectangle(box, fill=(190, 30, 40))
    return img, box


def _detected(img: Image.Image, box: tuple[float, ...]) -> DetectionResult:
    x0, y0, x1, y1 = box
    region = (x0 - 30, y0 - 30, x1 + 30, y1 + 30)
    return DetectionResult(
        img.width,
        img.height,
        [Detection(box=(x0, y0, x1, y1), category="top", score=0.9, crop_box=region)],
        path="model",
    )


def test_the_garment_alone_is_embedded_and_described() -> None:
    img, box = _street()
    result = _detected(img, box)
    [kept] = garment_crops(img, img.size, result, detect=True)
    [alone] = garment_crops(img, img.size, result, detect=True, remove_background=True)
    assert not alone.mask.fallback
    # The same crop, mask and named colour; only what is embedded and described changes.
    assert alone.picture.size == kept.picture.size and alone.box == kept.box
    assert alone.mask.pixels.tobytes() == kept.mask.pixels.tobytes()
    assert (alone.colour_name, alone.colour_p) == (kept.colour_name, kept.colour_p)
    pixels = np.asarray(alone.picture)
    garment = alone.mask.resized(alone.picture.size)
    assert np.all(pixels[~garment] == CUTOUT_FILL)
    assert np.array_equal(pixels[garment], np.asarray(kept.picture)[garment])
    # The street is gone from the picture's corners, the garment kept at its centre.
    assert tuple(pixels[0, 0]) == CUTOUT_FILL
    w, h = alone.picture.size
    assert tuple(pixels[h // 2, w // 2]) == (190, 30, 40)
    lab = grid_lab(kept.picture)
    assert np.array_equal(alone.colour, weighted_descriptor(lab, alone.mask.pixels))
    assert np.array_equal(kept.colour, colour_descriptor(kept.picture, lab))
    assert alone.colour.dtype == np.float32
    assert float(np.linalg.norm(alone.colour)) == pytest.approx(1.0, abs=1e-5)


def test_a_blank_photo_or_a_garment_filling_the_frame_stays_whole() -> None:
    """The mask falls back (nothing to separate): the crop is embedded as it is, never an
    empty or all-white picture."""
    blank = Image.new("RGB", (120, 160), (250, 250, 250))
    filled = Image.new("RGB", (200, 240), (20, 40, 120))
    for img in (blank, filled):
        whole = DetectionResult(
            img.width,
            img.height,
            [Detection((0.0, 0.0, float(img.width), float(img.height)), None, 1.0)],
            path=FOREGROUND,
        )
        [kept] = garment_crops(img, img.size, whole, detect=False)
        [alone] = garment_crops(img, img.size, whole, detect=False, remove_background=True)
        assert alone.mask.fallback
        assert alone.picture.tobytes() == kept.picture.tobytes() == img.tobytes()
        assert np.array_equal(alone.colour, kept.colour)
        assert alone.colour_name == kept.colour_name is not None


def test_a_tiny_crop_is_cut_out_without_error() -> None:
    img, box = _street((24, 30))
    [alone] = garment_crops(img, img.size, _detected(img, box), detect=True, remove_background=True)
    assert alone.picture.size[0] > 0 and alone.picture.size[1] > 0
    assert np.isfinite(alone.colour).all()


def test_the_setting_names_its_vectors(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    assert settings.crops.remove_background is False
    assert settings.crops.variant == ""
    assert CropSettings(remove_background=True).variant == "cutout"
    monkeypatch.setenv("LOOKALIKE_CROPS__REMOVE_BACKGROUND", "true")
    assert Settings().crops.variant == "cutout"
    assert variant_of("street-lite2-668691a6ad+cutout") == "cutout"
    assert base_version("street-lite2-668691a6ad+cutout") == "street-lite2-668691a6ad"
    # A version with no crops' variant, or a "+" that names none, is left as it is.
    assert variant_of("street-lite2-668691a6ad") == ""
    assert base_version("some+model") == "some+model"
