"""The storefront's example photos: listed, served as JPEGs, the same bytes every time, and a
clear 404 for a number that is not one of them."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from services.gateway.app import create_app
from shared.db import Catalog
from shared.settings import Settings
from tests.gateway_support import gateway_settings

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
