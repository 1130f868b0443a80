"""``POST /recommend`` against ``lookalike run``: the demo shop crawled and ingested by the
embedded stack, photos uploaded over HTTP as a storefront would."""

from __future__ import annotations

import io
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from services.demo_shop import pages
from services.demo_shop.catalog import DemoCatalog, compose_outfit, render_image
from services.demo_shop.vocabulary import LOWER_BODY
from services.detector.client import make_detector
from shared.settings import Settings
from tests.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

DEMO = DemoCatalog.generate(48, seed=0)  # what tests/stack.py's `lookalike run` serves


@pytest.fixture(scope="module")
def ingested(stack: Stack) -> Stack:
    """Wait until the demo shop is crawled and every image is indexed."""
    deadline = time.monotonic() + 420
    while time.monotonic() < deadline:
        status = httpx.get(f"{stack.url}/status", timeout=10).json()
        images = status["images"]
        if (
            status["products_active"] >= len(DEMO.products)
            and images.get("done", 0) > 0
            and images.get("pending", 0) + images.get("processing", 0) == 0
        ):
            return stack
        time.sleep(1)
    raise AssertionError(f"the demo shop was not ingested in time:\n{stack.log.read_text()}")


def _recommend(stack: Stack, photo: bytes, **fields: str) -> dict:
    response = httpx.post(
        f"{stack.url}/recommend",
        files={"image": ("photo.jpg", photo, "image/jpeg")},
        data=fields,
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_uploading_a_product_photo_returns_that_product_first(ingested: Stack) -> None:
    for product in DEMO.products[:6]:
        body = _recommend(ingested, render_image(product))
        [group] = body["groups"]
        first = group["recommendations"][0]
        assert first["url"] == ingested.shop_url + pages.product_path(product), group
        assert first["title"] == product.title
        assert body["timings_ms"]["total"] > 0
        assert body["model_version"]


def test_category_override_metric_and_more_like_this(ingested: Stack) -> None:
    product = DEMO.products[0]
    other = next(p for p in DEMO.products if p.category != product.category)
    body = _recommend(ingested, render_image(product), category=other.category, metric="l1")
    titles = {p.title for p in DEMO.products if p.category == other.category}
    recommendations = body["groups"][0]["recommendations"]
    assert recommendations and {r["title"] for r in recommendations} <= titles
    product_id = body["groups"][0]["recommendations"][0]["id"]
    more = httpx.post(f"{ingested.url}/recommend", json={"product_id": product_id}, timeout=60)
    assert more.status_code == 200, more.text
    assert product_id not in [r["id"] for r in more.json()["groups"][0]["recommendations"]]


def test_a_photo_of_two_garments_gives_two_groups(ingested: Stack, tmp_path: Path) -> None:
    top, bottom = DEMO.get("DS-00014"), DEMO.get("DS-00008")  # a top and a skirt
    assert top.category == "tops" and bottom.category in LOWER_BODY
    photo = compose_outfit(top, bottom)
    detector = make_detector(Settings(_env_file=None, data_dir=tmp_path))
    image = Image.open(io.BytesIO(photo.jpeg)).convert("RGB")
    found = detector.detect([image])[0].detections
    if len(found) < 2:
        pytest.skip(
            f"the detector finds {len(found)} garment(s) in the outfit photo (detector quality, "
            "not the gateway's)"
        )
    body = _recommend(ingested, photo.jpeg)
    assert len(body["groups"]) == len(found) == 2, body["groups"]
    for group in body["groups"]:
        x0, y0, x1, y1 = group["box"]
        assert 0 <= x0 < x1 <= 480 and 0 <= y0 < y1 <= 640
        assert group["recommendations"]
    titles = [[r["title"] for r in group["recommendations"]] for group in body["groups"]]
    worn_top = next(t for t in titles if top.title in t)
    worn_bottom = next(t for t in titles if t is not worn_top)
    assert worn_top[0] == top.title
    assert bottom.title in worn_bottom[:5]  # a street crop, not the studio shot: near the top


def test_metrics_and_readiness(ingested: Stack) -> None:
    ready = httpx.get(f"{ingested.url}/readyz", timeout=10).json()
    assert ready["checks"]["index"]["ok"] is True
    metrics = httpx.get(f"{ingested.url}/metrics", timeout=10).text
    assert "lookalike_recommend_stage_seconds_bucket" in metrics
