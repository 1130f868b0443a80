"""Colour in the ranking, offline: ``python -m lab.colour.blend``.

Every dev catalog photo is cut, named and embedded as ingest does it (framed whole, the shipped
colour model, the active embedder) and asked, leave one out, as a product photo is answered:
its garment class from the classifier (the parent of its likeliest class), the ``candidates``
nearest crops of that class by shape, the shop categories of the 3 nearest by shape first
(``gateway.category_votes``), then each blend's order within them. It measures precision at
10 of the same article type, of the same type and exact ``baseColour`` label, and of the same
type and shopper colour name, for each blend of :func:`services.recommender.service` terms:

``score = (1 - color_weight) * shape + color_weight * colour`` with
``colour = (1 - colour_share) * descriptors + colour_share * same_colour(query, crop)``

(:func:`shared.colour.same_colour`: the query's name probabilities against the crop's stored
name and probability). Minutes instead of the end-to-end run's hour: it chooses the blends
that ``lookalike eval-e2e --variant`` then measures end to end.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lab.colour.train import DATA
from shared.colour import SHOPPER_COLOURS, named_probabilities
from shared.taxonomy import parent

__all__ = ["BLENDS", "Features", "main", "measure"]

BLENDS: tuple[tuple[float, float, int], ...] = (
    # (color_weight, colour_share, candidates)
    (0.0, 0.0, 100),
    (0.2, 0.0, 100),
    (0.45, 0.0, 100),
    (0.2, 0.75, 100),
    (0.3, 0.75, 100),
    (0.45, 0.5, 100),
    (0.45, 0.75, 100),
    (0.45, 1.0, 100),
    (0.45, 0.75, 200),
    (0.45, 0.75, 300),
)
VOTES = 3


@dataclass(frozen=True)
class Features:
    """Per catalog photo: article type, exact colour label, shopper colour name, predicted
    garment parent, unit embedding, colour descriptor, name probabilities, and the stored
    name's probabilities (what the index keeps: name and probability)."""

    kind: np.ndarray
    label: np.ndarray
    name: np.ndarray
    parent: np.ndarray
    embedding: np.ndarray
    descriptor: np.ndarray
    probabilities: np.ndarray
    stored: np.ndarray

    @classmethod
    def extract(cls, catalog: Path, cache: Path | None) -> Features:
        if cache is not None and cache.is_file():
            with np.load(cache) as data:
                return cls(**{name: data[name] for name in cls.__dataclass_fields__})
        from lab.colour.data import catalog_crops
        from services.detector.client import make_detector
        from services.embedder.inference import Embedder
        from shared.settings import get_settings

        settings = get_settings()
        crops = catalog_crops(catalog, make_detector(settings), named=True)
        with (catalog / "labels.csv").open(newline="") as handle:
            labels = {row["item_id"]: row["baseColour"] for row in csv.DictReader(handle)}
        model = Embedder(
            settings.embedder.model,
            runtime="onnx",
            device="cpu",
            onnx_cache=settings.data_dir / "models" / "onnx",
        ).load()
        embeddings: list[np.ndarray] = []
        classes: list[str] = []
        for start in range(0, len(crops), 32):
            vectors, probabilities = model.classify([c.picture for c in crops[start : start + 32]])
            embeddings.append(vectors)
            classes.extend(model.info.classes[i] for i in probabilities.argmax(axis=1))
        model.close()
        embedding = np.concatenate(embeddings).astype(np.float32)
        features = cls(
            kind=np.array([c.kind for c in crops]),
            label=np.array([labels[c.key] for c in crops]),
            name=np.array([c.colour for c in crops]),
            parent=np.array([parent(name) or name for name in classes]),
            embedding=embedding / np.linalg.norm(embedding, axis=1, keepdims=True),
            descriptor=np.array([c.crop.colour for c in crops], dtype=np.float32),
            probabilities=np.array([c.crop.colour_probs for c in crops]),
            stored=np.array([_stored(c.crop.colour_name, c.crop.colour_p) for c in crops]),
        )
        if cache is not None:
            np.savez(cache, **{name: getattr(features, name) for name in cls.__dataclass_fields__})
        return features


def measure(
    f: Features, weight: float, share: float, candidates: int, queries: np.ndarray
) -> dict[str, float]:
    """Precision at 10 of one blend over ``queries`` (indices of ``f``), leave one out."""
    same_type = same_label = same_name = 0.0
    for i in queries:
        pool = np.flatnonzero(f.parent == f.parent[i])
        pool = pool[pool != i]
        shape = f.embedding[pool] @ f.embedding[i]
        top = np.argsort(-shape)[:candidates]
        pool, shape = pool[top], shape[top]
        colour = (1 - share) * np.clip(f.descriptor[pool] @ f.descriptor[i], 0, 1)
        colour += share * (f.stored[pool] @ f.probabilities[i])
        score = (1 - weight) * shape + weight * colour
        voted = set(f.kind[pool[:VOTES]])
        order = sorted(range(len(pool)), key=lambda j: (f.kind[pool[j]] not in voted, -score[j]))
        shown = pool[order[:10]]
        kind = f.kind[shown] == f.kind[i]
        same_type += kind.mean()
        same_label += (kind & (f.label[shown] == f.label[i])).mean()
        same_name += (kind & (f.name[shown] == f.name[i])).mean()
    n = len(queries)
    return {
        "color_weight": weight,
        "colour_share": share,
        "candidates": candidates,
        "same_type": round(same_type / n, 3),
        "same_type_colour": round(same_label / n, 3),
        "same_type_colour_name": round(same_name / n, 3),
    }


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(prog="python -m lab.colour.blend", description=__doc__)
    parser.add_argument("--catalog", type=Path, default=DATA)
    parser.add_argument("--cache", type=Path, default=None, help="Features .npz (reused).")
    parser.add_argument("--queries", type=int, default=1200, help="Seeded sample of queries.")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    features = Features.extract(args.catalog, args.cache)
    rng = np.random.default_rng(0)
    n = len(features.kind)
    queries = rng.choice(n, min(args.queries, n), replace=False)
    accuracy = float(np.mean(features.probabilities.argmax(axis=1) == _names(features.name)))
    print(f"{n} photos, {len(queries)} queries; named colour right: {accuracy:.3f}")
    print(
        "| color_weight | colour_share | candidates | same type | type + colour | "
        "type + colour name |"
    )
    print("|---|---|---|---|---|---|")
    rows = []
    for weight, share, candidates in BLENDS:
        row = measure(features, weight, share, candidates, queries)
        rows.append(row)
        print(" | ".join(["", *(str(v) for v in row.values()), ""]).strip(), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps({"accuracy": accuracy, "rows": rows}, indent=2))
    return rows


def _stored(name: str | None, p: float | None) -> list[float]:
    assert name is not None, "catalog_crops(named=True) names every crop"
    return named_probabilities(name, p)


def _names(names: np.ndarray) -> np.ndarray:
    return np.array([SHOPPER_COLOURS.index(name) for name in names])


if __name__ == "__main__":
    main()
