"""The detector's cheap path and its routing, on real generated images (no model needed)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from services.demo_shop import DemoCatalog, DemoProduct, compose_outfit, render_image
from services.detector.foreground import analyse_foreground, paint_background
from services.detector.postprocess import iou_matrix
from services.detector.service import FOREGROUND, Detector, crop_detections
from shared.detection import WHOLE_IMAGE, DetectionResult, GarmentDetector, grow_box
from shared.settings import DetectorSettings

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def products() -> list[DemoProduct]:
    return list(DemoCatalog.generate(24, seed=5))


def _decode(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def _ink_box(img: Image.Image) -> np.ndarray:
    """The box of pixels far from the border colour: where the product surely is."""
    arr = np.asarray(img, dtype=np.float32)
    border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
    ink = np.abs(arr - np.median(border, axis=0)).max(axis=2) > 60
    ys, xs = np.nonzero(ink)
    return np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)


def side_by_side(a: Image.Image, b: Image.Image, gap: int = 40) -> Image.Image:
    """Two product shots next to each other on white, as a shop's "complete the look" image."""
    canvas = Image.new("RGB", (a.width + b.width + gap, max(a.height, b.height)), (255, 255, 255))
    canvas.paste(a, (0, 0))
    canvas.paste(b, (a.width + gap, 0))
    return canvas


def test_every_demo_product_is_one_tight_box(products: list[DemoProduct]) -> None:
    detector = Detector(DetectorSettings())
    for product in products:
        for view in ("front", "back"):
            img = _decode(render_image(product, view))
            [result] = detector.detect([img])
            assert result.path == FOREGROUND, (product.category, view)
            assert not result.fallback
            assert len(result.detections) == 1, (product.category, view, result)
            box = np.array([result.detections[0].box], np.float32)
            assert iou_matrix(box, _ink_box(img))[0, 0] >= 0.85, (product.category, view)


def test_two_products_side_by_side_are_two_boxes(products: list[DemoProduct]) -> None:
    left, right = _decode(render_image(products[0])), _decode(render_image(products[3]))
    composite = side_by_side(left, right)
    [result] = Detector(DetectorSettings()).detect([composite])
    assert result.path == FOREGROUND
    assert len(result.detections) == 2
    centres = sorted((d.box[0] + d.box[2]) / 2 for d in result.detections)
    assert centres[0] < left.width < centres[1]
    for detection in result.detections:
        x0, _, x1, _ = detection.box
        assert x1 <= left.width or x0 >= left.width  # no box spans both products
        assert detection.crop_box is not None
        assert detection.crop_box[0] <= x0 and detection.crop_box[2] >= x1


def test_street_photo_is_not_a_product_shot(products: list[DemoProduct]) -> None:
    photo = compose_outfit(products[0], products[1])
    assert not analyse_foreground(_decode(photo.jpeg)).plain


def test_foreground_only_detector_falls_back_on_street_photos(products: list[DemoProduct]) -> None:
    photo = _decode(compose_outfit(products[0], products[1]).jpeg)
    [result] = Detector(DetectorSettings()).detect([photo])
    assert result.fallback and result.path == WHOLE_IMAGE
    assert result.detections[0].box == (0.0, 0.0, float(photo.width), float(photo.height))


def _odd_images() -> dict[str, Image.Image]:
    rng = np.random.default_rng(0)
    rgba = Image.new("RGBA", (300, 400), (0, 0, 0, 0))
    rgba.paste(Image.new("RGBA", (100, 200), (200, 30, 30, 255)), (100, 100))
    return {
        "1x1": Image.new("RGB", (1, 1), (10, 20, 30)),
        "tiny": Image.new("RGB", (12, 9), (200, 10, 10)),
        "thin": Image.new("RGB", (2000, 3), (120, 120, 120)),
        "huge-white": Image.new("RGB", (6000, 4000), (255, 255, 255)),
        "grayscale": Image.fromarray(rng.integers(0, 255, (240, 320), dtype=np.uint8), "L"),
        "rgba": rgba,
        "palette": Image.new("P", (64, 64), 3),
        "noise": Image.fromarray(rng.integers(0, 255, (300, 300, 3), dtype=np.uint8)),
        "black": Image.new("RGB", (320, 240), (0, 0, 0)),
        "16-bit": Image.fromarray(rng.integers(0, 65535, (50, 60), dtype=np.uint16)),
    }


def test_odd_images_never_raise() -> None:
    detector: GarmentDetector = Detector(DetectorSettings())
    images = _odd_images()
    results = detector.detect(list(images.values()))
    assert len(results) == len(images)
    for (name, img), result in zip(images.items(), results, strict=True):
        assert isinstance(result, DetectionResult)
        assert (result.width, result.height) == img.size, name
        assert result.detections, name
        for detection in result.detections:
            x0, y0, x1, y1 = detection.region
            assert 0 <= x0 < x1 <= img.width and 0 <= y0 < y1 <= img.height, name
    by_name = dict(zip(images, results, strict=True))
    assert by_name["1x1"].fallback and by_name["huge-white"].fallback
    assert by_name["rgba"].path == FOREGROUND  # transparent -> white background, red product
    assert by_name["rgba"].detections[0].box == pytest.approx((100, 100, 200, 300), abs=6)


def test_empty_batch() -> None:
    assert Detector(DetectorSettings()).detect([]) == []


def test_max_detections_and_margin(products: list[DemoProduct]) -> None:
    shots = [_decode(render_image(p)) for p in products[:3]]
    row = side_by_side(side_by_side(shots[0], shots[1]), shots[2])
    settings = DetectorSettings(max_detections=2, margin=0.1)
    [result] = Detector(settings).detect([row])
    assert len(result.detections) == 2
    for detection in result.detections:
        assert detection.crop_box == grow_box(detection.box, 0.1, row.width, row.height)


def test_grow_box_clips_to_the_image() -> None:
    assert grow_box((0, 0, 100, 50), 0.1, 105, 200) == (0, 0, 105, 55)


def test_paint_background_keeps_the_product(products: list[DemoProduct]) -> None:
    img = _decode(render_image(products[2]))
    painted = paint_background(img, (0, 255, 0))
    arr, before = np.asarray(painted), np.asarray(img)
    assert tuple(arr[2, 2]) == (0, 255, 0) and tuple(arr[-3, -3]) == (0, 255, 0)
    x0, y0, x1, y1 = (int(v) for v in _ink_box(img)[0])
    centre = (y0 + y1) // 2, (x0 + x1) // 2
    assert np.abs(arr[centre].astype(int) - before[centre].astype(int)).max() <= 1


def test_paint_background_leaves_busy_images_alone(products: list[DemoProduct]) -> None:
    photo = _decode(compose_outfit(products[0], products[1]).jpeg)
    assert np.array_equal(np.asarray(paint_background(photo)), np.asarray(photo))


def test_crops_with_background_removal(products: list[DemoProduct]) -> None:
    composite = side_by_side(_decode(render_image(products[0])), _decode(render_image(products[1])))
    settings = DetectorSettings(remove_background=True)
    detector = Detector(settings)
    [result] = detector.detect([composite])
    crops = detector.crops(composite, result)
    assert len(crops) == 2
    for crop, detection in zip(crops, result.detections, strict=True):
        x0, y0, x1, y1 = detection.region
        assert crop.size == (round(x1) - round(x0), round(y1) - round(y0))
        assert crop.mode == "RGB"
        assert tuple(np.asarray(crop)[0, 0]) == (255, 255, 255)
    plain = crop_detections(composite, result)
    assert [c.size for c in plain] == [c.size for c in crops]
