"""``POST /recommend`` and friends on real components: Postgres catalog, Redis (rate limit),
a Qdrant Edge index filled by the real ingest pipeline from the demo shop, the real models."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from services.demo_shop.catalog import DemoCatalog, DemoProduct, render_image
from services.demo_shop.server import DemoShop
from services.detector.client import make_detector
from services.embedder.client import make_embedder
from services.gateway.app import create_app
from services.gateway.schemas import RecommendParams
from services.gateway.service import RecommendPipeline
from services.ingest.pipeline import IngestRuntime
from services.recommender.schemas import RecommendQuery, RecommendResult
from services.recommender.service import Recommender
from shared.colour import SHOPPER_COLOURS
from shared.db import Catalog
from shared.settings import Settings
from shared.taxonomy import parent
from shared.vectors import EdgeIndex
from tests.conftest import _empty
from tests.ingest_support import demo_items, demo_source, link_models, shared_models_dir

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning"),
]

PRODUCTS = 16


@dataclass
class World:
    settings: Settings
    catalog: Catalog
    index: EdgeIndex
    shop: DemoShop
    ids: dict[str, int]  # demo sku -> catalog product id

    def product(self, sku: str) -> DemoProduct:
        return self.shop.catalog.get(sku)


@pytest.fixture(scope="module")
def world(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The demo shop ingested once for the module (catalog, index, models)."""
    tmp = tmp_path_factory.mktemp("recommend")
    settings = Settings(_env_file=None, data_dir=tmp / "data")
    link_models(settings.data_dir, shared_models_dir(tmp_path_factory))
    catalog = Catalog(postgres_url)
    _empty(catalog)
    index = EdgeIndex(tmp / "index")
    with DemoShop(DemoCatalog.generate(PRODUCTS, seed=11), port=0) as shop:
        runtime = IngestRuntime.build(settings, catalog=catalog, index=index)
        source = demo_source(catalog, shop.url)
        image_ids = catalog.upsert_products(source.id, demo_items(shop)).new_image_ids
        report = runtime.pipeline.process(image_ids)
        assert sorted(report.done) == sorted(image_ids), report
        runtime.pipeline.close()
        ids = {
            p.sku: catalog.get_product_by_url(shop.product_url(p)).id for p in shop.catalog.products
        }
        yield World(settings, catalog, index, shop, ids)
    index.close()
    catalog.dispose()


def _client(world: World, **updates: object) -> TestClient:
    settings = world.settings.model_copy(update=updates)
    return TestClient(create_app(settings, catalog=world.catalog, index=world.index))


@pytest.fixture(scope="module")
def client(world: World) -> Iterator[TestClient]:
    with _client(world) as test_client:
        yield test_client


def _photo(world: World, sku: str, view: str = "front") -> bytes:
    return render_image(world.product(sku), view)


def _post(client: TestClient, data: bytes, **fields: object) -> dict:
    response = client.post(
        "/recommend",
        files={"image": ("photo.jpg", data, "image/jpeg")},
        data={k: str(v) for k, v in fields.items()},
    )
    assert response.status_code == 200, response.text
    return response.json()


def _ids(body: dict, group: int = 0) -> list[int]:
    return [r["id"] for r in body["groups"][group]["recommendations"]]


# ------------------------------------------------------------------------------- happy paths


def test_a_products_own_image_comes_back_first(world: World, client: TestClient) -> None:
    for demo in world.shop.catalog.products[:4]:
        body = _post(client, _photo(world, demo.sku))
        [group] = body["groups"]
        assert _ids(body)[0] == world.ids[demo.sku]
        first = group["recommendations"][0]
        assert first["title"] == demo.title
        assert first["url"] == world.shop.product_url(demo)
        assert first["brand"] == demo.brand and first["currency"] == "EUR"
        assert first["price"] == float(demo.price)
        assert first["image_url"].startswith(world.shop.url)
        assert 0 < first["score"] <= 1
        assert len({r["id"] for r in group["recommendations"]}) == len(group["recommendations"])
        x0, y0, x1, y1 = group["box"]
        assert 0 <= x0 < x1 <= 400 and 0 <= y0 < y1 <= 500
    assert body["model_version"].startswith(f"{world.settings.embedder.model}-")
    for stage in ("decode", "detect", "embed", "search", "hydrate", "total"):
        assert body["timings_ms"][stage] >= 0


