"""Words to pictures for a model without a text tower: a bridge from the sentence model's space
(:class:`shared.words.SentenceEncoder`) into an embedder model's image space.

The bridge is a linear map learnt on a labelled catalog's (photo, words) pairs by
``lookalike train-bridge`` (:mod:`lab.embedder.bridge`): the words of a product (its title, its
"<colour> <type>", its type) are mapped onto the embedding of its photo's main garment. A
query's words then become a point among the pictures, near the garments such words describe,
so a shop whose titles say nothing ("Item 4711") can still be searched by words. It comes with
the colour descriptor of each colour name (the mean descriptor of the catalog's garments of
that colour), so "navy" also ranks by the garment's own colour.

A bridge belongs to one model version (it maps into that model's space): it lives beside the
model's card as ``bridge.npz`` + ``bridge.json`` and is ignored, with a warning, when the model
in the folder is not the one it was learnt for.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shared.colour import COLOUR_DIM
from shared.errors import InvalidInputError
from shared.words import TEXT_DIM, TEXT_MODEL, SentenceEncoder, expand_query, read_intent

__all__ = ["BRIDGE_CARD", "BRIDGE_FILE", "WordBridge", "load_bridge"]

log = logging.getLogger(__name__)

BRIDGE_FILE = "bridge.npz"
BRIDGE_CARD = "bridge.json"


@dataclass
class WordBridge:
    """``matrix`` maps a sentence vector (plus a 1 for the bias) to the image space;
    ``colours`` holds each canonical colour name's colour descriptor."""

    matrix: np.ndarray
    model_version: str
    colours: dict[str, np.ndarray] = field(default_factory=dict)
    card: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.matrix.ndim != 2 or self.matrix.shape[0] != TEXT_DIM + 1:
            raise InvalidInputError(
                f"a word bridge maps {TEXT_DIM} + 1 inputs, this one {self.matrix.shape}"
            )

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def project(self, sentences: np.ndarray) -> np.ndarray:
        """Sentence vectors ``(n, 384)`` to L2-normalised image-space vectors ``(n, dim)``."""
        mapped = sentences @ self.matrix[:-1] + self.matrix[-1]
        norms = np.linalg.norm(mapped, axis=1, keepdims=True)
        return (mapped / np.maximum(norms, 1e-12)).astype(np.float32)

    def embed(self, encoder: SentenceEncoder, texts: Sequence[str]) -> np.ndarray:
        """The image-space vectors of ``texts`` (a shopper's words read as the catalog's)."""
        return self.project(np.stack([encoder.encode_query(expand_query(t)) for t in texts]))

    def colour(self, text: str) -> np.ndarray | None:
        """The colour descriptor of the colour the words name (``None``: none named, or a
        colour the bridge never saw)."""
        named = read_intent(text).colour
        return self.colours.get(named) if named else None

    def save(self, folder: Path, card: Mapping[str, Any]) -> None:
        """Write ``bridge.npz`` and ``bridge.json`` into the model's ``folder``."""
        names = sorted(self.colours)
        np.savez_compressed(
            folder / BRIDGE_FILE,
            matrix=self.matrix.astype(np.float32),
            colour_names=np.array(names),
            colour_descriptors=np.array([self.colours[n] for n in names], np.float32).reshape(
                len(names), COLOUR_DIM
            ),
        )
        full = {**card, "model_version": self.model_version, "sentence_model": TEXT_MODEL}
        (folder / BRIDGE_CARD).write_text(json.dumps(full, indent=2) + "\n")


def load_bridge(folder: Path, model_version: str) -> WordBridge | None:
    """The bridge beside the model card in ``folder`` when it was learnt for
    ``model_version`` (``None``: no bridge there, or one for another model, logged)."""
    path, card_path = folder / BRIDGE_FILE, folder / BRIDGE_CARD
    if not path.is_file() or not card_path.is_file():
        return None
    card = json.loads(card_path.read_text())
    if card.get("model_version") != model_version or card.get("sentence_model") != TEXT_MODEL:
        log.warning(
            "ignoring the word bridge in %s: learnt for %s (%s), the model is %s (%s)",
            folder,
            card.get("model_version"),
            card.get("sentence_model"),
            model_version,
            TEXT_MODEL,
        )
        return None
    with np.load(path) as data:
        colours = {
            str(name): descriptor.astype(np.float32)
            for name, descriptor in zip(
                data["colour_names"], data["colour_descriptors"], strict=True
            )
        }
        return WordBridge(data["matrix"].astype(np.float32), model_version, colours, card)
