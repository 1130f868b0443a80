""" "Based on what you viewed" (issue 32): ``viewed`` and ``not_for_me`` on ``POST /recommend``.

Real Postgres and a real embedded index; the points are written here (picture vectors made
near one direction per kind of garment and one per colour), so no model loads. Two shops:
dresses in two colours and boots."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from services.gateway.app import create_app
from services.ingest import indexing
from services.recommender.sessions import shares
from shared.colour import COLOUR_DIM
from shared.db import ApiKeyIn, Catalog, ImageIn, ProductIn, SourceIn
from shared.errors import NotFoundError
from shared.settings import Settings
from shared.taxonomy import class_named
from shared.vectors import EdgeIndex
from tests.conftest import _empty
from tests.gateway_support import crop_point, gateway_settings, indexed_without_models

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning"),
]

DIM = 32
VERSION = "sessions-test-model"
SHOPS: dict[str, list[tuple[str, str]]] = {
    "north": [("dress", "red")] * 4 + [("dress", "blue")] * 4 + [("boots", "black")] * 4,
    "south": [("dress", "red")] * 2
    + [("boots", "black")] * 2
    + [("boots", "brown")] * 2
    + [("dress", "black")],
}


@dataclass
class Shop:
    catalog: Catalog
    index: EdgeIndex
    settings: Settings
    ids: dict[tuple[str, str, str], list[int]]  # (shop, garment, colour) -> product ids
    unindexed: int  # a product with no point

    def of(self, shop: str, garment: str, colour: str) -> list[int]:
        return self.ids[(shop, garment, colour)]


def _directions(rng: np.random.Generator, names: list[str], dim: int) -> dict[str, np.ndarray]:
    return {name: rng.standard_normal(dim) for name in names}


def _unit(vector: np.ndarray) -> list[float]:
    return (vector / np.linalg.norm(vector)).tolist()


def _fill(catalog: Catalog, index: EdgeIndex) -> tuple[dict[tuple[str, str, str], list[int]], int]:
    rng = np.random.default_rng(32)
    collection = indexing.ensure_collection(index, VERSION, DIM)
    kinds = _directions(rng, ["dress", "boots"], DIM)
    tints = _directions(rng, ["red", "blue", "black", "brown"], DIM)
    hues = _directions(rng, ["red", "blue", "black", "brown"], COLOUR_DIM)
    ids: dict[tuple[str, str, str], list[int]] = {}
    unindexed = 0
    for name, products in SHOPS.items():
        source = catalog.upsert_source(SourceIn(name=name, base_url=f"https://{name}.example/"))
        items = [
            ProductIn(
                canonical_url=f"https://{name}.example/p/{n}",
                title=f"{colour} {garment}",
                price=10 + n,
                currency="EUR",
                category=garment,
                images=(ImageIn(url=f"https://{name}.example/img/{n}.jpg"),),
            )
            for n, (garment, colour) in enumerate([*products, ("dress", "red")])
        ]
        report = catalog.upsert_products(source.id, items)
        stored = indexed_without_models(catalog, report)
        points = []
        for pid, (garment, colour) in zip(report.created, products, strict=False):
            ids.setdefault((name, garment, colour), []).append(pid)
            shape = _unit(kinds[garment] + 0.6 * tints[colour] + 0.3 * rng.standard_normal(DIM))
            hue = _unit(hues[colour] + 0.2 * rng.standard_normal(COLOUR_DIM))
            vectors = {"cnn": shape, "cnn_l1": shape, "colour": hue}
            points.append(
                crop_point(
                    stored[pid],
                    name,
                    VERSION,
                    vectors,
                    garment=class_named(garment),
                    colour=(colour, 0.9),
                )
            )
        index.upsert(collection, points)
        unindexed = report.created[-1]  # the last product of each shop has no point
    return ids, unindexed


@pytest.fixture(scope="module")
def shop(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    tmp = tmp_path_factory.mktemp("sessions")
    catalog = Catalog(postgres_url)
    _empty(catalog)
    index = EdgeIndex(tmp / "index")
    ids, unindexed = _fill(catalog, index)
    settings = gateway_settings(tmp / "data", session_half_life_h=24.0)
    yield Shop(catalog, index, settings, ids, unindexed)
    index.close()
    catalog.dispose()


@pytest.fixture(scope="module")
def client(shop: Shop) -> Iterator[TestClient]:
    with TestClient(create_app(shop.settings, catalog=shop.catalog, index=shop.index)) as test:
        yield test


def _session(client: TestClient, body: dict[str, Any], key: str | None = None) -> Any:
    headers = {"X-API-Key": key} if key is not None else {}
    return client.post("/recommend", json=body, headers=headers)


def _groups(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    return list(response.json()["groups"])


def _viewed(*ids: int, **fields: Any) -> list[dict[str, Any]]:
    return [{"product_id": pid, **fields} for pid in ids]


def _kinds(shop: Shop) -> dict[int, tuple[str, str, str]]:
    return {pid: key for key, ids in shop.ids.items() for pid in ids}


# ------------------------------------------------------------------------------ the answer


def test_a_group_per_kind_in_proportion_to_the_session(shop: Shop, client: TestClient) -> None:
    dresses, boots = shop.of("north", "dress", "red")[:2], shop.of("north", "boots", "black")[:1]
    body = {"viewed": _viewed(*dresses, *boots), "k": 6, "shop": "north"}
    groups = _groups(_session(client, body))
    assert [g["category"] for g in groups] == ["dress", "boots"]
    assert [len(g["recommendations"]) for g in groups] == [4, 2]
    kinds = _kinds(shop)
    for group, garment in zip(groups, ["dress", "boots"], strict=True):
        assert {kinds[r["id"]][1] for r in group["recommendations"]} == {garment}
        assert group["searched"] == [garment], "its shop category first"
    shown = [r["id"] for g in groups for r in g["recommendations"]]
    assert not set(shown) & {*dresses, *boots}, "viewed products never come back"
    assert len(shown) == len(set(shown))
    red = groups[0]["recommendations"][:2]
    assert {kinds[r["id"]][2] for r in red} == {"red"}, "the session's colour first"
    assert groups[0]["colour"]["name"] == "red"


def test_recent_views_count_more(shop: Shop, client: TestClient) -> None:
    dresses, boots = shop.of("north", "dress", "red")[:2], shop.of("north", "boots", "black")[:2]
    old = (datetime.now(UTC) - timedelta(hours=48)).isoformat()
    body = {
        "viewed": [*_viewed(*dresses, seen_at=old), *_viewed(*boots)],
        "k": 5,
        "shop": "north",
    }
    groups = _groups(_session(client, body))
    assert [(g["category"], len(g["recommendations"])) for g in groups] == [
        ("boots", 2),  # the shop has two more boots: their other places go to the dresses
        ("dress", 3),
    ]
    weighted = {"viewed": [*_viewed(*dresses, weight=4), *_viewed(*boots)], "k": 5}
    assert [g["category"] for g in _groups(_session(client, weighted))] == ["dress", "boots"]


def test_not_for_me_pushes_its_kind_away(shop: Shop, client: TestClient) -> None:
    red, blue = shop.of("north", "dress", "red"), shop.of("north", "dress", "blue")
    body = {"viewed": _viewed(*red[:2]), "k": 6, "shop": "north"}  # every other dress
    before = {r["id"]: r["score"] for r in _groups(_session(client, body))[0]["recommendations"]}
    after = _groups(_session(client, {**body, "not_for_me": [blue[0]]}))[0]["recommendations"]
    kinds = _kinds(shop)
    assert [kinds[r["id"]][2] for r in after] == ["red", "red", "blue", "blue", "blue"]
    assert blue[0] not in {r["id"] for r in after}, "a rejected product never comes back"
    for r in after:
        if kinds[r["id"]][2] == "blue":
            assert r["score"] < before[r["id"]], "pushed away from the rejected colour"


def test_not_for_me_reaches_its_own_kind_only(shop: Shop, client: TestClient) -> None:
    dresses, boot = shop.of("north", "dress", "red")[:2], shop.of("south", "boots", "brown")[0]
    body = {"viewed": _viewed(*dresses, boot), "k": 6}
    rejected = {**body, "not_for_me": [shop.of("south", "dress", "black")[0]]}
    before, after = _groups(_session(client, body)), _groups(_session(client, rejected))
    kinds = _kinds(shop)
    assert [kinds[r["id"]][2] for r in before[1]["recommendations"]] == ["brown", "black"]
    assert before[1]["recommendations"] == after[1]["recommendations"], "a black dress rejected"
    assert all(kinds[r["id"]][2] != "black" for r in after[0]["recommendations"])


def test_filters_scope_and_colour_apply(shop: Shop, client: TestClient) -> None:
    kinds = _kinds(shop)
    south = _groups(_session(client, {"viewed": _viewed(shop.of("south", "dress", "red")[0])}))
    assert {kinds[r["id"]][0] for g in south for r in g["recommendations"]} >= {"south"}
    scoped = _groups(
        _session(client, {"viewed": _viewed(shop.of("south", "dress", "red")[0]), "shop": "south"})
    )
    assert {kinds[r["id"]][0] for g in scoped for r in g["recommendations"]} == {"south"}
    body = {"viewed": _viewed(*shop.of("north", "dress", "red")[:2]), "shop": "north"}
    blue = _groups(_session(client, {**body, "colour": "blue"}))[0]["recommendations"]
    assert blue and {kinds[r["id"]][2] for r in blue} == {"blue"}
    other = _groups(_session(client, {**body, "colour_mode": "other"}))[0]["recommendations"]
    assert other and "red" not in {kinds[r["id"]][2] for r in other}
    cheap = _groups(_session(client, {**body, "max_price": 12}))[0]["recommendations"]
    assert all(r["price"] <= 12 for r in cheap)


def test_a_shop_gone_from_the_catalog_leaves_no_product_and_the_places_fill(
    shop: Shop, client: TestClient
) -> None:
    """A disabled shop's products are inactive in the catalog while the index still has them
    (until the sweeper's upkeep): the session is asked again without them."""
    body = {"viewed": _viewed(*shop.of("north", "dress", "red")[:2]), "k": 6}
    everywhere = [r["id"] for g in _groups(_session(client, body)) for r in g["recommendations"]]
    kinds = _kinds(shop)
    assert "south" in {kinds[pid][0] for pid in everywhere}
    shop.catalog.disable_source("south")
    try:
        answer = [r["id"] for g in _groups(_session(client, body)) for r in g["recommendations"]]
    finally:
        shop.catalog.enable_source("south", max_missed_runs=10**6)
    assert len(answer) == 6, "every other north dress"
    assert {kinds[pid][0] for pid in answer} == {"north"}


def test_places_are_shared_by_the_largest_remainder() -> None:
    assert shares([2.0, 1.0], 6) == [4, 2]
    assert shares([2.0, 0.5], 5) == [4, 1]
    assert shares([1.0, 1.0, 1.0], 2) == [1, 1, 0]
    assert sum(shares([0.3, 0.3, 0.4], 10)) == 10


# ------------------------------------------------------------------------------- bad input


@pytest.fixture
def north_key(shop: Shop) -> Iterator[str]:
    made = shop.catalog.add_api_key(ApiKeyIn(name="north-sessions", shops=("north",)))
    yield made.key
    with contextlib.suppress(NotFoundError):
        shop.catalog.remove_api_key("north-sessions")


def test_bad_sessions_are_refused(shop: Shop, client: TestClient, north_key: str) -> None:
    dress = shop.of("north", "dress", "red")[0]
    south = shop.of("south", "dress", "red")[0]
    ahead = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"viewed": []}, "at least one viewed product"),
        ({"viewed": _viewed(*range(1, 52))}, "at most 50"),
        ({"viewed": _viewed(dress), "not_for_me": list(range(100, 151))}, "at most 50"),
        ({"viewed": _viewed(dress, 999_999, 999_998)}, "no product 999999, 999998"),
        ({"viewed": _viewed(dress), "not_for_me": [999_997]}, "not_for_me: no product 999997"),
        ({"viewed": _viewed(dress, dress)}, f"product {dress} more than once"),
        ({"viewed": _viewed(dress), "not_for_me": [7, 7]}, "more than once"),
        ({"viewed": _viewed(dress), "not_for_me": [dress]}, "both viewed and not_for_me"),
        ({"viewed": _viewed(dress, weight=0)}, "greater than or equal to 0.1"),
        ({"viewed": _viewed(dress, weight=11)}, "less than or equal to 10"),
        ({"viewed": _viewed(dress, weight=True)}, "not a boolean"),
        ({"viewed": _viewed(dress, seen_at=ahead)}, "is in the future"),
        ({"viewed": _viewed(dress, seen_at="2026-12-05T10:00:00")}, "timezone"),
        ({"viewed": _viewed(dress), "product_id": dress}, "give viewed or product_id"),
        ({"viewed": _viewed(dress), "text": "red dress"}, "give viewed or text"),
        ({"not_for_me": [dress]}, "give viewed too"),
        ({"viewed": _viewed(dress), "metric": "l1"}, "cosine"),
        ({"viewed": _viewed(dress), "diversity": 0.5}, "diversity"),
        ({"viewed": [{"id": dress}]}, "product_id"),
        ({"viewed": _viewed(dress, south), "shop": "north"}, f"no product {south} in shop north"),
        ({"viewed": _viewed(shop.unindexed)}, "no indexed pictures"),
    ]
    for body, message in cases:
        response = _session(client, body)
        assert response.status_code == 422, (body, response.text)
        assert message in response.json()["detail"], (body, response.json()["detail"])
    keyed = _session(client, {"viewed": _viewed(dress, south)}, key=north_key)
    assert keyed.status_code == 422, keyed.text
    assert f"viewed: no product {south} in shop north" in keyed.json()["detail"]
    rejected = _session(client, {"viewed": _viewed(dress), "not_for_me": [south]}, key=north_key)
    assert rejected.status_code == 422
    assert f"not_for_me: no product {south}" in rejected.json()["detail"]
    own = _groups(_session(client, {"viewed": _viewed(dress)}, key=north_key))
    assert {_kinds(shop)[r["id"]][0] for g in own for r in g["recommendations"]} == {"north"}


def test_the_recommender_service_answers_a_session_like_in_process(
    shop: Shop, client: TestClient
) -> None:
    """Compose shape: the recommender as a service (``POST /session``)."""
    from services.recommender.api import create_app as recommender_app
    from tests.recommend_support import serve_app

    dresses, boots = shop.of("north", "dress", "red")[:2], shop.of("north", "boots", "black")[:1]
    body = {
        "viewed": _viewed(*dresses, *boots),
        "not_for_me": [shop.of("north", "dress", "blue")[0]],
        "k": 6,
    }
    with serve_app(recommender_app(shop.settings, index=shop.index)) as url:
        settings = shop.settings.model_copy(update={"recommender_url": url})
        app = create_app(settings, catalog=shop.catalog, index=shop.index)
        with TestClient(app) as remote:
            assert _groups(_session(remote, body)) == _groups(_session(client, body))
            missing = _session(remote, {"viewed": _viewed(shop.unindexed)})
            assert missing.status_code == 422
            assert "no indexed pictures" in missing.json()["detail"]