class _CountingRecommender(Recommender):
    """The real recommender, counting the calls made to it."""

    def __init__(self, index: EdgeIndex, candidates: int) -> None:
        super().__init__(index, candidates=candidates)
        self.calls: list[int] = []

    def recommend(self, queries: Sequence[RecommendQuery]) -> list[RecommendResult]:
        self.calls.append(len(queries))
        return super().recommend(queries)


def test_a_product_shot_asks_the_recommender_once(world: World) -> None:
    """A product shot's garment classes are voted by its nearest catalog products in the same
    recommender call that searches them (not a call for the neighbours, then the search)."""
    settings = world.settings
    recommender = _CountingRecommender(world.index, settings.recommender.candidates)
    with httpx.Client() as http:
        pipeline = RecommendPipeline(
            settings,
            world.catalog,
            make_detector(settings),
            make_embedder(settings, catalog=world.catalog),
            recommender,
            http=http,
        )
        demo = world.shop.catalog.products[0]
        answer = pipeline.from_bytes(_photo(world, demo.sku), RecommendParams())
    assert recommender.calls == [1]
    [group] = answer.groups
    assert group.category is not None and 0 < (group.probability or 0) <= 1
    assert group.searched[0] == parent(group.category)  # the likeliest class first
    assert group.recommendations[0].id == world.ids[demo.sku]


def test_classifier_category_and_probability(world: World, client: TestClient) -> None:
    demo = world.shop.catalog.products[0]
    [group] = _post(client, _photo(world, demo.sku))["groups"]
    assert group["category"] is not None
    assert 0 < group["probability"] <= 1


def test_category_override_and_cross_category(world: World, client: TestClient) -> None:
    demo = world.shop.catalog.products[0]
    other = next(p for p in world.shop.catalog.products if p.category != demo.category)
    body = _post(client, _photo(world, demo.sku), category=other.category)
    [group] = body["groups"]
    assert group["category"] == other.category
    assert group["searched"] == [other.category]
    assert {r["category"] for r in group["recommendations"]} == {other.category}
    ids = _ids(body)
    assert ids and world.ids[demo.sku] not in ids
    in_category = {
        world.ids[p.sku] for p in world.shop.catalog.products if p.category == other.category
    }
    assert set(ids) <= in_category

    both = _post(client, _photo(world, demo.sku), category=f"{demo.category},{other.category}")
    assert set(_ids(both)) <= in_category | {
        world.ids[p.sku] for p in world.shop.catalog.products if p.category == demo.category
    }

    assert both["groups"][0]["searched"] == [demo.category, other.category]

    everything = _post(client, _photo(world, demo.sku), cross_category="true", k=PRODUCTS)
    assert everything["groups"][0]["searched"] == [], "every category"
    assert len(_ids(everything)) == PRODUCTS
    assert _ids(everything)[0] == world.ids[demo.sku]


def test_business_filters(world: World, client: TestClient) -> None:
    demo = world.shop.catalog.products[1]
    photo = _photo(world, demo.sku)
    brand = demo.brand
    body = _post(client, photo, cross_category="true", brand=brand, k=50)
    assert body["groups"][0]["recommendations"]
    assert {r["brand"] for r in body["groups"][0]["recommendations"]} == {brand}

    cheap = _post(client, photo, cross_category="true", max_price=float(demo.price) - 0.01, k=50)
    prices = [r["price"] for r in cheap["groups"][0]["recommendations"]]
    assert prices and max(prices) < float(demo.price)
    assert world.ids[demo.sku] not in _ids(cheap)

    ranged = _post(client, photo, cross_category="true", min_price=10, max_price=60, k=50)
    assert all(10 <= r["price"] <= 60 for r in ranged["groups"][0]["recommendations"])
    assert (
        _post(client, photo, cross_category="true", currency="USD")["groups"][0]["recommendations"]
        == []
    )


def test_inactive_products_are_never_recommended(world: World, client: TestClient) -> None:
    from services.ingest import indexing

    demo = world.shop.catalog.products[2]
    product_id = world.ids[demo.sku]
    indexing.deactivate_products(world.index, [product_id])
    try:
        body = _post(client, _photo(world, demo.sku), cross_category="true", k=PRODUCTS)
        assert product_id not in _ids(body)
    finally:
        indexing.sync_products(world.index, world.catalog, [product_id])
    assert _ids(_post(client, _photo(world, demo.sku)))[0] == product_id


