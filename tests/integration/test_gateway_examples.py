"""The storefront's example photos: listed, served as JPEGs, the same bytes every time, and a
clear 404 for a number that is not one of them."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from services.demo_shop import DemoCatalog, DemoShop
from services.gateway.app import create_app
from shared.db import Catalog, ImageResult, SourceIn
from shared.settings import Settings
from tests.gateway_support import gateway_settings
from tests.ingest_support import demo_items, demo_source

pytestmark = pytest.mark.integration


@pytest.fixture
def client(sqlite_catalog: Catalog, settings: Settings) -> Iterator[TestClient]:
    app = create_app(gateway_settings(settings.data_dir), catalog=sqlite_catalog)
    with TestClient(app) as test_client:
        yield test_client


def test_the_examples_are_listed_and_served_as_jpegs(client: TestClient) -> None:
    listed = client.get("/storefront/examples")
    assert listed.status_code == 200, listed.text
    examples = listed.json()
    assert 2 <= len(examples) <= 4
    for number, example in enumerate(examples, start=1):
        assert example["url"] == f"/storefront/examples/{number}.jpg"
        assert example["alt"].startswith("Street photo: ")
        photo = client.get(example["url"])
        assert photo.status_code == 200
        assert photo.headers["content-type"] == "image/jpeg"
        image = Image.open(io.BytesIO(photo.content))
        assert image.format == "JPEG"
        assert image.size == (example["width"], example["height"])
        assert client.get(example["url"]).content == photo.content  # drawn once, deterministic
    assert len({client.get(e["url"]).content for e in examples}) == len(examples)


@pytest.mark.parametrize("name", ["0", "4", "01", "-1", "one", "1.png.jpg"])
def test_an_unknown_example_is_a_clear_404(client: TestClient, name: str) -> None:
    missing = client.get(f"/storefront/examples/{name}.jpg")
    assert missing.status_code == 404
    body = missing.json()
    assert body["error"] == "not_found"
    assert body["detail"].startswith(f"no example photo {name!r}: there are 3, numbered 1 to 3")


def test_the_examples_are_documented(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/storefront/examples" in paths
    photo = paths["/storefront/examples/{n}.jpg"]["get"]
    assert "image/jpeg" in photo["responses"]["200"]["content"]
    assert "404" in photo["responses"]


def test_the_examples_follow_the_shop(client: TestClient, sqlite_catalog: Catalog) -> None:
    """Drawn from the demo while it is enabled; photos of the enabled shops' products once the
    demo is disabled or removed."""
    demo = demo_source(sqlite_catalog, "http://127.0.0.1:9/")
    drawn = client.get("/storefront/examples").json()
    assert all(e["alt"].startswith("Street photo: ") for e in drawn)

    with DemoShop(DemoCatalog.generate(12, seed=21), port=0) as shop:
        real = sqlite_catalog.upsert_source(
            SourceIn(
                name="real",
                base_url=shop.url,
                config={"allow_private_hosts": [shop.url.removeprefix("http://")]},
            )
        )
        report = sqlite_catalog.upsert_products(real.id, demo_items(shop))
        done = ImageResult(content_hash="h", width=400, height=500, n_bytes=1, crops=())
        sqlite_catalog.record_images_done(dict.fromkeys(report.new_image_ids, done))
        assert client.get("/storefront/examples").json() == drawn, "the demo is still on"

        sqlite_catalog.disable_source(demo.name)
        examples = client.get("/storefront/examples").json()
        titles = {f"Product photo: {p.title}": p for p in shop.catalog.products}
        assert len(examples) == 3
        assert {e["alt"] for e in examples} <= set(titles)
        categories = {titles[e["alt"]].category for e in examples}
        assert len(categories) == 3, "one photo per category"
        for example in examples:
            photo = client.get(example["url"])
            assert photo.status_code == 200
            assert photo.headers["content-type"] == "image/jpeg"
            image = Image.open(io.BytesIO(photo.content))
            assert image.size == (example["width"], example["height"])
            assert image.width <= 480 and image.height <= 640

        sqlite_catalog.remove_source(demo.name)
        assert client.get("/storefront/examples").json() == examples
        missing = client.get("/storefront/examples/4.jpg")
        assert missing.status_code == 404
        assert "there are 3, numbered 1 to 3" in missing.json()["detail"]
