"""The vector index: the same scenarios on both engines (Qdrant Edge and qdrant-client)."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient

from shared import index_holder
from shared.errors import ConfigurationError, InvalidInputError, NotFoundError
from shared.vectors import (
    ClientIndex,
    CollectionSpec,
    EdgeIndex,
    IndexHeldError,
    PayloadFilter,
    Point,
    VectorIndex,
    VectorSpec,
    best_score_similarity,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning"),
]

DIM = 16
SPEC = CollectionSpec(
    name="catalog_v1",
    vectors={"cnn": VectorSpec(DIM, "cosine"), "cnn_l1": VectorSpec(DIM, "l1")},
    payload_indexes={
        "category": "keyword",
        "price": "float",
        "active": "integer",
        "product_id": "integer",
    },
)
CATEGORIES = ["tops", "pants", "bags"]


def point_id(n: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"test/{n}"))


def make_points(n: int = 60, seed: int = 0) -> tuple[list[Point], np.ndarray]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    points = [
        Point(
            id=point_id(i),
            vectors={"cnn": vectors[i].tolist(), "cnn_l1": vectors[i].tolist()},
            payload={
                "product_id": i,
                "category": CATEGORIES[i % 3],
                "price": float(10 * i),
                "active": 1,
            },
        )
        for i in range(n)
    ]
    return points, vectors


@pytest.fixture(params=["edge", "qdrant-client"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorIndex]:
    if request.param == "edge":
        engine: VectorIndex = EdgeIndex(tmp_path / "edge")
    else:
        engine = ClientIndex(QdrantClient(path=str(tmp_path / "local")))
    engine.ensure_collection(SPEC)
    yield engine
    engine.close()


def test_collections_are_created_once(index: VectorIndex) -> None:
    index.ensure_collection(SPEC)
    assert index.collections() == ["catalog_v1"]


def test_upsert_is_idempotent_by_id(index: VectorIndex) -> None:
    points, _ = make_points()
    index.upsert("catalog_v1", points)
    index.upsert("catalog_v1", points[:10])
    assert index.count("catalog_v1") == 60


def test_cosine_and_l1_search_best_first(index: VectorIndex) -> None:
    points, vectors = make_points()
    index.upsert("catalog_v1", points)
    query = vectors[7] + 0.05

    cosine = index.search("catalog_v1", "cnn", query.tolist(), limit=5)
    expected = np.argsort(-(vectors @ query / np.linalg.norm(query)))[:5]
    assert [h.payload["product_id"] for h in cosine] == expected.tolist()
    assert cosine[0].score > cosine[-1].score

    l1 = index.search("catalog_v1", "cnn_l1", query.tolist(), limit=5)
    expected_l1 = np.argsort(np.abs(vectors - query).sum(axis=1))[:5]
    assert [h.payload["product_id"] for h in l1] == expected_l1.tolist()
    assert l1[0].score == pytest.approx(float(np.abs(vectors[7] - query).sum()), rel=1e-4)


def test_search_accepts_a_wider_hnsw_beam(index: VectorIndex) -> None:
    points, vectors = make_points()
    index.upsert("catalog_v1", points)
    query = vectors[3].tolist()
    default = index.search("catalog_v1", "cnn", query, limit=5)
    wide = index.search("catalog_v1", "cnn", query, limit=5, hnsw_ef=256)
    assert [h.id for h in wide] == [h.id for h in default]
    assert wide[0].payload["product_id"] == 3


def test_filters(index: VectorIndex) -> None:
    points, vectors = make_points()
    index.upsert("catalog_v1", points)
    query = vectors[0].tolist()

    def ids(where: PayloadFilter) -> set[int]:
        return {
            h.payload["product_id"]
            for h in index.search("catalog_v1", "cnn", query, limit=100, where=where)
        }

    assert ids(PayloadFilter(equals={"category": "tops"})) == set(range(0, 60, 3))
    assert ids(PayloadFilter(equals={"category": ["tops", "bags"]})) == {
        i for i in range(60) if i % 3 != 1
    }
    assert ids(PayloadFilter(ranges={"price": (100.0, 200.0)})) == set(range(10, 21))
    assert ids(PayloadFilter(ranges={"price": (None, 20.0)})) == {0, 1, 2}
    assert 0 not in ids(PayloadFilter(excludes={"product_id": [0]}))
    assert index.count("catalog_v1", PayloadFilter(equals={"category": "pants"})) == 20


def test_inactive_products_leave_results(index: VectorIndex) -> None:
    points, vectors = make_points()
    index.upsert("catalog_v1", points)
    index.set_payload("catalog_v1", PayloadFilter(equals={"product_id": [1, 2]}), {"active": 0})
    active = PayloadFilter(equals={"active": 1})
    hits = index.search("catalog_v1", "cnn", vectors[1].tolist(), limit=100, where=active)
    assert {1, 2}.isdisjoint(h.payload["product_id"] for h in hits)
    assert len(hits) == 58


def test_delete_by_id_and_by_filter(index: VectorIndex) -> None:
    points, _ = make_points()
    index.upsert("catalog_v1", points)
    index.delete("catalog_v1", [point_id(0), point_id(1)])
    index.delete_where("catalog_v1", PayloadFilter(equals={"category": "bags"}))
    # 0 and 1 deleted by id, then the 20 bags (2, 5, ..., 59) by filter.
    assert index.count("catalog_v1") == 60 - 2 - 20


def test_boolean_filters_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="0/1"):
        PayloadFilter(equals={"active": True})


def test_retrieve_with_vectors(index: VectorIndex) -> None:
    points, vectors = make_points()
    index.upsert("catalog_v1", points)
    (hit,) = index.retrieve("catalog_v1", [point_id(5)], with_vectors=True)
    assert hit.payload["product_id"] == 5
    assert hit.vectors is not None
    np.testing.assert_allclose(hit.vectors["cnn_l1"], vectors[5], rtol=1e-5)


def test_alias_switch_keeps_queries_working(index: VectorIndex) -> None:
    points, vectors = make_points()
    index.upsert("catalog_v1", points)
    index.set_alias("catalog", "catalog_v1")
    assert index.resolve("catalog") == "catalog_v1"
    before = index.search("catalog", "cnn", vectors[3].tolist(), limit=1)

    index.ensure_collection(CollectionSpec("catalog_v2", SPEC.vectors, SPEC.payload_indexes))
    index.upsert("catalog_v2", make_points(seed=1)[0][:5])
    assert index.search("catalog", "cnn", vectors[3].tolist(), limit=1) == before
    index.set_alias("catalog", "catalog_v2")
    assert index.resolve("catalog") == "catalog_v2"
    assert index.count("catalog") == 5
    index.drop_collection("catalog_v1")
    assert index.collections() == ["catalog_v2"]
    with pytest.raises(NotFoundError):
        index.resolve("nope")


def test_recommend_with_positive_and_negative_examples(index: VectorIndex) -> None:
    """Qdrant's recommend query on both engines: ``best_score`` is a point's best similarity
    to a positive example (through Qdrant's scaled sigmoid, which ``best_score_similarity``
    reads back), or below zero when a negative example is nearer; filters apply."""
    points, vectors = make_points()
    index.upsert("catalog_v1", points)
    positives, negatives = [vectors[1].tolist(), vectors[2].tolist()], [vectors[3].tolist()]
    hits = index.recommend("catalog_v1", "cnn", positives, negatives, limit=60)
    scores = {h.payload["product_id"]: h.score for h in hits}
    to_positive = (vectors @ vectors[[1, 2]].T).max(axis=1)
    to_negative = vectors @ vectors[3]
    for i in range(60):
        if to_negative[i] > to_positive[i]:
            assert scores[i] < 0, i
        else:
            assert best_score_similarity(scores[i]) == pytest.approx(
                max(0.0, float(to_positive[i])), abs=1e-3
            )
    assert sorted(h.payload["product_id"] for h in hits[:2]) == [1, 2], "the examples first"
    assert hits[-1].payload["product_id"] == 3, "the negative example is pushed furthest"
    where = PayloadFilter(equals={"category": "pants"})
    summed = index.recommend(
        "catalog_v1", "cnn", positives, negatives, limit=5, where=where, strategy="sum_scores"
    )
    expected = np.argsort(-((vectors @ vectors[[1, 2]].T).sum(axis=1) - to_negative))
    pants = [int(i) for i in expected if CATEGORIES[int(i) % 3] == "pants"][:5]
    assert [h.payload["product_id"] for h in summed] == pants


def test_engines_agree(tmp_path: Path) -> None:
    points, vectors = make_points(200, seed=3)
    engines: list[VectorIndex] = [
        EdgeIndex(tmp_path / "edge"),
        ClientIndex(QdrantClient(path=str(tmp_path / "local"))),
    ]
    answers = []
    for engine in engines:
        engine.ensure_collection(SPEC)
        engine.upsert("catalog_v1", points)
        where = PayloadFilter(
            equals={"category": ["tops", "pants"]}, ranges={"price": (50.0, None)}
        )
        answers.append(
            [
                [
                    h.id
                    for h in engine.search(
                        "catalog_v1", name, vectors[i].tolist(), limit=10, where=where
                    )
                ]
                for i in range(0, 200, 20)
                for name in ("cnn", "cnn_l1")
            ]
        )
        engine.close()
    assert answers[0] == answers[1]


def test_embedded_index_is_owned_by_one_process(tmp_path: Path) -> None:
    """The holder leaves a record (role, pid, URL) that the process turned away names."""
    root = tmp_path / "edge"
    first = EdgeIndex(root, role="lookalike run", url="http://127.0.0.1:8000")
    held = index_holder.read(root)
    assert held is not None and (held.role, held.pid) == ("lookalike run", os.getpid())
    assert held.url == "http://127.0.0.1:8000"
    with pytest.raises(IndexHeldError, match="another process") as refused:
        EdgeIndex(root, role="worker")
    assert refused.value.holder == held
    assert f"lookalike run (pid {os.getpid()} on " in refused.value.message
    with pytest.raises(ConfigurationError, match="another process"):
        EdgeIndex(root, wait_s=0.3)  # held all along: waits, then says why
    assert first.turned_away() is None
    index_holder.record_turned_away(root, index_holder.Holder.this_process("worker"))
    gone = first.turned_away()
    assert gone is not None and gone.role == "worker"
    first.close()
    assert index_holder.read(root) is None  # the record goes with the lock
    EdgeIndex(root).close()


def test_a_dead_holders_record_names_nobody(tmp_path: Path) -> None:
    root = tmp_path / "edge"
    root.mkdir()
    beyond_pid_max = 2**22 + 7  # no process has it
    record = index_holder.Holder("lookalike run", beyond_pid_max, socket.gethostname())
    index_holder.write(root, record)
    assert index_holder.read(root) is None
    assert index_holder.reachable_url("0.0.0.0", 8000) == "http://127.0.0.1:8000"
    assert index_holder.reachable_url("::", 8000) == "http://[::1]:8000"


def test_opening_the_embedded_index_waits_for_a_short_holder(tmp_path: Path) -> None:
    """A worker starting while ``lookalike sweep --once`` holds the index waits its turn."""
    holder = EdgeIndex(tmp_path / "edge")
    releaser = threading.Timer(0.5, holder.close)
    releaser.start()
    try:
        EdgeIndex(tmp_path / "edge", wait_s=10.0).close()
    finally:
        releaser.join()


def test_optimised_embedded_collection_answers_the_same(tmp_path: Path) -> None:
    """Quantizing (int8, rescored) keeps the exact answers, for cosine, L1 and filters, and
    points written afterwards are found before the next optimisation."""
    dim = 128  # enough bytes per point for Edge to optimise 3,000 of them
    spec = CollectionSpec(
        "big", {"cnn": VectorSpec(dim, "cosine"), "cnn_l1": VectorSpec(dim, "l1")}, {"n": "integer"}
    )
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((3000, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    points = [
        Point(point_id(i), {"cnn": vectors[i], "cnn_l1": vectors[i]}, {"n": i % 2})
        for i in range(3000)
    ]
    index = EdgeIndex(tmp_path / "edge")
    index.ensure_collection(spec)
    index.upsert("big", points[:2900])
    queries = vectors[:20] + rng.normal(0, 0.05, (20, dim)).astype(np.float32)

    def answers() -> list[list[str]]:
        where = PayloadFilter(equals={"n": 1})
        return [
            [h.id for h in index.search("big", name, q.tolist(), limit=10, where=f)]
            for q in queries
            for name in ("cnn", "cnn_l1")
            for f in (None, where)
        ]

    before = answers()
    assert index.unindexed("big") == 2900
    assert index.maintain(min_points=5000) == []
    assert index.maintain(min_points=1000) == ["big"]
    assert index.unindexed("big") == 0
    assert answers() == before

    index.upsert("big", points[2900:])
    assert index.unindexed("big") == 100
    hits = index.search("big", "cnn", vectors[2950].tolist(), limit=1)
    assert hits[0].id == point_id(2950)
    index.close()

    reopened = EdgeIndex(tmp_path / "edge")
    assert reopened.search("big", "cnn_l1", vectors[5].tolist(), limit=1)[0].id == point_id(5)
    assert reopened.count("big") == 3000
    reopened.close()