def test_l1_and_cosine_both_find_the_product(world: World, client: TestClient) -> None:
    demo = world.shop.catalog.products[3]
    cosine = _post(client, _photo(world, demo.sku), metric="cosine", cross_category="true")
    l1 = _post(client, _photo(world, demo.sku), metric="l1", cross_category="true")
    assert _ids(cosine)[0] == _ids(l1)[0] == world.ids[demo.sku]
    cosine_scores = [r["score"] for r in cosine["groups"][0]["recommendations"]]
    l1_scores = [r["score"] for r in l1["groups"][0]["recommendations"]]
    assert cosine_scores != l1_scores  # the same neighbours, measured differently


def test_colour_weight_changes_the_ranking(world: World, client: TestClient) -> None:
    demo = world.shop.catalog.products[0]
    # The same garment recoloured: shape says "this product", colour says otherwise.
    photo = Image.open(io.BytesIO(_photo(world, demo.sku))).convert("RGB")
    r, g, b = photo.split()
    swapped = Image.merge("RGB", (b, r, g))
    buffer = io.BytesIO()
    swapped.save(buffer, "JPEG", quality=92)
    data = buffer.getvalue()
    shape = _ids(_post(client, data, cross_category="true", k=PRODUCTS, color_weight=0))
    colour = _ids(_post(client, data, cross_category="true", k=PRODUCTS, color_weight=1))
    blend = _ids(_post(client, data, cross_category="true", k=PRODUCTS, color_weight=0.5))
    assert shape != colour
    assert len({tuple(shape), tuple(colour), tuple(blend)}) >= 2
    default = world.settings.gateway.color_weight
    assert 0 < default < 1
    unset = _ids(_post(client, data, cross_category="true", k=PRODUCTS))
    assert unset == _ids(
        _post(client, data, cross_category="true", k=PRODUCTS, color_weight=default)
    ), "a request without color_weight gets the shop's default"


def test_answers_name_colours_and_take_a_colour_filter(world: World, client: TestClient) -> None:
    demo = world.shop.catalog.products[0]
    body = _post(client, _photo(world, demo.sku), cross_category="true", k=PRODUCTS)
    [group] = body["groups"]
    seen = group["colour"]
    assert seen["name"] in SHOPPER_COLOURS and 0 < seen["probability"] <= 1
    named = {r["id"]: r["colour"] for r in group["recommendations"]}
    assert set(named.values()) <= set(SHOPPER_COLOURS)
    # The product itself (its own photo) is named as its garment was at query time.
    assert named[world.ids[demo.sku]] == seen["name"]
    for name in set(named.values()):
        only = _post(client, _photo(world, demo.sku), cross_category="true", colour=name)
        kept = only["groups"][0]["recommendations"]
        assert kept and {r["colour"] for r in kept} == {name}
        # A synonym is read as its name.
        synonym = {"burgundy": "Maroon", "white": "cream", "olive": "khaki"}.get(name, name.upper())
        again = _post(client, _photo(world, demo.sku), cross_category="true", colour=synonym)
        assert _ids(again) == [r["id"] for r in kept]
    other = _post(client, _photo(world, demo.sku), cross_category="true", colour_mode="other")
    assert seen["name"] not in {r["colour"] for r in other["groups"][0]["recommendations"]}
    anyway = _post(client, _photo(world, demo.sku), cross_category="true", colour_mode="any")
    assert _ids(anyway) == _ids(
        _post(client, _photo(world, demo.sku), cross_category="true", color_weight=0)
    )


def test_more_like_this_in_another_colour(world: World, client: TestClient) -> None:
    demo = world.shop.catalog.products[0]
    product_id = world.ids[demo.sku]
    same = client.post("/recommend", json={"product_id": product_id, "cross_category": True})
    assert same.status_code == 200, same.text
    [group] = same.json()["groups"]
    own = group["colour"]["name"]
    other = client.post(
        "/recommend",
        json={"product_id": product_id, "cross_category": True, "colour_mode": "other"},
    )
    assert other.status_code == 200, other.text
    found = other.json()["groups"][0]["recommendations"]
    assert found and own not in {r["colour"] for r in found}
    words = client.post("/recommend", json={"text": "red shirt", "colour_mode": "other"})
    assert words.status_code == 422
    assert "give a photo or a product_id" in words.json()["detail"]


