"""Several shops in one deployment (issue 31): ``shop`` scopes every path of ``/recommend``,
storefront API keys see only their own shops, the storefront config and the status pages
count each shop, and a removed shop leaves no product in any answer.

Real Postgres and a real embedded index; the index points are written here (random picture
vectors, the real sentence model's text points), so no detector or embedder loads: the paths
that need no photo (``product_id``, words) answer from them. A photo's path is scoped the same
way (``test_recommend_api``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from services.gateway.app import create_app
from services.ingest import indexing
from services.scraper.service import remove_source
from shared.colour import COLOUR_DIM
from shared.db import ApiKeyIn, Catalog, ImageIn, ProductIn, SourceIn
from shared.db.keys import key_hash
from shared.db.models import ApiKey
from shared.errors import NotFoundError
from shared.settings import Settings
from shared.taxonomy import class_named
from shared.vectors import EdgeIndex
from shared.words import SentenceEncoder
from tests.conftest import _empty, fresh_postgres_database
from tests.gateway_support import crop_point, gateway_settings, indexed_without_models

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning"),
]

DIM = 32
VERSION = "shops-test-model"
SHOPS = {
    "north": ["navy tee", "navy polo tee", "red tee", "white tee"],
    "south": ["navy tee shirt", "green tee", "black tee", "grey tee"],
}
ADMIN_KEY = "admin-secret"


@dataclass
class Shops:
    catalog: Catalog
    index: EdgeIndex
    settings: Settings
    ids: dict[str, list[int]]  # shop -> its product ids

    def client(self, **updates: Any) -> TestClient:
        settings = self.settings.model_copy(update=updates)
        return TestClient(create_app(settings, catalog=self.catalog, index=self.index))


def _unit(rng: np.random.Generator, dim: int) -> list[float]:
    vector = 1.0 + rng.standard_normal(dim)
    return (vector / np.linalg.norm(vector)).tolist()


def _fill(catalog: Catalog, index: EdgeIndex, encoder: SentenceEncoder) -> dict[str, list[int]]:
    """Each shop of :data:`SHOPS` in the catalog (images indexed) and in the index: one
    picture point and one text point per product, as ingest writes them."""
    rng = np.random.default_rng(31)
    collection = indexing.ensure_collection(index, VERSION, DIM)
    garment = class_named("t-shirt")
    ids: dict[str, list[int]] = {}
    texts = []
    for name, titles in SHOPS.items():
        source = catalog.upsert_source(SourceIn(name=name, base_url=f"https://{name}.example/"))
        items = [
            ProductIn(
                canonical_url=f"https://{name}.example/p/{n}",
                title=title,
                brand=name.title(),
                price=10 + n,
                currency="EUR",
                category=f"{name} tees",
                images=(ImageIn(url=f"https://{name}.example/img/{n}.jpg"),),
            )
            for n, title in enumerate(titles)
        ]
        report = catalog.upsert_products(source.id, items)
        ids[name] = report.created
        points = []
        for product in indexed_without_models(catalog, report).values():
            vector = _unit(rng, DIM)
            vectors = {"cnn": vector, "cnn_l1": vector, "colour": _unit(rng, COLOUR_DIM)}
            points.append(crop_point(product, name, VERSION, vectors, garment=garment))
            texts.append(indexing.ProductText(product, name, garment, product.images[0].url))
        index.upsert(collection, points)
    indexing.index_texts(index, encoder, texts)
    return ids


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    return SentenceEncoder()


@pytest.fixture(scope="module")
def shops(
    postgres_url: str, tmp_path_factory: pytest.TempPathFactory, encoder: SentenceEncoder
) -> Iterator[Shops]:
    tmp = tmp_path_factory.mktemp("shops")
    catalog = Catalog(postgres_url)
    _empty(catalog)
    index = EdgeIndex(tmp / "index")
    ids = _fill(catalog, index, encoder)
    settings = gateway_settings(tmp / "data", words_paths="text")
    yield Shops(catalog, index, settings, ids)
    index.close()
    catalog.dispose()


@pytest.fixture(scope="module")
def client(shops: Shops) -> Iterator[TestClient]:
    with shops.client() as test_client:
        yield test_client


def _recommend(client: TestClient, body: dict[str, Any], key: str | None = None) -> Any:
    headers = {"X-API-Key": key} if key is not None else {}
    return client.post("/recommend", json=body, headers=headers)


def _ids(response: Any) -> set[int]:
    assert response.status_code == 200, response.text
    return {r["id"] for group in response.json()["groups"] for r in group["recommendations"]}


def _like(shops: Shops, of: str = "north", **fields: Any) -> dict[str, Any]:
    """ "More like this" of the first product of shop ``of``, every garment class."""
    return {"product_id": shops.ids[of][0], "cross_category": True, "k": 20, **fields}


# ------------------------------------------------------------------------------- the scope


def test_every_path_answers_within_the_shops_asked_for(shops: Shops, client: TestClient) -> None:
    north, south = set(shops.ids["north"]), set(shops.ids["south"])
    everything = _ids(_recommend(client, _like(shops)))
    assert everything & north and everything & south, "no scope: every shop"
    assert _ids(_recommend(client, _like(shops, shop="south"))) == south
    assert _ids(_recommend(client, _like(shops, shop=["north"]))) == north - {shops.ids["north"][0]}
    both = _ids(_recommend(client, _like(shops, shop="north, south")))
    assert both == everything

    words = _ids(_recommend(client, {"text": "navy tee", "k": 20}))
    assert words & north and words & south
    assert _ids(_recommend(client, {"text": "navy tee", "k": 20, "shop": "north"})) <= north
    # Words as a form field, the scope as a query parameter.
    fields = {"text": (None, "navy tee"), "k": (None, "20")}
    form = client.post("/recommend?shop=south", files=fields)
    assert _ids(form) and _ids(form) <= south
    # Words refining "more like this": the scope holds for both rankings.
    refined = _recommend(client, _like(shops, text="navy", shop="south"))
    assert _ids(refined) and _ids(refined) <= south
    assert {g["answered_by"] for g in refined.json()["groups"]} == {"both"}


@pytest.mark.parametrize(
    ("shop", "said"),
    [
        ("nowhere", "no shop named 'nowhere'; the shops are: north, south"),
        ("north,nowhere,elsewhere", "no shop named 'nowhere', 'elsewhere'"),
        ("", "an empty shop name"),
        ("north,,south", "an empty shop name"),
        (",", "an empty shop name"),
        ([], "give at least one shop name"),
        ([1], "a shop name is a string, not 1"),
        ({"name": "north"}, "give shop names, comma-separated or as a list"),
        ("north;south", "'north;south' is not a shop name"),
        ("x" * 101, "is not a shop name"),
        ([f"s{n}" for n in range(51)], "at most 50 items"),
    ],
)
def test_a_bad_shop_is_refused_with_what_is_wrong(
    shops: Shops, client: TestClient, shop: Any, said: str
) -> None:
    for body in (_like(shops, shop=shop), {"text": "tee", "shop": shop}):
        response = _recommend(client, body)
        assert response.status_code == 422, response.text
        assert said in response.json()["detail"]


def test_an_empty_list_is_refused_not_widened(shops: Shops, client: TestClient) -> None:
    """``shop=[]`` would search every shop if read as "no scope": refused instead."""
    response = _recommend(client, _like(shops, shop=[]))
    assert response.status_code == 422
    assert response.json()["detail"].startswith("shop: ")


# ---------------------------------------------------------------------- storefront keys


@pytest.fixture
def north_key(shops: Shops) -> Iterator[str]:
    made = shops.catalog.add_api_key(ApiKeyIn(name="north-web", shops=("north",)))
    yield made.key
    with contextlib.suppress(NotFoundError):
        shops.catalog.remove_api_key("north-web")


def test_a_storefront_key_sees_only_its_shops(
    shops: Shops, client: TestClient, north_key: str
) -> None:
    north, south = set(shops.ids["north"]), set(shops.ids["south"])
    own = _ids(_recommend(client, _like(shops), key=north_key))
    assert own == north - {shops.ids["north"][0]}, "no shop given: the key's shops"
    assert _ids(_recommend(client, {"text": "navy tee", "k": 20}, key=north_key)) <= north
    assert _ids(_recommend(client, _like(shops, shop="north"), key=north_key)) == own
    bearer = client.post(
        "/recommend",
        json={"text": "navy tee", "k": 20},
        headers={"Authorization": f"Bearer {north_key}"},
    )
    assert _ids(bearer) <= north

    outside = _recommend(client, _like(shops, shop="north,south"), key=north_key)
    assert outside.status_code == 403
    assert outside.json()["detail"] == "this API key does not cover shop 'south'; it covers: north"
    # A shop that does not exist is outside the key too: the key learns nothing of the catalog.
    assert _recommend(client, _like(shops, shop="nowhere"), key=north_key).status_code == 403

    # Another shop's product is unknown to the key, on every route that takes one.
    other = shops.ids["south"][0]
    theirs = _recommend(client, {"product_id": other}, key=north_key)
    assert theirs.status_code == 404 and theirs.json()["detail"] == f"no product {other}"
    headers = {"X-API-Key": north_key}
    assert client.get(f"/products/{other}", headers=headers).status_code == 404
    assert client.get(f"/products/{shops.ids['north'][0]}", headers=headers).status_code == 200
    assert client.get(f"/products/{other}").status_code == 200, "anyone sees every shop"

    # The admin key, and no key, see every shop as before.
    with shops.client(api_key=ADMIN_KEY) as admin:
        assert _ids(_recommend(admin, _like(shops), key=ADMIN_KEY)) & south
        assert _ids(_recommend(admin, _like(shops))) & south


def test_an_unknown_or_removed_key_is_refused(
    shops: Shops, client: TestClient, north_key: str
) -> None:
    for key in ("lk_not-a-key", north_key[:-1], ""):
        refused = _recommend(client, _like(shops), key=key)
        assert refused.status_code == 403 and refused.json()["detail"] == "the API key is not valid"
    assert _recommend(client, _like(shops), key=north_key).status_code == 200
    shops.catalog.remove_api_key("north-web")  # as `lookalike keys remove` does
    for path in ("/recommend", "/feedback"):
        gone = client.post(path, json={"text": "tee"}, headers={"X-API-Key": north_key})
        assert gone.status_code == 403, "a removed key never falls back to every shop"
    assert client.get("/products/1", headers={"X-API-Key": north_key}).status_code == 403

    # A key whose shops were emptied behind the catalog's back sees nothing, not everything.
    with shops.catalog.writing() as session:
        session.add(ApiKey(name="emptied", key_hash=key_hash("lk_emptied"), shops=[]))
    try:
        emptied = _recommend(client, _like(shops), key="lk_emptied")
        assert emptied.status_code == 403
        assert emptied.json()["detail"] == "the API key 'emptied' covers no shop"
    finally:
        shops.catalog.remove_api_key("emptied")


def test_feedback_with_a_storefront_key(shops: Shops, north_key: str) -> None:
    mine, theirs = shops.ids["north"][1], shops.ids["south"][1]
    with shops.client(api_key=ADMIN_KEY) as guarded:
        # As the admin key: any event without an answer to bind it to, its own shops only.
        for key in (north_key, ADMIN_KEY):
            recorded = guarded.post(
                "/feedback", json={"kind": "click", "product_id": mine}, headers={"X-API-Key": key}
            )
            assert recorded.status_code == 201, recorded.text
        refused = guarded.post(
            "/feedback",
            json={"kind": "click", "product_id": theirs},
            headers={"X-API-Key": north_key},
        )
        assert refused.status_code == 404 and refused.json()["detail"] == f"no product {theirs}"
        assert (
            guarded.post("/feedback", json={"kind": "click", "product_id": mine}).status_code == 401
        )
    with shops.client() as open_gateway:  # no admin key: a storefront key still counts
        keyed = open_gateway.post(
            "/feedback",
            json={"kind": "purchase", "product_id": mine},
            headers={"X-API-Key": north_key},
        )
        assert keyed.status_code == 201, keyed.text
        anonymous = open_gateway.post("/feedback", json={"kind": "click", "product_id": mine})
        assert anonymous.status_code == 422, "no key: bound to an answer, as before"


# --------------------------------------------------------------- the page and the counts


def test_the_storefront_config_and_the_status_pages_count_each_shop(
    shops: Shops, client: TestClient
) -> None:
    config = client.get("/storefront/config.json", params={"shop": "south"})
    assert config.status_code == 200, config.text
    body = config.json()
    assert body["shop"] == ["south"] and body["categories"] == ["south tees"]
    assert body["brands"] == ["South"] and body["catalog"]["products"] == 4
    everything = client.get("/storefront/config.json").json()
    assert everything["shop"] is None and everything["catalog"]["products"] == 8
    for bad, said in (("nowhere", "no shop named 'nowhere'"), ("north,,", "an empty shop name")):
        refused = client.get("/storefront/config.json", params={"shop": bad})
        assert refused.status_code == 422 and said in refused.json()["detail"]

    status = client.get("/status").json()
    assert [
        (row["source"], row["products_active"], row["images_indexed"]) for row in status["shops"]
    ] == [
        ("north", 4, 4),
        ("south", 4, 4),
    ]
    page = client.get("/status-page").text
    assert (
        '<td>enabled</td><td class="num">4</td><td class="num">4</td><td class="num">4</td>'
        '<td class="num">0</td><td class="num">0</td>'
    ) in page
    assert "<code>/?shop=NAME</code>" in page


# ------------------------------------------------------------------ a shop removed (#31)


def test_a_removed_shop_leaves_no_product_in_any_answer(
    tmp_path: Path, encoder: SentenceEncoder
) -> None:
    """``lookalike sources remove``: the catalog drops the shop at once, while the index may
    still hold its points (the index owner hears of it later); no path answers with them."""
    with fresh_postgres_database() as url:
        catalog = Catalog(url)
        catalog.migrate()
        index = EdgeIndex(tmp_path / "index")
        ids = _fill(catalog, index, encoder)
        key = catalog.add_api_key(ApiKeyIn(name="south-web", shops=("south",))).key
        world = Shops(catalog, index, gateway_settings(tmp_path / "data", words_paths="text"), ids)
        gone = set(ids["south"])
        try:
            with world.client() as client:
                assert _ids(_recommend(client, _like(world, k=20))) & gone
                assert remove_source(catalog, "south", lambda products, images: True) == 4
                for body in (_like(world), {"text": "navy tee shirt", "k": 20}):
                    assert not _ids(_recommend(client, body)) & gone
                    assert _ids(_recommend(client, body)), "the other shop still answers"
                    assert not _ids(_recommend(client, {**body, "shop": "north"})) & gone
                    refused = _recommend(client, {**body, "shop": "south"})
                    assert refused.status_code == 422
                    assert refused.json()["detail"] == "no shop named 'south'; the shops are: north"
                # The removed shop's key still works, and sees nothing.
                assert _ids(_recommend(client, {"text": "navy tee shirt"}, key=key)) == set()
                assert _recommend(client, {"product_id": min(gone)}).status_code == 404
                status = client.get("/status").json()
                assert [row["source"] for row in status["shops"]] == ["north"]
        finally:
            index.close()
            catalog.dispose()
