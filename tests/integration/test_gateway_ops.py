"""Gateway operations endpoints on a real catalog (SQLite and Postgres)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient

from services.gateway.app import create_app
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