def test_diversity_reorders(world: World, client: TestClient) -> None:
    demo = world.shop.catalog.products[0]
    plain = _ids(_post(client, _photo(world, demo.sku), cross_category="true", k=6))
    diverse = _ids(
        _post(client, _photo(world, demo.sku), cross_category="true", k=6, diversity=0.9)
    )
    assert plain[0] == diverse[0] == world.ids[demo.sku]
    assert plain != diverse


def test_more_like_this(world: World, client: TestClient) -> None:
    demo = world.shop.catalog.products[0]
    product_id = world.ids[demo.sku]
    response = client.post("/recommend", json={"product_id": product_id, "k": 5})
    assert response.status_code == 200, response.text
    [group] = response.json()["groups"]
    assert group["box"] is None and group["category"] == demo.category
    assert group["searched"] == [demo.category]
    ids = [r["id"] for r in group["recommendations"]]
    assert product_id not in ids
    same = {world.ids[p.sku] for p in world.shop.catalog.products if p.category == demo.category}
    assert set(ids) <= same
    missing = client.post("/recommend", json={"product_id": 999_999})
    assert missing.status_code == 404
    assert missing.json() == {"error": "not_found", "detail": "no product 999999"}


def test_image_url_from_an_allowed_private_host(world: World) -> None:
    demo = world.shop.catalog.products[0]
    closed = f"127.0.0.1:{_closed_port()}"
    hosts = [world.shop.url.removeprefix("http://"), closed]
    with _client(
        world,
        gateway=world.settings.gateway.model_copy(update={"allow_private_image_hosts": hosts}),
    ) as client:
        response = client.post("/recommend", json={"image_url": world.shop.image_url(demo)})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["groups"][0]["recommendations"][0]["id"] == world.ids[demo.sku]
        assert body["timings_ms"]["download"] > 0
        for other in ("http://127.0.0.1:9/x.jpg", "http://169.254.169.254/latest/meta-data/"):
            refused = client.post("/recommend", json={"image_url": other})
            assert refused.status_code == 422 and refused.json()["error"] == "unsafe_url"
        dead = client.post("/recommend", json={"image_url": f"http://{closed}/x.jpg"})
        assert dead.status_code == 422
        assert dead.json()["error"] == "download_failed"
        assert "could not connect" in dead.json()["detail"]
        page = client.post("/recommend", json={"image_url": world.shop.product_url(demo)})
        assert page.status_code == 422 and "not an image" in page.json()["detail"]


# ------------------------------------------------------------------------------------ errors


def test_private_image_urls_are_refused(client: TestClient, world: World) -> None:
    demo = world.shop.catalog.products[0]
    for url in (world.shop.image_url(demo), "http://10.0.0.1/a.jpg", "http://[::1]/a.jpg"):
        response = client.post("/recommend", json={"image_url": url})
        assert response.status_code == 422, response.text
        assert response.json()["error"] == "unsafe_url"
        assert "private" in response.json()["detail"]
        assert "LOOKALIKE_GATEWAY__ALLOW_PRIVATE_IMAGE_HOSTS" in response.json()["detail"]
    bad = client.post("/recommend", json={"image_url": "file:///etc/passwd"})
    assert bad.status_code == 422 and "http" in bad.json()["detail"]


def test_a_category_the_shop_lacks_is_a_422_listing_its_categories(
    client: TestClient, world: World
) -> None:
    photo = _photo(world, world.shop.catalog.products[0].sku)
    categories = sorted({p.category for p in world.shop.catalog.products})
    for body in (
        {"files": {"image": ("a.jpg", photo, "image/jpeg")}, "data": {"category": "leggings"}},
        {
            "json": {
                "product_id": world.ids[world.shop.catalog.products[0].sku],
                "category": "leggings",
            }
        },
        {
            "json": {
                "image_url": "https://example.com/a.jpg",
                "category": f"{categories[0]},leggings",
            }
        },
    ):
        response = client.post("/recommend", **body)
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert "no category 'leggings'" in detail and ", ".join(categories) in detail


