"""The word bridge (words read as pictures for a model without a text tower) and the fusion of
the words' two rankings: the bridge's file beside a model, its refusal of another model's
space, its colours; the text and pictures rankings fused by rank."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from lab.embedder.bridge import fit
from services.embedder.artifact import SHIPPED_DIR, load_card
from services.embedder.bridge import BRIDGE_CARD, WordBridge, load_bridge
from services.embedder.inference import Embedder
from services.gateway.words import fuse_rankings
from services.recommender.schemas import ProductHit, RecommendResult, TextResult
from shared.errors import InvalidInputError
from shared.words import TEXT_DIM, SentenceEncoder

pytestmark = pytest.mark.unit


class _Encoder(SentenceEncoder):
    """A stand-in sentence space for the bridge's own arithmetic: one axis per word."""

    def __init__(self) -> None:
        pass

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode([text])[0]

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), TEXT_DIM), np.float32)
        for row, text in enumerate(texts):
            for word in text.split():
                out[row, hash(word) % TEXT_DIM] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def _bridge(version: str = "m-1", dim: int = 8) -> WordBridge:
    rng = np.random.default_rng(0)
    colours = {"blue": np.arange(40, dtype=np.float32), "red": np.ones(40, np.float32)}
    return WordBridge(rng.normal(size=(TEXT_DIM + 1, dim)).astype(np.float32), version, colours)


def test_a_bridge_is_read_back_for_its_own_model_only(tmp_path: Path) -> None:
    bridge = _bridge()
    bridge.save(tmp_path, {"products": 3})
    loaded = load_bridge(tmp_path, "m-1")
    assert loaded is not None and loaded.dim == 8
    np.testing.assert_allclose(loaded.matrix, bridge.matrix)
    assert json.loads((tmp_path / BRIDGE_CARD).read_text())["products"] == 3
    # Learnt in another model's space: never used there.
    assert load_bridge(tmp_path, "m-2") is None
    assert load_bridge(tmp_path / "missing", "m-1") is None


def test_the_bridge_maps_words_to_unit_vectors_and_names_colours() -> None:
    bridge = _bridge()
    vectors = bridge.embed(_Encoder(), ["navy tee", "red dress"])
    assert vectors.shape == (2, 8)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    navy = bridge.colour("navy tee")  # a shopper's colour word, read as the canonical one
    assert navy is not None and navy[1] == 1.0
    assert bridge.colour("a dress") is None and bridge.colour("green dress") is None


def test_a_bridge_of_the_wrong_shape_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="maps 384"):
        WordBridge(np.zeros((10, 8), np.float32), "m-1")


def test_the_ridge_fit_recovers_a_linear_map() -> None:
    rng = np.random.default_rng(1)
    truth = rng.normal(size=(TEXT_DIM + 1, 6))
    sentences = rng.normal(size=(2000, TEXT_DIM)).astype(np.float32)
    targets = np.hstack([sentences, np.ones((2000, 1))]) @ truth
    bridge = WordBridge(fit(sentences, targets, 1e-4), "m-1")
    unit = targets / np.linalg.norm(targets, axis=1, keepdims=True)
    cosine = np.sum(bridge.project(sentences) * unit, axis=1)
    # The map is linear and the targets unit vectors: close, not exact.
    assert cosine.mean() > 0.99 and cosine.min() > 0.9


def test_a_shipped_model_with_a_bridge_reads_words_as_pictures(tmp_path: Path) -> None:
    folder = tmp_path / "street-lite2"
    shutil.copytree(SHIPPED_DIR / "street-lite2", folder)
    card = load_card(folder)
    _bridge(card.version, card.embedding_dim).save(folder, {})
    model = Embedder(folder, runtime="torch")
    assert model.info.text_path == "bridge" and not model.info.has_text
    [vector] = model.embed_text(["navy tee"])
    assert vector.shape == (card.embedding_dim,)
    # The same folder's model without its bridge cannot read words.
    (folder / BRIDGE_CARD).unlink()
    bare = Embedder(folder, runtime="torch")
    assert bare.info.text_path is None
    with pytest.raises(InvalidInputError, match="no text tower and no word bridge"):
        bare.embed_text(["navy tee"])


def _hits(*ids: int, said: tuple[bool, ...] = ()) -> list[ProductHit]:
    return [
        ProductHit(product_id=i, score=0.5, point_id=f"p{i}", said=said[n] if said else None)
        for n, i in enumerate(ids)
    ]


def _text(*ids: int, said: tuple[bool, ...], garments: tuple[str, ...] = ("top",)) -> TextResult:
    return TextResult(
        hits=_hits(*ids, said=said),
        garments=list(garments),
        evidence=sum(said) / len(said) if said else 0.0,
    )


def test_words_alone_fuse_both_rankings_by_what_the_text_knows() -> None:
    pictures = RecommendResult(hits=_hits(3, 4, 1), garments=["top"])
    # 2 of 3 text hits said the words (evidence 2/3): they count in full, 2 not at all, and
    # the pictures by the rest (1/3).
    mixed = _text(1, 2, 3, said=(True, False, True))
    fused, by = fuse_rankings(mixed, pictures, pictures_weight=1.0, k=3)
    assert by == "both"
    assert [h.product_id for h in fused.hits] == [1, 3, 4]
    best = (1 + 1 / 3) / 61
    assert fused.hits[0].score == pytest.approx((1 / 61 + (1 / 3) / 63) / best, abs=1e-6)
    assert fused.garments == ["top"]
    # Titles that all name what was asked answer alone; titles that say nothing leave it to
    # the pictures.
    sure = _text(1, 2, 3, said=(True, True, True))
    answer, by = fuse_rankings(sure, pictures, pictures_weight=1.0, k=3)
    assert by == "text" and [h.product_id for h in answer.hits] == [1, 2, 3]
    blind = _text(1, 2, 3, said=(False, False, False))
    answer, by = fuse_rankings(blind, pictures, pictures_weight=1.0, k=3)
    assert by == "pictures" and [h.product_id for h in answer.hits] == [3, 4, 1]
    # A brand few products carry: its one product first, the pictures fill the rest.
    brand = _text(2, 5, 6, said=(True, False, False))
    answer, by = fuse_rankings(brand, pictures, pictures_weight=1.0, k=3)
    assert by == "both" and [h.product_id for h in answer.hits] == [2, 3, 4]


def test_one_path_alone_answers_as_it_ranked() -> None:
    blind = _text(1, 2, said=(False, False), garments=())
    pictures = RecommendResult(hits=_hits(3, 4, 5), garments=["top"])
    # Nothing knows and no pictures: the text's ranking by meaning still answers.
    assert fuse_rankings(blind, None, pictures_weight=1.0, k=5)[1] == "text"
    only, by = fuse_rankings(TextResult(hits=[]), pictures, pictures_weight=1.0, k=2)
    assert by == "pictures" and [h.product_id for h in only.hits] == [3, 4]
    # A weight of 0 leaves the pictures out; a path that searched every class says so.
    half = _text(1, 2, said=(True, False), garments=())
    assert fuse_rankings(half, pictures, pictures_weight=0.0, k=5)[1] == "text"
    assert fuse_rankings(half, pictures, pictures_weight=1.0, k=5)[0].garments == []
