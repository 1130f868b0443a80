"""Train the shipped colour-naming model: ``python -m lab.colour.train``.

The dev catalog's photos are cut, masked and described as the product does it
(:mod:`lab.colour.data`, :func:`shared.colour.colour_features` of the garment mask); a
multinomial logistic regression (or, ``--hidden N``, an MLP with N hidden units) learns the
shopper names read from ``baseColour``; its softmax temperature is fitted on a calibration
slice of the training products; validation products (20%, by a hash of the id) give the
figures. The model and its card go to ``shared/colour_names.json``. ``--cache`` keeps the
features (an ``.npz``) so that a rerun skips the detector.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import shlex
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from lab.colour.data import ColourCrop, catalog_crops, is_validation
from shared.colour import (
    COLOUR_MODEL_FILE,
    COLOUR_NAMES,
    SHOPPER_COLOURS,
    ColourModel,
    colour_features,
    grid_lab,
)

__all__ = ["calibrate", "evaluate", "features_of", "fit", "main"]

DATA = Path("../shared/data/catalog-products-dev")
CALIBRATION_SHARE = 0.125
_FAMILY = {c.name: c.family for c in COLOUR_NAMES}


def features_of(crops: Sequence[ColourCrop]) -> np.ndarray:
    """The naming model's input for each crop: its garment mask as the product computes it
    (:func:`shared.colour.name_lab`)."""
    masks = [c.crop.mask.pixels.astype(np.float32) for c in crops]
    return np.array(
        [colour_features(grid_lab(c.picture), m) for c, m in zip(crops, masks, strict=True)]
    )


def fit(x: np.ndarray, y: np.ndarray, *, hidden: int, seed: int) -> ColourModel:
    """A model on standardised features (temperature 1): an MLP with one ``hidden`` layer, or a
    multinomial logistic regression when ``hidden`` is 0."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    xs = (x - mean) / scale
    present = np.unique(y)
    if hidden > 0:
        mlp = MLPClassifier(
            (hidden,), alpha=1e-3, max_iter=400, early_stopping=True, random_state=seed
        ).fit(xs, y)
        layers = tuple(
            (np.asarray(w), np.asarray(b)) for w, b in zip(mlp.coefs_, mlp.intercepts_, strict=True)
        )
    else:
        lr = LogisticRegression(C=1.0, max_iter=5000).fit(xs, y)
        layers = ((lr.coef_.T.copy(), lr.intercept_.copy()),)
    classes = tuple(SHOPPER_COLOURS[i] for i in present)
    return ColourModel("unsaved", classes, mean, scale, layers, 1.0)


def _labels(model: ColourModel, y: np.ndarray) -> np.ndarray:
    index = {name: i for i, name in enumerate(model.classes)}
    return np.array([index.get(SHOPPER_COLOURS[v], -1) for v in y])


def calibrate(model: ColourModel, x: np.ndarray, y: np.ndarray) -> ColourModel:
    """``model`` with the softmax temperature that minimises the log loss on ``(x, y)``."""
    targets = _labels(model, y)
    keep = targets >= 0
    best, best_loss = 1.0, np.inf
    for temperature in np.exp(np.linspace(np.log(0.3), np.log(5.0), 60)):
        trial = ColourModel(
            model.version, model.classes, model.mean, model.scale, model.layers, temperature
        )
        p = trial.probabilities(x[keep])[np.arange(keep.sum()), targets[keep]]
        loss = float(-np.log(np.clip(p, 1e-12, None)).mean())
        if loss < best_loss:
            best, best_loss = float(temperature), loss
    return ColourModel(model.version, model.classes, model.mean, model.scale, model.layers, best)