def test_favicon_is_the_storefront_icon(client: TestClient) -> None:
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200
    assert icon.headers["content-type"].startswith("image/svg+xml")
    assert icon.url.path == "/static/favicon.svg"


def test_unsupported_content_and_media(client: TestClient) -> None:
    text = client.post("/recommend", files={"image": ("cat.jpg", b"<html>no</html>", "image/jpeg")})
    assert text.status_code == 415
    assert text.json()["error"] == "unsupported_media_type"
    plain = client.post("/recommend", content=b"hello", headers={"content-type": "text/plain"})
    assert plain.status_code == 415
    assert "multipart/form-data" in plain.json()["detail"]


def test_too_large(world: World) -> None:
    images = world.settings.images.model_copy(update={"max_upload_bytes": 10_000})
    with _client(world, images=images) as client:
        big = _photo(world, world.shop.catalog.products[0].sku)
        assert len(big) > 10_000
        response = client.post("/recommend", files={"image": ("a.jpg", big, "image/jpeg")})
        assert response.status_code == 413
        assert response.json()["error"] == "payload_too_large"
        huge = client.post(
            "/recommend", files={"image": ("a.jpg", b"\xff" * 400_000, "image/jpeg")}
        )
        assert huge.status_code == 413


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"k": "0"}, "k: Input should be greater than or equal to 1"),
        ({"k": "many"}, "k: Input should be a valid integer"),
        ({"metric": "euclid"}, "metric: Input should be 'cosine' or 'l1'"),
        ({"color_weight": "1.5"}, "color_weight: Input should be less than or equal to 1"),
        ({"min_price": "50", "max_price": "10"}, "min_price 50.0 is above max_price 10.0"),
        ({"category": "tops", "cross_category": "true"}, "either category or cross_category"),
        ({"colours": "red"}, "colours: Extra inputs are not permitted"),
        ({"colour": "sparkly"}, "unknown colour 'sparkly': give one of black, white"),
        ({"colour_mode": "some"}, "colour_mode: Input should be 'same', 'any' or 'other'"),
        ({"colour": "navy", "colour_mode": "other"}, "either colour or colour_mode=other"),
        ({"color_weight": "0.3", "colour_mode": "any"}, "not with colour_mode=any"),
        ({"color_weight": "-0.1"}, "color_weight: Input should be greater than or equal to 0"),
    ],
)
def test_clear_422s(client: TestClient, world: World, fields: dict, message: str) -> None:
    photo = _photo(world, world.shop.catalog.products[0].sku)
    response = client.post(
        "/recommend", files={"image": ("a.jpg", photo, "image/jpeg")}, data=fields
    )
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_input"
    assert message in response.json()["detail"]


def test_422_for_bad_bodies(client: TestClient) -> None:
    missing = client.post("/recommend", files={"photo": ("a.jpg", b"x", "image/jpeg")})
    assert missing.status_code == 422 and "'image'" in missing.json()["detail"]
    both = client.post(
        "/recommend", json={"image_url": "https://example.com/a.jpg", "product_id": 1}
    )
    assert both.status_code == 422 and "not both" in both.json()["detail"]
    broken = client.post("/recommend", content=b"{", headers={"content-type": "application/json"})
    assert broken.status_code == 422 and "not valid JSON" in broken.json()["detail"]


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_rate_limit(world: World, redis_db_url: str, backend: str) -> None:
    gateway = world.settings.gateway.model_copy(update={"rate_limit_per_minute": 3})
    updates: dict[str, object] = {"gateway": gateway}
    if backend == "redis":
        updates["redis_url"] = redis_db_url
    with _client(world, **updates) as client:
        photo = _photo(world, world.shop.catalog.products[0].sku)
        statuses = [
            client.post("/recommend", files={"image": ("a.jpg", photo, "image/jpeg")}).status_code
            for _ in range(3)
        ]
        assert statuses == [200, 200, 200]
        limited = client.post("/recommend", files={"image": ("a.jpg", photo, "image/jpeg")})
        assert limited.status_code == 429
        assert limited.json()["error"] == "rate_limited"
        assert 1 <= int(limited.headers["Retry-After"]) <= 20
        assert client.get("/healthz").status_code == 200  # only /recommend is limited


