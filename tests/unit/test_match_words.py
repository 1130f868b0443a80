"""Match words and "no close match" (services.recommender.calibration) on a real embedded
index: per shop and garment class, monotone in the score shown, stable when a shop is added."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from services.ingest import indexing
from services.recommender.calibration import Calibrator, Scale
from services.recommender.schemas import RecommendQuery, RecommendResult
from services.recommender.service import Recommender
from shared import index_layout
from shared.colour import COLOUR_DIM, SHOPPER_COLOURS
from shared.vectors import EdgeIndex, Point

pytestmark = pytest.mark.unit

DIM = 32
VERSION = "test-model"
COLLECTION = index_layout.collection_name(VERSION)
RANK = {None: 0, "loose": 1, "close": 2, "very close": 3}


def _unit(values: Sequence[float] | np.ndarray) -> list[float]:
    array = np.asarray(values, dtype=np.float64)
    return (array / np.linalg.norm(array)).tolist()


def _colour(rng: np.random.Generator) -> list[float]:
    return _unit(rng.random(COLOUR_DIM) ** 4)


class Shop:
    """Products of one source, written to the index."""

    def __init__(self, engine: EdgeIndex, source: str, first_id: int) -> None:
        self.engine, self.source, self.next_id = engine, source, first_id

    def add(self, shapes: np.ndarray, kind: str, rng: np.random.Generator) -> list[int]:
        ids = list(range(self.next_id, self.next_id + len(shapes)))
        self.next_id += len(shapes)
        self.engine.upsert(
            COLLECTION,
            [
                Point(
                    str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.source}/{product}")),
                    {"cnn": _unit(shape), "cnn_l1": _unit(shape), "colour": _colour(rng)},
                    {
                        "product_id": product,
                        "image_id": product,
                        "source": self.source,
                        "category": kind,
                        "active": 1,
                        "model_version": VERSION,
                        "garment": kind,
                        "garment_parent": kind,
                        "colour_name": str(rng.choice(SHOPPER_COLOURS[:4])),
                        "colour_p": float(rng.uniform(0.3, 1.0)),
                    },
                )
                for product, shape in zip(ids, shapes, strict=True)
            ],
        )
        return ids


def _twins(rng: np.random.Generator, pairs: int, spread: float = 0.4) -> tuple[np.ndarray, ...]:
    """``pairs`` products in random directions, each with a near twin: a product's nearest
    same-kind neighbour stands far above the rest (a tight scale)."""
    bases = _spread(rng, pairs)
    twins = bases + spread * rng.standard_normal((pairs, DIM))
    return bases, np.concatenate([bases, twins])


def _spread(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` products scattered as image embeddings are: all in one half-space."""
    return 1.0 + rng.standard_normal((n, DIM))


def _engine(tmp_path: Path) -> EdgeIndex:
    engine = EdgeIndex(tmp_path / "index")
    indexing.ensure_collection(engine, VERSION, DIM)
    return engine


def _ask(recommender: Recommender, embedding: Sequence[float], **values: object) -> RecommendResult:
    fields: dict[str, object] = {"embedding": _unit(embedding), "model_version": VERSION, "k": 12}
    fields.update(values)
    [result] = recommender.recommend([RecommendQuery.model_validate(fields)])
    return result


def _learnt(recommender: Recommender, *sources: str) -> None:
    for source in sources:
        recommender.calibrator.shop(COLLECTION, source, wait=True)


