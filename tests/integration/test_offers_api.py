"""One product across shops in ``/recommend`` (issue 31): a product several shops sell is
listed once per answer, whichever shop's picture matched, with the other shops' offers (price
and link), within the shop scope and a storefront key's shops; an offer shown counts for
storefront feedback.

Real Postgres and a real embedded index, filled as ``test_shops`` fills them (random picture
vectors, the real sentence model's text points), so the ``product_id`` and words paths answer
without a detector or an embedder; a photo's answer goes through the same hydration."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from services.gateway.app import create_app
from services.ingest import indexing
from shared.colour import COLOUR_DIM
from shared.db import ApiKeyIn, Catalog, ImageIn, ProductIn, SourceIn
from shared.settings import Settings
from shared.taxonomy import class_named
from shared.vectors import EdgeIndex
from shared.words import SentenceEncoder
from tests.conftest import _empty
from tests.gateway_support import crop_point, gateway_settings, indexed_without_models

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning"),
]

DIM = 32
VERSION = "offers-test-model"
EAN = "4006381333931"
# shop -> (title, price, attributes) of its products; the first two are sold by several shops.
SHOPS: dict[str, list[tuple[str, int, dict[str, Any]]]] = {
    "north": [
        ("navy tee", 20, {"gtin": EAN}),
        ("red polo tee", 30, {"mpn": "PO-1"}),
        ("white tee", 12, {}),
        ("grey tee", 14, {}),
    ],
    "south": [
        ("navy tee classic", 18, {"gtin": [f"0{EAN}"]}),
        ("polo tee red", 28, {"mpn": "po 1"}),
        ("green tee", 11, {}),
    ],
    "east": [("navy tee", 25, {"gtin": EAN}), ("black tee", 9, {})],
}


@dataclass
class Offers:
    catalog: Catalog
    index: EdgeIndex
    settings: Settings
    ids: dict[str, list[int]]

    def client(self) -> TestClient:
        return TestClient(create_app(self.settings, catalog=self.catalog, index=self.index))

    @property
    def navy(self) -> set[int]:
        return {self.ids[shop][0] for shop in ("north", "south", "east")}

    @property
    def polo(self) -> set[int]:
        return {self.ids["north"][1], self.ids["south"][1]}


def _fill(catalog: Catalog, index: EdgeIndex, encoder: SentenceEncoder) -> dict[str, list[int]]:
    rng = np.random.default_rng(31)
    collection = indexing.ensure_collection(index, VERSION, DIM)
    garment = class_named("t-shirt")
    ids: dict[str, list[int]] = {}
    texts = []
    for name, products in SHOPS.items():
        source = catalog.upsert_source(SourceIn(name=name, base_url=f"https://{name}.example/"))
        items = [
            ProductIn(
                canonical_url=f"https://{name}.example/p/{n}",
                title=title,
                brand="Acme",
                price=price,
                currency="EUR",
                category="tees",
                attributes=attributes,
                images=(ImageIn(url=f"https://{name}.example/img/{n}.jpg"),),
            )
            for n, (title, price, attributes) in enumerate(products)
        ]
        report = catalog.upsert_products(source.id, items)
        ids[name] = report.created
        points = []
        for product in indexed_without_models(catalog, report).values():
            vector = (1.0 + rng.standard_normal(DIM)).tolist()
            colour = (1.0 + rng.standard_normal(COLOUR_DIM)).tolist()
            vectors = {"cnn": vector, "cnn_l1": vector, "colour": colour}
            points.append(crop_point(product, name, VERSION, vectors, garment=garment))
            texts.append(indexing.ProductText(product, name, garment, product.images[0].url))
        index.upsert(collection, points)
    indexing.index_texts(index, encoder, texts)
    return ids


@pytest.fixture(scope="module")
def offers(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Offers]:
    tmp = tmp_path_factory.mktemp("offers")
    catalog = Catalog(postgres_url)
    _empty(catalog)
    index = EdgeIndex(tmp / "index")
    ids = _fill(catalog, index, SentenceEncoder())
    settings = gateway_settings(tmp / "data", words_paths="text")
    yield Offers(catalog, index, settings, ids)
    index.close()
    catalog.dispose()


@pytest.fixture(scope="module")
def client(offers: Offers) -> Iterator[TestClient]:
    with offers.client() as test_client:
        yield test_client


def _answer(client: TestClient, body: dict[str, Any], key: str | None = None) -> list[Any]:
    headers = {"X-API-Key": key} if key is not None else {}
    response = client.post("/recommend", json=body, headers=headers)
    assert response.status_code == 200, response.text
    [group] = response.json()["groups"]
    listed: list[Any] = group["recommendations"]
    assert len({r["id"] for r in listed}) == len(listed), "each product once"
    return listed


def _like(offers: Offers, **fields: Any) -> dict[str, Any]:
    """ "More like this" of a product in no offer group, every garment class."""
    return {"product_id": offers.ids["north"][3], "cross_category": True, "k": 20, **fields}


def _of(listed: list[Any], members: set[int]) -> list[Any]:
    return [r for r in listed if r["id"] in members]


def test_every_path_lists_a_product_once_with_the_other_shops_offers(
    offers: Offers, client: TestClient
) -> None:
    for body in (_like(offers), {"text": "navy tee", "k": 20}):
        listed = _answer(client, body)
        [navy] = _of(listed, offers.navy)
        others = offers.navy - {navy["id"]}
        assert {o["id"] for o in navy["offers"]} == others, body
        shop_of = {offers.ids[shop][0]: shop for shop in ("north", "south", "east")}
        assert sorted(o["shop"] for o in navy["offers"]) == sorted(shop_of[i] for i in others)
        by_shop = {o["shop"]: o for o in navy["offers"]}
        if "south" in by_shop:
            south = by_shop["south"]
            assert (south["price"], south["currency"]) == (18.0, "EUR")
            assert south["url"] == "https://south.example/p/0"
            assert south["title"] == "navy tee classic"
        prices = [o["price"] for o in navy["offers"]]
        assert prices == sorted(prices), "cheapest first"
        [polo] = _of(listed, offers.polo)
        assert [o["id"] for o in polo["offers"]] == list(offers.polo - {polo["id"]})
        alone = [r for r in listed if r["id"] not in offers.navy | offers.polo]
        assert alone and all(r["offers"] == [] for r in alone)


def test_more_like_this_never_answers_the_product_itself_at_another_shop(
    offers: Offers, client: TestClient
) -> None:
    for start in offers.navy:
        listed = _answer(client, {"product_id": start, "cross_category": True, "k": 20})
        assert not _of(listed, offers.navy)
        assert _of(listed, offers.polo), "other offer groups are answered as ever"


def test_offers_stay_within_the_shop_scope(offers: Offers, client: TestClient) -> None:
    listed = _answer(client, _like(offers, shop="north,east"))
    [navy] = _of(listed, offers.navy)
    assert navy["id"] in {offers.ids["north"][0], offers.ids["east"][0]}
    assert {o["shop"] for o in navy["offers"]} == {"north", "east"} - {
        "north" if navy["id"] == offers.ids["north"][0] else "east"
    }
    [polo] = _of(listed, offers.polo)
    assert polo["id"] == offers.ids["north"][1] and polo["offers"] == [], "south is out of scope"
    only_south = _answer(client, {"text": "navy tee", "k": 20, "shop": "south"})
    assert all(r["offers"] == [] for r in only_south)


def test_a_storefront_key_sees_only_its_shops_offers(offers: Offers, client: TestClient) -> None:
    key = offers.catalog.add_api_key(ApiKeyIn(name="ns-web", shops=("north", "south"))).key
    try:
        listed = _answer(client, _like(offers), key=key)
        [navy] = _of(listed, offers.navy)
        pair = {offers.ids["north"][0], offers.ids["south"][0]}
        assert navy["id"] in pair, "east is not the key's"
        assert [o["id"] for o in navy["offers"]] == list(pair - {navy["id"]})
    finally:
        offers.catalog.remove_api_key("ns-web")


def test_an_offer_shown_counts_for_storefront_feedback(offers: Offers, client: TestClient) -> None:
    response = client.post("/recommend", json=_like(offers))
    request_id = response.headers["X-Request-ID"]
    [navy] = _of(response.json()["groups"][0]["recommendations"], offers.navy)
    offer = navy["offers"][0]["id"]
    recorded = client.post(
        "/feedback", json={"kind": "click", "product_id": offer, "request_id": request_id}
    )
    assert recorded.status_code == 201, recorded.text