def test_feedback_and_api_keys(world: World) -> None:
    demo = world.shop.catalog.products[0]
    product_id = world.ids[demo.sku]
    event = {"kind": "click", "product_id": product_id, "position": 0, "variant": "a"}
    with _client(world) as open_client:  # the storefront: no key, bound to a real answer
        answer = open_client.post(
            "/recommend", files={"image": ("a.jpg", _photo(world, demo.sku), "image/jpeg")}
        )
        assert product_id in _ids(answer.json())
        unbound = open_client.post("/feedback", json=event)
        assert unbound.status_code == 422 and "request_id" in unbound.json()["detail"]
        shown = {**event, "request_id": answer.headers["X-Request-ID"]}
        recorded = open_client.post("/feedback", json=shown)
        assert recorded.status_code == 201, recorded.text
        assert open_client.post("/feedback", json=shown).status_code == 409
    with _client(world, api_key="s3cret") as client:
        missing = client.post("/feedback", json=event)
        assert missing.status_code == 401 and missing.json()["error"] == "unauthorized"
        assert missing.headers["WWW-Authenticate"] == "ApiKey"
        wrong = client.post("/feedback", json=event, headers={"X-API-Key": "nope"})
        assert wrong.status_code == 403 and wrong.json()["error"] == "forbidden"
        ok = client.post("/feedback", json=event, headers={"X-API-Key": "s3cret"})
        assert ok.status_code == 201
        bearer = client.post(
            "/feedback",
            json={**event, "kind": "purchase"},
            headers={"Authorization": "Bearer s3cret"},
        )
        assert bearer.status_code == 201
        unknown = client.post(
            "/feedback", json={**event, "product_id": 999_999}, headers={"X-API-Key": "s3cret"}
        )
        assert unknown.status_code == 404
        bad = client.post(
            "/feedback", json={**event, "kind": "like"}, headers={"X-API-Key": "s3cret"}
        )
        assert bad.status_code == 422 and "kind" in bad.json()["detail"]
    rows = world.catalog.run_query(
        "SELECT kind, variant FROM feedback_events WHERE product_id = :p ORDER BY id",
        {"p": product_id},
    )
    assert [r["kind"] for r in rows] == ["click", "click", "purchase"]


