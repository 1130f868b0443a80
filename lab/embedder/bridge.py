"""Learning the word bridge (:mod:`services.embedder.bridge`) of an embedder model.

The pairs come from a labelled catalog indexed as a shop (:func:`lab.evaluate.shop.read_pairs`),
so the photos are cropped and embedded exactly as ingest does: each product's main garment (its
largest crop) gives the image side, and the product's words give the sentence side, several
texts each: its title, "<colour> <type>", "<type>" and "<colour> <category>". A ridge
regression maps the sentence vectors (with a bias) onto the L2-normalised embeddings; its
strength is chosen on a tenth of the products held out. The colour of each canonical colour
name is the mean colour descriptor of the garments of that colour.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from services.embedder.bridge import WordBridge
from shared.words import SentenceEncoder, expand_query, read_intent

__all__ = ["BridgePairs", "LabelledProduct", "fit", "product_texts", "train"]

Progress = Callable[[str], None]
STRENGTHS = (0.01, 0.1, 1.0, 10.0)
"""The ridge strengths tried (per pair, as the sentence vectors are unit length)."""
VALIDATION = 0.1


class LabelledProduct(Protocol):
    """What the bridge learns a product's words from (a row of a labelled catalog)."""

    @property
    def title(self) -> str: ...
    @property
    def article_type(self) -> str: ...
    @property
    def sub_category(self) -> str: ...
    @property
    def colour(self) -> str: ...


@dataclass
class BridgePairs:
    """The products' main-garment embeddings and colour descriptors, row by row."""

    items: Sequence[LabelledProduct]
    embeddings: np.ndarray
    colours: np.ndarray
    model_version: str


def product_texts(item: LabelledProduct) -> list[str]:
    """The words a product's photo is learnt to sit near."""
    kind, colour = item.article_type, item.colour
    texts = [item.title, kind]
    if colour:
        texts.append(f"{colour} {kind}")
        if item.sub_category:
            texts.append(f"{colour} {item.sub_category}")
    return [text for text in texts if text.strip()]


def _design(sentences: np.ndarray) -> np.ndarray:
    return np.hstack([sentences, np.ones((len(sentences), 1), np.float32)])


def fit(sentences: np.ndarray, targets: np.ndarray, strength: float) -> np.ndarray:
    """The ridge map ``(385, dim)`` from sentence vectors to normalised ``targets`` (the
    bias is not shrunk); ``strength`` is per pair."""
    x = _design(sentences).astype(np.float64)
    y = targets / np.maximum(np.linalg.norm(targets, axis=1, keepdims=True), 1e-12)
    penalty = strength * len(x) / 1000 * np.eye(x.shape[1])
    penalty[-1, -1] = 0.0
    return np.linalg.solve(x.T @ x + penalty, x.T @ y).astype(np.float32)


def _colour_means(pairs: BridgePairs) -> dict[str, np.ndarray]:
    rows: dict[str, list[int]] = defaultdict(list)
    for row, item in enumerate(pairs.items):
        named = read_intent(item.colour).colour if item.colour else None
        if named:
            rows[named].append(row)
    return {name: pairs.colours[r].mean(axis=0) for name, r in rows.items() if len(r) >= 5}


def _texts(
    encoder: SentenceEncoder, items: Sequence[LabelledProduct]
) -> tuple[np.ndarray, np.ndarray]:
    """The sentence vectors of every product's texts and the row of the product of each."""
    texts, rows = [], []
    for row, item in enumerate(items):
        for text in product_texts(item):
            texts.append(expand_query(text))
            rows.append(row)
    return encoder.encode(texts), np.array(rows)


def train(
    pairs: BridgePairs, encoder: SentenceEncoder, *, seed: int = 0, progress: Progress = print
) -> tuple[WordBridge, dict[str, Any]]:
    """The bridge learnt on every pair, at the strength that best predicts a held-out tenth's
    embeddings (mean cosine); with the figures of each strength."""
    sentences, rows = _texts(encoder, pairs.items)
    products = list(range(len(pairs.items)))
    random.Random(seed).shuffle(products)  # noqa: S311 - a reproducible split
    held = set(products[: max(1, round(VALIDATION * len(products)))])
    val = np.array([r in held for r in rows])
    scores: dict[float, float] = {}
    for strength in STRENGTHS:
        matrix = fit(sentences[~val], pairs.embeddings[rows[~val]], strength)
        bridge = WordBridge(matrix, pairs.model_version)
        predicted = bridge.project(sentences[val])
        scores[strength] = float(np.mean(np.sum(predicted * pairs.embeddings[rows[val]], axis=1)))
        progress(f"strength {strength}: held-out cosine {scores[strength]:.4f}")
    chosen = max(scores, key=lambda s: scores[s])
    matrix = fit(sentences, pairs.embeddings[rows], chosen)
    bridge = WordBridge(matrix, pairs.model_version, _colour_means(pairs))
    figures = {
        "products": len(pairs.items),
        "texts": len(rows),
        "strength": chosen,
        "held_out_cosine": {str(s): round(v, 4) for s, v in scores.items()},
        "colours": sorted(bridge.colours),
    }
    return bridge, figures