def test_a_scale_is_learnt_off_the_query_path_and_places_leads(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    rng = np.random.default_rng(0)
    bases, shapes = _twins(rng, 30)
    Shop(engine, "a", 1).add(shapes, "top", rng)
    recommender = Recommender(engine)
    # The first query finds no scale and starts learning it: no words yet.
    first = _ask(recommender, bases[4], garments=["top"])
    assert first.close_match is None and {hit.match for hit in first.hits} == {None}
    _learnt(recommender, "a")
    scale = recommender.calibrator.scale(COLLECTION, "a", "top", 0.0)
    assert scale is not None and scale == Calibrator(engine).learn(COLLECTION, "a").scale("top", 0)
    assert scale.sample >= 8 and 0 < scale.floor <= scale.close <= scale.very_close < 1.0
    assert scale.match(scale.very_close) == "very close" and scale.match(None) is None
    assert scale.match(scale.close - 1e-3) == "loose" and scale.is_close(None) is None

    twin = _ask(recommender, bases[4], garments=["top"])
    assert twin.close_match is True and twin.hits[0].match == "very close"
    assert twin.hits[-1].match == "loose"
    # Between every product: none stands out, as every product's nearest one does.
    vague = _ask(recommender, bases.mean(axis=0), garments=["top"])
    assert vague.close_match is False
    engine.close()


def test_words_are_monotone_in_the_score_shown(tmp_path: Path) -> None:
    """With colour in the score, a higher score never gets a weaker word (the words used to
    follow the shape score alone: "close" at 0.86 above "very close" at 0.85)."""
    engine = _engine(tmp_path)
    rng = np.random.default_rng(1)
    bases, shapes = _twins(rng, 40)
    Shop(engine, "a", 1).add(shapes, "top", rng)
    recommender = Recommender(engine)
    _learnt(recommender, "a")
    for n in range(16):
        query = bases[n] + 0.3 * rng.standard_normal(DIM)
        # The named colours' share in the score too (the scale is learnt on the same blend).
        named = {"colour_probs": rng.dirichlet(np.ones(len(SHOPPER_COLOURS))).tolist()}
        named["colour_share"] = 0.75 if n % 2 else 0.0
        result = _ask(
            recommender, query, colour=_colour(rng), color_weight=0.45, garments=["top"], **named
        )
        shown = sorted(result.hits, key=lambda hit: -hit.score)
        assert any(hit.match is not None for hit in shown)
        ranks = [RANK[hit.match] for hit in shown]
        assert ranks == sorted(ranks, reverse=True), [(h.score, h.match) for h in shown]
    engine.close()


def test_words_and_notice_stay_when_another_shop_is_added(tmp_path: Path) -> None:
    """Another shop's products change neither a shop's background nor its scale: the same
    query with the same scores says the same words (it used to flip "no close match" to a
    match when a loosely spread shop joined)."""
    engine = _engine(tmp_path)
    rng = np.random.default_rng(2)
    bases, shapes = _twins(rng, 30, spread=0.2)
    Shop(engine, "a", 1).add(shapes, "top", rng)
    recommender = Recommender(engine)
    _learnt(recommender, "a")
    vague = bases.mean(axis=0)
    before = [_ask(recommender, vector, garments=["top"]) for vector in (vague, bases[3])]
    assert before[0].close_match is False and before[1].close_match is True

    # A second shop of 120 loosely spread products: its nearest neighbours lead by little.
    Shop(engine, "b", 1000).add(_spread(rng, 120), "top", rng)
    again = Recommender(engine)
    _learnt(again, "a", "b")
    after = [
        _ask(again, vector, garments=["top"], exclude_sources=["b"]) for vector in (vague, bases[3])
    ]
    for old, new in zip(before, after, strict=True):
        assert new.close_match == old.close_match
        assert [(h.product_id, h.score, h.match) for h in new.hits] == [
            (h.product_id, h.score, h.match) for h in old.hits
        ]
    # With both shops in one answer, shop a's products keep their words.
    mixed = _ask(again, bases[3], garments=["top"], k=40)
    words = {hit.product_id: hit.match for hit in before[1].hits}
    kept = [hit for hit in mixed.hits if hit.source == "a" and hit.product_id in words]
    assert kept and all(hit.match == words[hit.product_id] for hit in kept)
    assert any(hit.source == "b" for hit in mixed.hits[:12])
    engine.close()


def test_no_close_match_is_told_per_garment_class(tmp_path: Path) -> None:
    """Shoes photographed alike lead their neighbours by far: a shoe query that leads like a
    loose top is no close match among shoes, while tops keep their own, looser scale."""
    engine = _engine(tmp_path)
    rng = np.random.default_rng(3)
    shop = Shop(engine, "a", 1)
    shop.add(_spread(rng, 60), "top", rng)
    bases, shoes = _twins(rng, 30, spread=0.15)
    shop.add(shoes, "footwear", rng)
    recommender = Recommender(engine)
    _learnt(recommender, "a")
    top = recommender.calibrator.scale(COLLECTION, "a", "top", 0.0)
    footwear = recommender.calibrator.scale(COLLECTION, "a", "footwear", 0.0)
    assert top is not None and footwear is not None and footwear.floor > top.floor

    between = bases[0] + bases[1]
    shoe = _ask(recommender, between, garments=["footwear"])
    assert shoe.close_match is False
    assert shoe.hits and all(hit.match != "very close" for hit in shoe.hits)
    assert _ask(recommender, bases[0], garments=["footwear"]).close_match is True
    engine.close()


def test_a_class_with_few_products_borrows_its_shops_scale(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    rng = np.random.default_rng(4)
    shop = Shop(engine, "a", 1)
    _, shapes = _twins(rng, 30)
    shop.add(shapes, "top", rng)
    shop.add(_spread(rng, 40), "dress", rng)
    shop.add(_spread(rng, 5), "bag", rng)
    shops = Calibrator(engine).learn(COLLECTION, "a")
    pooled, top, dress = (shops.scale(kind, 0.0) for kind in (None, "top", "dress"))
    assert pooled is not None and top is not None and dress is not None
    assert shops.scale("bag", 0.0) == pooled == shops.scale("coat", 0.0)
    assert pooled.sample == top.sample + dress.sample and top != pooled != dress
    # A shop too small to measure has no scale at all: no words, no floor.
    Shop(engine, "tiny", 500).add(_spread(rng, 6), "top", rng)
    assert Calibrator(engine).learn(COLLECTION, "tiny").scale("top", 0.0) is None
    assert isinstance(shops.scale("top", 0.5), Scale)
    engine.close()


def test_a_shop_too_small_to_measure_is_measured_again_as_it_fills(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.recommender import calibration

    monkeypatch.setattr(calibration, "UNMEASURED_TTL_S", 0.0)  # instead of a minute
    engine = _engine(tmp_path)
    rng = np.random.default_rng(5)
    shop = Shop(engine, "a", 1)
    shop.add(_spread(rng, 6), "top", rng)
    calibrator = Calibrator(engine)
    assert calibrator.scale(COLLECTION, "a", "top", 0.0, wait=True) is None
    shop.add(_twins(rng, 30)[1], "top", rng)
    measured = calibrator.scale(COLLECTION, "a", "top", 0.0, wait=True)
    assert measured is not None
    # A measured shop keeps its scale (for an hour) however it grows.
    shop.add(_twins(rng, 30)[1], "top", rng)
    assert calibrator.scale(COLLECTION, "a", "top", 0.0, wait=True) == measured
    engine.close()
