"""Gateway operations endpoints on a real catalog (SQLite and Postgres)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient

from services.gateway.app import create_app
from shared.colour import SHOPPER_COLOURS
from shared.db import Catalog, ImageIn, ProductIn, SourceIn
from shared.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def client(catalog: Catalog, settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, catalog=catalog)) as test_client:
        yield test_client


def test_health_and_readiness(client: TestClient) -> None:
    """Live at once; ready only once the query models are loaded (a first run exports them)."""
    assert client.get("/healthz").json() == {"status": "ok"}
    warmup = client.app.state.warmup  # type: ignore[attr-defined]
    if not warmup.ready:
        loading = client.get("/readyz")
        assert loading.status_code == 503, loading.text
        assert loading.json()["checks"]["models"]["detail"].startswith("loading")
    assert warmup.wait(240)
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["ready"] is True
    assert set(body["checks"]) == {"database", "broker", "index", "models"}
    assert body["checks"]["models"]["detail"].startswith("loaded in")


def test_readiness_fails_when_the_broker_is_down(catalog: Catalog, settings: Settings) -> None:
    broken = settings.model_copy(update={"celery_broker_url": "redis://127.0.0.1:1/0"})
    with TestClient(create_app(broken, catalog=catalog)) as test_client:
        ready = test_client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["broker"]["ok"] is False


def test_readiness_fails_on_an_unmigrated_database(settings: Settings, tmp_path) -> None:
    empty = Catalog(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    with TestClient(create_app(settings, catalog=empty)) as test_client:
        ready = test_client.get("/readyz")
    assert ready.status_code == 503
    assert "lookalike migrate" in ready.json()["checks"]["database"]["detail"]


def test_product_lookup_and_status(client: TestClient, catalog: Catalog) -> None:
    source = catalog.upsert_source(SourceIn(name="acme", base_url="https://shop.example"))
    item = ProductIn(
        canonical_url="https://shop.example/p/1",
        title="Striped <b>shirt</b>",
        price=Decimal("25.00"),
        currency="EUR",
        images=(ImageIn(url="https://shop.example/i/1.jpg"),),
    )
    (product_id,) = catalog.upsert_products(source.id, [item]).created

    found = client.get(f"/products/{product_id}")
    assert found.status_code == 200
    assert found.json()["title"] == "Striped <b>shirt</b>"
    assert found.json()["images"][0]["state"] == "pending"

    missing = client.get("/products/999999")
    assert missing.status_code == 404
    assert missing.json() == {"error": "not_found", "detail": "no product 999999"}
    assert client.get("/products/not-a-number").status_code == 422

    status = client.get("/status").json()
    assert status["products_active"] == 1 and status["images"]["pending"] == 1

    page = client.get("/status-page")
    assert page.status_code == 200
    assert "acme" in page.text and "<b>shirt" not in page.text
    assert '<meta http-equiv="refresh" content="5">' in page.text
    assert "0 of 1 images indexed, 1 waiting, 0 failed; none finished yet" in page.text
    assert "models: loading" in page.text or "models: loaded" in page.text
    categories = page.text[page.text.index('<h2 id="categories">') :]
    assert "<td>acme</td><td><em>none</em></td>" in categories  # the product has no category

    config = client.get("/storefront/config.json").json()
    assert config["catalog"] == {
        "products": 1,
        "images_indexed": 0,
        "images_total": 1,
        "indexing": True,
    }
    assert config["colours"] == list(SHOPPER_COLOURS)  # what the page's colour filter offers


def test_metrics_report_ingest_from_the_catalog(client: TestClient, catalog: Catalog) -> None:
    """Images per state, failures by reason (URLs folded), pace and queue depths."""
    source = catalog.upsert_source(SourceIn(name="acme", base_url="https://shop.example"))
    images = tuple(ImageIn(url=f"https://shop.example/i/{n}.jpg") for n in range(3))
    item = ProductIn(canonical_url="https://shop.example/p/1", title="Shirt", images=images)
    catalog.upsert_products(source.id, [item])
    claimed = catalog.claim_images(worker="test", limit=2)
    for image in claimed:
        catalog.record_image_failed(image.id, f"HTTP 404 from {image.url}")

    text = client.get("/metrics").text
    assert 'lookalike_ingest_images{state="pending"} 1.0' in text
    assert 'lookalike_ingest_images{state="failed"} 2.0' in text
    assert 'lookalike_ingest_failed_images{reason="HTTP 404 from <url>"} 2.0' in text
    assert "lookalike_ingest_indexed_per_second 0.0" in text
    assert "lookalike_ingest_last_processed_timestamp_seconds " in text
    assert 'lookalike_queue_depth{queue="ingest"}' in text
