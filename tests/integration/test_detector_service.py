"""The detector service on a real port (uvicorn) and its HTTP client, with generated images."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import uvicorn
from PIL import Image

from services.demo_shop import DemoCatalog, compose_outfit, render_image
from services.detector.api import create_app
from services.detector.client import MAX_IMAGES, HttpDetector, make_detector
from shared.detection import GarmentDetector
from shared.errors import ServiceUnavailableError
from shared.settings import ImageSettings, Settings
from tests.stack import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Settings]]:
    data_dir: Path = tmp_path_factory.mktemp("detector-data")
    settings = Settings(data_dir=data_dir, images=ImageSettings(max_image_pixels=3_000_000))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=port, log_config=None, lifespan="on"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the detector service did not become ready")
        time.sleep(0.2)
    try:
        yield url, settings
    finally:
        server.should_exit = True
        thread.join(30)


def _png(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, "PNG")
    return buffer.getvalue()


def _shots() -> tuple[Image.Image, Image.Image, Image.Image]:
    products = DemoCatalog.generate(8, seed=4).products
    one = Image.open(io.BytesIO(render_image(products[0]))).convert("RGB")
    two = Image.new("RGB", (840, 500), (255, 255, 255))
    two.paste(one, (0, 0))
    two.paste(Image.open(io.BytesIO(render_image(products[1]))).convert("RGB"), (440, 0))
    street = Image.open(io.BytesIO(compose_outfit(products[0], products[2]).jpeg)).convert("RGB")
    return one, two, street


def test_health_and_readiness(service: tuple[str, Settings]) -> None:
    url, _ = service
    assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{url}/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True


def test_client_batch_matches_in_process(service: tuple[str, Settings]) -> None:
    url, settings = service
    client = make_detector(settings.model_copy(update={"detector_url": url}))
    assert isinstance(client, HttpDetector) and isinstance(client, GarmentDetector)
    images = list(_shots())
    remote = client.detect(images)
    local = make_detector(settings).detect(images)
    assert [r.path for r in remote] == [r.path for r in local]
    assert [len(r.detections) for r in remote][:2] == [1, 2]
    for a, b in zip(remote, local, strict=True):
        assert (a.width, a.height, a.fallback) == (b.width, b.height, b.fallback)
        for da, db in zip(a.detections, b.detections, strict=True):
            assert da.category == db.category
            assert np.allclose(da.box, db.box, atol=1.0)


def test_client_splits_long_batches(service: tuple[str, Settings]) -> None:
    url, _ = service
    images = [Image.new("RGB", (40 + i, 30), (i * 10, 0, 0)) for i in range(MAX_IMAGES + 3)]
    results = HttpDetector(url, timeout_s=30).detect(images)
    assert [r.width for r in results] == [img.width for img in images]


def test_odd_but_valid_images_get_answers(service: tuple[str, Settings]) -> None:
    url, _ = service
    odd = [
        Image.new("RGB", (1, 1)),
        Image.new("L", (64, 48), 128),
        Image.new("RGBA", (50, 50), (0, 0, 0, 0)),
    ]
    files = [("image", (f"{i}.png", _png(img), "image/png")) for i, img in enumerate(odd)]
    response = httpx.post(f"{url}/detect", files=files, timeout=30)
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["width"] for r in results] == [1, 64, 50]
    assert all(r["detections"] for r in results)
    assert results[0]["fallback"] is True and results[0]["path"] == "whole-image"


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        (b"<html>not an image</html>", 415, "unsupported_media_type"),
        (_png(Image.new("RGB", (20, 20)))[:40], 422, "corrupt_image"),
        (_png(Image.new("L", (2000, 2000))), 413, "image_too_large"),
    ],
    ids=["html", "truncated", "too-many-pixels"],
)
def test_bad_images_are_clear_4xx(
    service: tuple[str, Settings], payload: bytes, status: int, code: str
) -> None:
    url, _ = service
    good = _png(Image.new("RGB", (32, 32)))
    files = [("image", ("a.png", good, "image/png")), ("image", ("b.bin", payload, "image/png"))]
    response = httpx.post(f"{url}/detect", files=files, timeout=30)
    assert response.status_code == status
    body = response.json()
    assert body["error"] == code and body["detail"].startswith("image 1:")


def test_requests_without_images(service: tuple[str, Settings]) -> None:
    url, _ = service
    response = httpx.post(f"{url}/detect", data={"x": "1"}, timeout=10)
    assert 400 <= response.status_code < 500
    too_many = [("image", (f"{i}.png", b"x", "image/png")) for i in range(MAX_IMAGES + 1)]
    assert 400 <= httpx.post(f"{url}/detect", files=too_many, timeout=10).status_code < 500


def test_client_reports_a_down_service() -> None:
    client = HttpDetector(f"http://127.0.0.1:{free_port()}", timeout_s=1)
    with pytest.raises(ServiceUnavailableError):
        client.detect([Image.new("RGB", (32, 32))])


def test_a_class_can_have_its_own_lowest_score(tmp_path: Path) -> None:
    """``class_min_score`` drops a class's weaker boxes (or the class), and can keep a class's
    boxes below ``min_score``; other classes are untouched."""
    shop = DemoCatalog.generate(24, seed=5)
    tops = [p for p in shop.products if p.category in {"tops", "outerwear"}]
    bottoms = [p for p in shop.products if p.category in {"pants", "skirts"}]
    photos = [
        Image.open(io.BytesIO(compose_outfit(tops[n], bottoms[n], seed=n).jpeg)).convert("RGB")
        for n in range(3)
    ]

    def detections(**scores: float) -> list[list[tuple[str | None, float]]]:
        settings = Settings(data_dir=tmp_path)
        detector = settings.detector.model_copy(update={"class_min_score": scores})
        found = make_detector(settings.model_copy(update={"detector": detector})).detect(photos)
        return [[(d.category, d.score) for d in result.detections] for result in found]

    plain = detections()
    classes = {name for photo in plain for name, _ in photo}
    assert classes, plain
    dropped = next(iter(sorted(classes, key=str)))
    without = detections(**{str(dropped): 1.0})
    assert all(name != dropped for photo in without for name, _ in photo)
    for before, after in zip(plain, without, strict=True):
        assert [d for d in before if d[0] != dropped] == [d for d in after if d[0] != dropped]
    lenient = detections(**dict.fromkeys(map(str, classes), 0.05))
    assert sum(map(len, lenient)) >= sum(map(len, plain))


@pytest.mark.parametrize(
    ("scores", "message"),
    [({"shoes": 0.5}, "no detector class 'shoes'"), ({"bag": 1.5}, "between 0 and 1")],
)
def test_class_min_score_names_detector_classes_and_scores(
    scores: dict[str, float], message: str
) -> None:
    from pydantic import ValidationError

    from shared.settings import DetectorSettings

    with pytest.raises(ValidationError, match=message):
        DetectorSettings(class_min_score=scores)