def evaluate(model: ColourModel, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Accuracy (shopper names and broad colours), per-name recall, ECE (10 bins), confusion."""
    probabilities = model.probabilities(x)
    predicted = [model.classes[i] for i in probabilities.argmax(axis=1)]
    truth = [SHOPPER_COLOURS[v] for v in y]
    correct = np.array([p == t for p, t in zip(predicted, truth, strict=True)])
    confidence = probabilities.max(axis=1)
    edges = np.linspace(0, 1, 11)
    ece = 0.0
    for lo, hi in itertools.pairwise(edges):
        inside = (confidence > lo) & (confidence <= hi)
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    recall = {
        name: round(float(correct[[t == name for t in truth]].mean()), 3)
        for name in SHOPPER_COLOURS
        if name in truth
    }
    confusion = {
        name: {
            other: n
            for other in SHOPPER_COLOURS
            if (n := sum(t == name and p == other for t, p in zip(truth, predicted, strict=True)))
        }
        for name in SHOPPER_COLOURS
        if name in truth
    }
    family = np.mean([_FAMILY[p] == _FAMILY[t] for p, t in zip(predicted, truth, strict=True)])
    return {
        "n": len(truth),
        "accuracy": round(float(correct.mean()), 4),
        "family_accuracy": round(float(family), 4),
        "ece": round(float(ece), 4),
        "recall": recall,
        "confusion": confusion,
    }


def _fingerprint(keys: Sequence[str], y: np.ndarray) -> str:
    digest = hashlib.sha256()
    for key, label in zip(keys, y, strict=True):
        digest.update(f"{key}:{SHOPPER_COLOURS[int(label)]}\n".encode())
    return digest.hexdigest()


def _card_json(card: dict[str, Any]) -> str:
    """The card readable (indented), the model's numbers compact."""
    head = json.dumps({k: v for k, v in card.items() if k != "model"}, indent=1)
    model = json.dumps(card["model"], separators=(",", ":"))
    return head[:-2] + ',\n "model": ' + model + "\n}\n"


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m lab.colour.train", description=__doc__)
    parser.add_argument("--catalog", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=COLOUR_MODEL_FILE)
    parser.add_argument("--hidden", type=int, default=0, help="0: logistic regression")
    parser.add_argument("--cache", type=Path, default=None, help="Features .npz (kept).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="At most N catalog photos.")
    args = parser.parse_args(argv)
    if args.hidden < 0:
        parser.error("--hidden is 0 or more")
    if not (args.catalog / "labels.csv").is_file():
        parser.error(f"{args.catalog}/labels.csv not found")

    from services.detector.client import make_detector
    from shared.settings import get_settings

    started = time.perf_counter()
    if args.cache is not None and args.cache.is_file():
        cached = np.load(args.cache)
        keys, x, y = [str(k) for k in cached["keys"]], cached["x"], cached["y"]
    else:
        crops = catalog_crops(args.catalog, make_detector(get_settings()), limit=args.limit)
        keys = [c.key for c in crops]
        x = features_of(crops)
        y = np.array([SHOPPER_COLOURS.index(c.colour) for c in crops if c.colour is not None])
        if args.cache is not None:
            np.savez(args.cache, keys=np.array(keys), x=x, y=y)
    val = np.array([is_validation(k) for k in keys])
    calibration = ~val & np.array(
        [is_validation(k + "/calibration", CALIBRATION_SHARE) for k in keys]
    )
    train = ~val & ~calibration
    model = fit(x[train], y[train], hidden=args.hidden, seed=args.seed)
    model = calibrate(model, x[calibration], y[calibration])
    digest = hashlib.sha256(json.dumps(model.as_json()).encode()).hexdigest()[:10]
    model = ColourModel(
        f"colour-names-{digest}",
        model.classes,
        model.mean,
        model.scale,
        model.layers,
        model.temperature,
    )
    metrics = {"validation": evaluate(model, x[val], y[val])}
    card = {
        "format_version": 1,
        "name": "colour-names",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m lab.colour.train " + shlex.join(argv or sys.argv[1:]),
        "what": "shopper colour name of a garment crop: "
        + ("an MLP" if args.hidden else "a multinomial logistic regression")
        + " over shared.colour.colour_features of the crop's garment mask "
        "(shared.mask.garment_mask), softmax temperature fitted on the calibration slice",
        "architecture": [len(model.mean), *(w.shape[1] for w, _ in model.layers)],
        "data": {
            "source": str(args.catalog),
            "labels": "baseColour read onto the shopper names (shared.colour.label_colour)",
            "fingerprint": _fingerprint(keys, y),
            "n_train": int(train.sum()),
            "n_calibration": int(calibration.sum()),
            "n_validation": int(val.sum()),
            "split": "validation: crc32(item_id) % 1000 < 200; calibration: 12.5% of the rest",
        },
        "metrics": metrics,
        "seconds": round(time.perf_counter() - started, 1),
        "model": model.as_json(),
    }
    args.out.write_text(_card_json(card))
    summary = {k: v for k, v in metrics["validation"].items() if k != "confusion"}
    print(json.dumps({"out": str(args.out), "version": model.version, **summary}, indent=1))
    return card


if __name__ == "__main__":
    main()