def test_request_ids_metrics_and_readiness(
    world: World, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    photo = _photo(world, world.shop.catalog.products[0].sku)
    caplog.set_level("INFO", logger="lookalike.access")
    answer = client.post(
        "/recommend",
        files={"image": ("a.jpg", photo, "image/jpeg")},
        headers={"X-Request-ID": "req-123"},
    )
    assert answer.headers["X-Request-ID"] == "req-123"
    assert any("POST /recommend 200" in m and "request_id=req-123" in m for m in caplog.messages)
    made = client.get("/healthz").headers["X-Request-ID"]
    assert len(made) == 32
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert (
        'lookalike_http_requests_total{method="POST",route="/recommend",status="200"}'
        in metrics.text
    )
    assert 'lookalike_recommend_stage_seconds_count{stage="embed"}' in metrics.text
    ready = client.get("/readyz").json()
    assert ready["checks"]["index"]["ok"] is True
    assert "catalog -> catalog__" in ready["checks"]["index"]["detail"]
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/recommend"]["post"]["requestBody"]["content"]
    assert set(body) == {"multipart/form-data", "application/json"}
    assert "RecommendResponse" in schema["components"]["schemas"]


# ------------------------------------------------------------------------- downstream failures


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Slow(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        time.sleep(2)
        self.send_response(200)
        self.end_headers()

    do_GET = do_POST


@pytest.fixture
def slow_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.daemon = True
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_downstream_timeout_and_dead_service_give_503(world: World, slow_server: str) -> None:
    photo = _photo(world, world.shop.catalog.products[0].sku)
    gateway = world.settings.gateway.model_copy(update={"embedder_timeout_s": 0.3})
    with _client(world, embedder_url=slow_server, gateway=gateway) as client:
        started = time.monotonic()
        slow = client.post("/recommend", files={"image": ("a.jpg", photo, "image/jpeg")})
        assert time.monotonic() - started < 1.8
        assert slow.status_code == 503
        assert slow.json()["error"] == "service_unavailable"
        assert f"the embedder at {slow_server} did not answer within 0.3 s" in slow.json()["detail"]
    dead_url = f"http://127.0.0.1:{_closed_port()}"
    with _client(world, recommender_url=dead_url) as client:
        dead = client.post("/recommend", files={"image": ("a.jpg", photo, "image/jpeg")})
        assert dead.status_code == 503
        assert f"cannot reach the recommender at {dead_url}" in dead.json()["detail"]
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["recommender"]["ok"] is False


def test_services_over_http_answer_like_in_process(
    world: World, client: TestClient, tmp_path: Path
) -> None:
    """Compose shape: the embedder and recommender services on real ports."""
    from services.embedder.api import create_app as embedder_app
    from services.recommender.api import create_app as recommender_app
    from tests.recommend_support import serve_app

    with (
        serve_app(embedder_app(world.settings, catalog=world.catalog)) as embedder_url,
        serve_app(recommender_app(world.settings, index=world.index)) as recommender_url,
        _client(world, embedder_url=embedder_url, recommender_url=recommender_url) as remote,
    ):
        for demo in world.shop.catalog.products[:2]:
            photo = _photo(world, demo.sku)
            local = _post(client, photo, k=5, color_weight=0.3)
            far = _post(remote, photo, k=5, color_weight=0.3)
            assert far["groups"] == local["groups"]
            assert far["model_version"] == local["model_version"]
        product_id = world.ids[world.shop.catalog.products[0].sku]
        near = client.post("/recommend", json={"product_id": product_id}).json()
        away = remote.post("/recommend", json={"product_id": product_id}).json()
        assert near["groups"] == away["groups"]
        unknown = remote.post("/recommend", json={"product_id": 999_999})
        assert unknown.status_code == 404
        assert unknown.json() == {"error": "not_found", "detail": "no product 999999"}
        assert remote.get("/readyz").json()["checks"]["recommender"]["ok"] is True
        # A gateway that cuts its crops out while the embedder service does not (their
        # settings differ) would search an index made of other crops: refused, naming it.
        cutout = world.settings.crops.model_copy(update={"remove_background": True})
        with _client(world, embedder_url=embedder_url, crops=cutout) as cutting:
            photo = _photo(world, world.shop.catalog.products[0].sku)
            refused = cutting.post("/recommend", files={"image": ("p.jpg", photo, "image/jpeg")})
        assert refused.status_code == 503, refused.text
        assert "LOOKALIKE_CROPS__REMOVE_BACKGROUND" in refused.json()["detail"]
        # In one process, its vectors name the option and the index has none of them yet.
        with _client(world, crops=cutout) as cutting:
            refused = cutting.post("/recommend", files={"image": ("p.jpg", photo, "image/jpeg")})
        assert refused.status_code == 503, refused.text
        assert "+cutout" in refused.json()["detail"] and "reindex" in refused.json()["detail"]


def test_a_photo_is_scoped_to_its_shops_in_process_and_over_http(
    world: World, client: TestClient
) -> None:
    """``shop`` and a storefront key scope a photo's search (issue 31), with the recommender in
    process and as a service (the compose shape: the scope travels in its filters)."""
    from services.recommender.api import create_app as recommender_app
    from shared.db import ApiKeyIn, SourceIn
    from tests.recommend_support import serve_app

    demo = world.shop.catalog.products[2]
    photo = _photo(world, demo.sku)
    [shop] = [source.name for source in world.catalog.list_sources()]
    world.catalog.upsert_source(SourceIn(name="elsewhere", base_url="https://elsewhere.example/"))
    own = world.catalog.add_api_key(ApiKeyIn(name="demo-web", shops=(shop,))).key
    other = world.catalog.add_api_key(ApiKeyIn(name="elsewhere-web", shops=("elsewhere",))).key
    try:
        everything = _ids(_post(client, photo, k=5))
        with (
            serve_app(recommender_app(world.settings, index=world.index)) as recommender_url,
            _client(world, recommender_url=recommender_url) as remote,
        ):
            for gateway in (client, remote):
                assert _ids(_post(gateway, photo, k=5, shop=shop)) == everything
                assert _ids(_post(gateway, photo, k=5, shop="elsewhere")) == []
                for key, ids in ((own, everything), (other, [])):
                    answer = gateway.post(
                        "/recommend",
                        files={"image": ("a.jpg", photo, "image/jpeg")},
                        data={"k": "5"},
                        headers={"X-API-Key": key},
                    )
                    assert answer.status_code == 200 and _ids(answer.json()) == ids
                refused = gateway.post(
                    "/recommend",
                    files={"image": ("a.jpg", photo, "image/jpeg")},
                    data={"shop": shop},
                    headers={"X-API-Key": other},
                )
                assert refused.status_code == 403 and repr(shop) in refused.json()["detail"]
                unknown = gateway.post(
                    "/recommend?shop=nowhere", files={"image": ("a.jpg", photo, "image/jpeg")}
                )
                assert unknown.status_code == 422
                assert unknown.json()["detail"].startswith("no shop named 'nowhere'")
    finally:
        for name in ("demo-web", "elsewhere-web"):
            world.catalog.remove_api_key(name)
        world.catalog.remove_source("elsewhere")


def test_a_photo_with_no_garment_answers_no_group_with_a_notice(client: TestClient) -> None:
    """A plain picture is not searched whole: an honest empty answer the page can show."""
    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), (40, 90, 200)).save(buffer, "JPEG")
    response = client.post(
        "/recommend", files={"image": ("blue.jpg", buffer.getvalue(), "image/jpeg")}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["groups"] == []
    assert body["notice"] == "We couldn't find any clothing in this photo."
    # Asked for a colour, or for another colour than the garment's: the same honest answer.
    for fields in ({"colour": "navy"}, {"colour_mode": "other"}):
        again = client.post(
            "/recommend",
            files={"image": ("blue.jpg", buffer.getvalue(), "image/jpeg")},
            data=fields,
        )
        assert again.status_code == 200 and again.json()["notice"] == body["notice"]


def test_the_answer_opens_on_the_most_prominent_garment(world: World, client: TestClient) -> None:
    """A coat over trousers: the detector is surer of the trousers, but the coat covers twice
    their area nearer the middle, and the answer's first group is the coat (issue 27)."""
    from services.demo_shop.images import compose_outfit
    from shared.taxonomy import parent

    products = world.shop.catalog.products
    coats = [p for p in products if p.category == "outerwear"]
    trousers = [p for p in products if p.category == "pants"]
    for seed in range(3):
        outfit = compose_outfit(coats[seed % len(coats)], trousers[seed % len(trousers)], seed=seed)
        groups = _post(client, outfit.jpeg)["groups"]
        assert [parent(g["category"]) for g in groups] == ["outerwear", "bottom"], groups
        areas = [(x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in (g["box"] for g in groups)]
        assert areas[0] > 1.5 * areas[1]


# ------------------------------------------------------- products the catalog took out (#27)


def _set_active(world: World, product_ids: list[int], active: bool) -> None:
    """Change products in the catalog only, as a disable or a removal does before the index
    hears of it."""
    from sqlalchemy import update

    from shared.db.models import Product

    with world.catalog.writing() as session:
        session.execute(update(Product).where(Product.id.in_(product_ids)).values(active=active))


def test_hits_the_catalog_took_out_are_dropped_and_refilled(
    world: World, client: TestClient
) -> None:
    demo = world.shop.catalog.products[5]
    fields = {"cross_category": "true", "k": 8}
    before = _ids(_post(client, _photo(world, demo.sku), **fields))
    assert len(before) == 8
    gone = before[:4]
    _set_active(world, gone, False)
    try:
        after = _ids(_post(client, _photo(world, demo.sku), **fields))
        assert len(after) == 8, "the answer still fills its k places"
        assert not set(after) & set(gone)
        assert after[:4] == before[4:]
    finally:
        _set_active(world, gone, True)

    # A disabled source leaves no product in any answer, at once (the index still has them).
    source = world.catalog.list_sources()[0]
    world.catalog.disable_source(source.name)
    try:
        body = _post(client, _photo(world, demo.sku), **fields)
        assert _ids(body) == []
    finally:
        world.catalog.enable_source(source.name, max_missed_runs=3)
    assert _ids(_post(client, _photo(world, demo.sku), **fields)) == before
