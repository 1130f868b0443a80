"""lab.colour.blend's offline measure on hand-made features: colour orders within the kind
the shape vote chose, never the kind."""

from __future__ import annotations

import numpy as np
import pytest

from lab.colour.blend import Features, measure
from shared.colour import COLOUR_DIM, named_probabilities

pytestmark = pytest.mark.unit


def _features(rows: list[tuple[str, str, float]]) -> Features:
    """A navy shirt (the query, first) and ``rows`` of (article type, colour name, distance
    by shape): one garment class, alike colour descriptors, every colour named at 0.9."""
    rows = [("Shirts", "navy", 0.0), *rows]
    n = len(rows)
    embedding = np.zeros((n, 4), np.float32)
    embedding[:, 0] = 1.0
    embedding[:, 1] = [distance for _, _, distance in rows]
    embedding /= np.linalg.norm(embedding, axis=1, keepdims=True)
    probabilities = np.array([named_probabilities(name, 0.9) for _, name, _ in rows])
    return Features(
        kind=np.array([kind for kind, _, _ in rows]),
        label=np.array(["Navy Blue" if name == "navy" else "Red" for _, name, _ in rows]),
        name=np.array([name for _, name, _ in rows]),
        parent=np.array(["top"] * n),
        embedding=embedding,
        descriptor=np.full((n, COLOUR_DIM), 1 / np.sqrt(COLOUR_DIM), np.float32),
        probabilities=probabilities,
        stored=probabilities,
    )


def test_within_the_kind_the_same_colour_comes_first() -> None:
    # Ten red shirts nearer by shape than ten navy ones.
    features = _features([("Shirts", "red", 0.2)] * 10 + [("Shirts", "navy", 0.4)] * 10)
    query = np.array([0])
    assert measure(features, 0.0, 0.0, 100, query)["same_type_colour"] == 0.0
    coloured = measure(features, 0.45, 0.75, 100, query)
    assert coloured["same_type"] == 1.0
    assert coloured["same_type_colour"] == coloured["same_type_colour_name"] == 1.0
    # Ten candidates: the red shirts only, nothing for colour to bring forward.
    assert measure(features, 0.45, 0.75, 10, query)["same_type_colour"] == 0.0


def test_colour_never_picks_the_kind() -> None:
    # The three nearest by shape are red shirts: shirts are voted first, and the navy
    # t-shirts, the query's colour, stay behind every shirt.
    rows = [("Shirts", "red", 0.1)] * 10 + [("Tshirts", "navy", 0.15)] * 10
    coloured = measure(_features(rows), 0.45, 0.75, 100, np.array([0]))
    assert coloured["same_type"] == 1.0 and coloured["same_type_colour"] == 0.0
