"""The recommender library on a real embedded index (Qdrant Edge) with hand-made vectors."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from services.ingest import indexing
from services.recommender.schemas import Filters, RecommendQuery, SimilarQuery
from services.recommender.service import Recommender, query_filter, shape_similarity
from shared import index_layout
from shared.colour import COLOUR_DIM, SHOPPER_COLOURS
from shared.errors import NotFoundError, ServiceUnavailableError
from shared.vectors import EdgeIndex, PayloadFilter, Point

pytestmark = pytest.mark.unit

DIM = 8
VERSION = "test-model"


def _unit(values: list[float]) -> list[float]:
    array = np.asarray(values, dtype=np.float32)
    return (array / np.linalg.norm(array)).tolist()


def _colour(bin_: int) -> list[float]:
    values = [0.01] * COLOUR_DIM
    values[bin_] = 1.0
    return _unit(values)


def _point(product: int, image: int, shape: list[float], colour: int, **payload: object) -> Point:
    base = {
        "product_id": product,
        "image_id": image,
        "category": "tops",
        "brand": "Acme",
        "price": 20.0,
        "currency": "EUR",
        "active": 1,
        "image_url": f"https://shop.example/{product}/{image}.jpg",
        "bbox": [0.0, 0.0, 10.0, 10.0],
        "model_version": VERSION,
        "garment": "top",
        "garment_parent": "top",
    }
    base.update(payload)
    vector = _unit(shape)
    return Point(
        str(uuid.uuid5(uuid.NAMESPACE_URL, f"{product}/{image}")),
        {"cnn": vector, "cnn_l1": vector, "colour": _colour(colour)},
        base,
    )


def _axis(i: int, noise: float = 0.0, other: int = 7) -> list[float]:
    values = [0.0] * DIM
    values[i] = 1.0
    values[other] += noise
    return values


@pytest.fixture
def index(tmp_path: Path) -> Iterator[EdgeIndex]:
    engine = EdgeIndex(tmp_path / "index")
    indexing.ensure_collection(engine, VERSION, DIM)
    collection = index_layout.collection_name(VERSION)
    engine.upsert(
        collection,
        [
            # product 1: two crops; the second is the near-exact match
            _point(1, 10, _axis(0, 0.9), colour=3),
            _point(1, 11, _axis(0, 0.05), colour=3),
            _point(2, 20, _axis(0, 0.2), colour=20),
            _point(3, 30, _axis(0, 0.4), colour=3, brand="Other", price=80.0),
            _point(
                4,
                40,
                _axis(0, 0.3),
                colour=3,
                category="pants",
                garment="jeans",
                garment_parent="bottom",
            ),
            _point(5, 50, _axis(0, 0.1), colour=3, active=0),
            _point(6, 60, _axis(0, 0.6), colour=3, currency="USD"),
            _point(7, 70, _axis(1), colour=20),
        ],
    )
    yield engine
    engine.close()


def _query(**values: object) -> RecommendQuery:
    fields: dict[str, object] = {
        "embedding": _unit(_axis(0)),
        "colour": _colour(3),
        "model_version": VERSION,
        "k": 10,
    }
    fields.update(values)
    return RecommendQuery.model_validate(fields)


def _ids(recommender: Recommender, **values: object) -> list[int]:
    [result] = recommender.recommend([_query(**values)])
    return [hit.product_id for hit in result.hits]


def test_one_hit_per_product_best_crop_wins_inactive_never(index: EdgeIndex) -> None:
    recommender = Recommender(index)
    [result] = recommender.recommend([_query()])
    ids = [hit.product_id for hit in result.hits]
    assert ids == [1, 2, 4, 3, 6, 7]  # 5 is inactive
    first = result.hits[0]
    assert first.image_url == "https://shop.example/1/11.jpg"  # the closer crop
    assert first.score == pytest.approx(first.shape_score) and first.score > 0.99
    assert result.collection == index_layout.collection_name(VERSION)


def test_filters(index: EdgeIndex) -> None:
    recommender = Recommender(index)
    assert _ids(recommender, categories=["pants"]) == [4]
    assert set(_ids(recommender, categories=["pants", "tops"])) == {1, 2, 3, 4, 6, 7}
    assert _ids(recommender, filters=Filters(brand=["Other"])) == [3]
    assert 3 not in _ids(recommender, filters=Filters(max_price=50))
    assert _ids(recommender, filters=Filters(min_price=50)) == [3]
    assert _ids(recommender, filters=Filters(currency="usd")) == [6]
    assert _ids(recommender, exclude_product_ids=[1, 2])[:1] == [4]


def test_l1_and_cosine(index: EdgeIndex) -> None:
    recommender = Recommender(index)
    [cosine] = recommender.recommend([_query(metric="cosine")])
    [l1] = recommender.recommend([_query(metric="l1")])
    assert [h.product_id for h in cosine.hits][:3] == [h.product_id for h in l1.hits][:3]
    assert all(0 <= h.score <= 1 for h in l1.hits)
    assert shape_similarity(0.0, "l1", 100) == 1.0
    assert shape_similarity(2 * math.sqrt(100), "l1", 100) == 0.0
    assert shape_similarity(-0.3, "cosine", 100) == 0.0


def test_colour_weight(index: EdgeIndex) -> None:
    recommender = Recommender(index)
    shape_only = _ids(recommender, color_weight=0.0)
    colour_only = _ids(recommender, color_weight=1.0, colour=_colour(20))
    blended = _ids(recommender, color_weight=0.6, colour=_colour(20))
    assert shape_only[:2] == [1, 2]
    assert set(colour_only[:2]) == {2, 7}  # the red ones, whatever their shape
    assert blended[0] == 2  # close shape and the right colour
    [result] = recommender.recommend([_query(color_weight=0.5)])
    assert all(h.colour_score is not None and h.shape_score is not None for h in result.hits)


@pytest.mark.parametrize("weight", [0.3, 0.7])
def test_blended_scores_are_the_index_similarities(index: EdgeIndex, weight: float) -> None:
    """Shape-led queries score colour themselves, colour-led ones ask the index: same numbers."""
    recommender = Recommender(index)
    query = _query(color_weight=weight, colour=[2 * c for c in _colour(20)])  # not unit length
    [result] = recommender.recommend([query])
    assert result.hits
    for hit in result.hits:
        [shape] = index.search(
            result.collection, "cnn", query.embedding, limit=1,
            where=PayloadFilter(equals={"product_id": hit.product_id}),
        )  # fmt: skip
        colours = index.search(
            result.collection, "colour", query.colour, limit=16,
            where=PayloadFilter(equals={"product_id": hit.product_id}),
        )  # fmt: skip
        by_point = {c.id: c.score for c in colours}
        assert hit.colour_score == pytest.approx(by_point[hit.point_id], abs=1e-5)
        assert hit.score == pytest.approx(
            (1 - weight) * hit.shape_score + weight * hit.colour_score, abs=1e-5
        )
        assert hit.shape_score <= shape.score + 1e-5


def test_diversity(index: EdgeIndex) -> None:
    recommender = Recommender(index)
    plain = _ids(recommender, k=3)
    diverse = _ids(recommender, k=3, diversity=0.9)
    assert plain[0] == diverse[0] == 1
    assert 7 in diverse and 7 not in plain  # the dissimilar one is pulled up


def test_pool_widens_when_crops_crowd_out_products(tmp_path: Path) -> None:
    engine = EdgeIndex(tmp_path / "index")
    indexing.ensure_collection(engine, VERSION, DIM)
    points = [_point(1, i, _axis(0, 0.01 * i), colour=3) for i in range(1, 13)]
    points.append(_point(2, 100, _axis(0, 0.9), colour=3))
    engine.upsert(index_layout.collection_name(VERSION), points)
    recommender = Recommender(engine, candidates=4)
    assert _ids(recommender, k=2) == [1, 2]
    engine.close()


def test_product_points_and_collections(index: EdgeIndex, tmp_path: Path) -> None:
    recommender = Recommender(index)
    stored = recommender.product_points(1)
    assert [p.payload["image_id"] for p in stored.points] == [10, 11]
    assert len(stored.points[0].embedding) == DIM
    assert stored.points[0].colour is not None
    with pytest.raises(NotFoundError):
        recommender.product_points(99)
    with pytest.raises(ServiceUnavailableError, match="no collection for model other"):
        recommender.recommend([_query(model_version="other")])
    assert recommender.check().ok
    empty = EdgeIndex(tmp_path / "empty")
    [nothing] = Recommender(empty).recommend([_query()])
    assert nothing.hits == [] and nothing.collection is None
    assert "nothing indexed yet" in Recommender(empty).check().detail
    empty.close()


def test_similar_to_product_searches_with_its_first_crop_and_leaves_it_out(
    index: EdgeIndex,
) -> None:
    recommender = Recommender(index)
    similar = recommender.similar_to_product(2, SimilarQuery(k=10, color_weight=0.0))
    stored = recommender.product_points(2).points[0]
    [same] = recommender.recommend(
        [
            _query(
                embedding=stored.embedding,
                colour=stored.colour,
                categories=["tops"],
                exclude_product_ids=[2],
            )
        ]
    )
    assert similar.hits == same.hits
    assert {hit.product_id for hit in similar.hits} == {1, 3, 6, 7}  # its category, not itself
    assert (similar.category, similar.categories) == ("tops", ["tops"])
    assert similar.model_version == VERSION
    everywhere = recommender.similar_to_product(2, SimilarQuery(k=10, categories=[]))
    assert 4 in [hit.product_id for hit in everywhere.hits] and everywhere.categories == []
    pants = recommender.similar_to_product(2, SimilarQuery(k=10, categories=["pants"]))
    assert [hit.product_id for hit in pants.hits] == [4]
    with pytest.raises(NotFoundError):
        recommender.similar_to_product(99, SimilarQuery())


def test_query_filter_always_active() -> None:
    where = query_filter(_query(categories=["a"], filters=Filters(brand=["x", "y"])))
    assert where.equals == {"active": 1, "category": "a", "brand": ["x", "y"]}
    with pytest.raises(ValueError, match="above max_price"):
        Filters(min_price=5, max_price=1)


def test_query_filter_scopes_to_shops() -> None:
    one = query_filter(_query(filters=Filters(source=["north"])))
    assert one.equals == {"active": 1, "source": "north"}
    several = query_filter(_query(filters=Filters(source=["south", "north", "south"])))
    assert several.equals == {"active": 1, "source": ["north", "south"]}
    assert "source" not in query_filter(_query()).equals, "no shops: every shop"


def test_garment_classes_scope_the_search_whatever_the_shop_calls_them(
    index: EdgeIndex,
) -> None:
    recommender = Recommender(index)
    assert _ids(recommender, garments=["bottom"]) == [4]
    assert 4 not in _ids(recommender, garments=["top"])
    assert _ids(recommender, garments=["top", "bottom"]) == _ids(recommender)
    assert _ids(recommender, garments=["footwear"]) == []  # the shop sells none
    [result] = recommender.recommend([_query(garments=["bottom"])])
    assert result.hits[0].garment == "jeans" and result.hits[0].category == "pants"


def test_the_products_of_unlikely_garment_classes_come_last(tmp_path: Path) -> None:
    engine = EdgeIndex(tmp_path / "unlikely")
    indexing.ensure_collection(engine, VERSION, DIM)
    # Nearest first: a skirt, jeans, a skirt, trousers, jeans.
    garments = ["skirt", "jeans", "skirt", "trousers", "jeans"]
    engine.upsert(
        index_layout.collection_name(VERSION),
        [
            _point(
                n, n, _axis(0, 0.1 * n), colour=3, category=g, garment=g, garment_parent="bottom"
            )
            for n, g in enumerate(garments, start=1)
        ],
    )
    recommender = Recommender(engine)
    assert _ids(recommender, garments=["bottom"]) == [1, 2, 3, 4, 5]
    assert _ids(recommender, garments=["bottom"], unlikely_garments=["skirt"]) == [2, 4, 5, 1, 3]
    # The shop category of the nearest product votes among the likely ones only: jeans.
    voted = _ids(recommender, garments=["bottom"], unlikely_garments=["skirt"], category_votes=1)
    assert voted == [2, 5, 4, 1, 3]
    engine.close()


def test_an_unsure_querys_classes_share_the_places(tmp_path: Path) -> None:
    engine = EdgeIndex(tmp_path / "shares")
    indexing.ensure_collection(engine, VERSION, DIM)
    collection = index_layout.collection_name(VERSION)
    # Eight bottoms nearer the query than any of the eight tops.
    engine.upsert(
        collection,
        [_point(n, n, _axis(0, 0.05 * n), colour=3, garment_parent="bottom") for n in range(1, 9)]
        + [
            _point(n, n, _axis(0, 0.5 + 0.05 * n), colour=3, garment_parent="top")
            for n in range(9, 17)
        ],
    )
    recommender = Recommender(engine)

    def parents(**values: object) -> list[str]:
        [result] = recommender.recommend([_query(k=6, **values)])
        hits = [hit.product_id for hit in result.hits]
        assert hits == sorted(
            hits, key=lambda i: -next(h.score for h in result.hits if h.product_id == i)
        )
        return ["bottom" if i <= 8 else "top" for i in hits]

    assert parents(garments=["top", "bottom"]).count("top") == 0  # no shares: best scores
    shared = parents(garments=["top", "bottom"], garment_shares=[0.6, 0.4])
    assert shared.count("top") == 4 and shared.count("bottom") == 2
    # A class with too few products leaves its places to the others.
    assert parents(garments=["dress", "bottom"], garment_shares=[0.9, 0.1]) == ["bottom"] * 6
    engine.close()


def test_an_index_made_before_garment_classes_is_searched_whole_and_says_so(
    tmp_path: Path,
) -> None:
    engine = EdgeIndex(tmp_path / "old")
    indexing.ensure_collection(engine, VERSION, DIM)
    collection = index_layout.collection_name(VERSION)
    old = [_point(n, n, _axis(0, 0.1 * n), colour=3) for n in range(1, 4)]
    for point in old:
        del point.payload["garment"], point.payload["garment_parent"]
    engine.upsert(collection, old)
    [result] = Recommender(engine).recommend([_query(garments=["bottom"])])
    assert [hit.product_id for hit in result.hits] == [1, 2, 3]
    assert result.garments == []  # not scoped: the gateway's `searched` is empty
    engine.close()


def _navy_first() -> list[float]:
    """Colour probabilities of a garment the model reads as navy (0.7) or black (0.3)."""
    probabilities = [0.0] * len(SHOPPER_COLOURS)
    probabilities[SHOPPER_COLOURS.index("navy")] = 0.7
    probabilities[SHOPPER_COLOURS.index("black")] = 0.3
    return probabilities


@pytest.fixture
def named(tmp_path: Path) -> Iterator[EdgeIndex]:
    """Shirts and t-shirts of named colours, nearest by shape first: a red shirt, a black
    t-shirt, a navy shirt, a navy t-shirt, a black shirt (the same colour descriptor)."""
    engine = EdgeIndex(tmp_path / "named")
    indexing.ensure_collection(engine, VERSION, DIM)
    rows = [
        ("shirts", "red", 0.9),
        ("tshirts", "black", 0.8),
        ("shirts", "navy", 0.9),
        ("tshirts", "navy", 0.6),
        ("shirts", "black", 0.5),
    ]
    engine.upsert(
        index_layout.collection_name(VERSION),
        [
            _point(n, n, _axis(0, 0.1 * n), colour=3, category=c, colour_name=name, colour_p=p)
            for n, (c, name, p) in enumerate(rows, start=1)
        ],
    )
    yield engine
    engine.close()


def test_the_same_named_colour_comes_first_within_the_kind_shape_decided(
    named: EdgeIndex,
) -> None:
    recommender = Recommender(named)
    assert _ids(recommender) == [1, 2, 3, 4, 5]
    coloured = {"colour_probs": _navy_first(), "color_weight": 0.45, "colour_share": 1.0}
    # Navy first, then black (the model's second guess), then the red one.
    assert _ids(recommender, **coloured)[:2] == [3, 4]
    assert _ids(recommender, **coloured)[-1] == 1
    # The nearest by shape vote for the shirts: colour orders them, it never picks the kind
    # (the navy t-shirt, the same colour, stays behind every shirt).
    assert _ids(recommender, category_votes=1, **coloured) == [3, 5, 1, 4, 2]
    # Without the named colours' share, the descriptors (all alike here) leave shape's order.
    assert _ids(recommender, colour_probs=_navy_first(), color_weight=0.45) == [1, 2, 3, 4, 5]
    [result] = recommender.recommend([_query(**coloured)])
    assert [hit.colour_name for hit in result.hits] == ["navy", "navy", "black", "black", "red"]


def test_a_colour_filter_keeps_or_leaves_out_named_colours(named: EdgeIndex) -> None:
    recommender = Recommender(named)
    assert _ids(recommender, colour_names=["navy"]) == [3, 4]
    assert _ids(recommender, colour_names=["navy", "red"]) == [1, 3, 4]
    assert _ids(recommender, exclude_colour_names=["black", "navy"]) == [1]
    assert _ids(recommender, colour_names=["green"]) == []
    with pytest.raises(ValidationError, match="unknown colour names"):
        _query(colour_names=["sparkly"])
    with pytest.raises(ValidationError):
        _query(colour_probs=[1.0])  # one probability per shopper colour


def test_similar_in_another_colour_leaves_out_the_products_own(named: EdgeIndex) -> None:
    recommender = Recommender(named)
    same = recommender.similar_to_product(3, SimilarQuery(k=10, categories=[]))
    assert same.colour_name == "navy" and same.colour_p == 0.9
    other = recommender.similar_to_product(3, SimilarQuery(k=10, categories=[], other_colour=True))
    assert {hit.colour_name for hit in other.hits} == {"red", "black"}
    assert [hit.product_id for hit in other.hits] == [2, 5, 1]  # by shape alone
