"""Retrieval metrics, calibration, confusion matrix and labelled-data loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lab.embedder.data import load_labelled, select_split, stratified_split
from lab.embedder.evaluation import (
    confusion_matrix,
    expected_calibration_error,
    fit_temperature,
    probe_accuracy,
    retrieval_metrics,
)
from shared.errors import InvalidInputError, NotFoundError

pytestmark = pytest.mark.unit


def test_retrieval_metrics_on_a_known_layout() -> None:
    # Two tight clusters of 11 points; every neighbour list is pure.
    rng = np.random.default_rng(0)
    centres = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    points = np.concatenate([c + 0.01 * rng.normal(size=(11, 3)) for c in centres])
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    labels = ["a"] * 11 + ["b"] * 11
    for metric in ("cosine", "l1"):
        metrics = retrieval_metrics(points, labels, metric)
        assert metrics == {"p@1": 1.0, "p@5": 1.0, "p@10": 1.0, "map@10": 1.0}


def test_retrieval_metrics_count_partial_hits() -> None:
    # On a line: 0, 1, 2 are "a"; 10, 11 are "b". Query 2's nearest is 1 (hit), then 0 (hit).
    points = np.array([[0.0], [1.0], [2.0], [10.0], [11.0]])
    labels = ["a", "a", "a", "b", "b"]
    metrics = retrieval_metrics(points, labels, "l1")
    assert metrics["p@1"] == 1.0
    # Top 4 of each query (k is capped at n - 1): "a" queries find 2 of 4, "b" queries 1 of 4.
    assert metrics["p@10"] == pytest.approx((3 * 2 / 4 + 2 * 1 / 4) / 5)
    assert metrics["map@10"] == pytest.approx(1.0)  # every relevant item ranks first


def test_retrieval_needs_two_items() -> None:
    with pytest.raises(InvalidInputError):
        retrieval_metrics(np.zeros((1, 3)), ["a"])


def test_temperature_scaling_fixes_overconfidence() -> None:
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 4, 2000)
    logits = rng.normal(size=(2000, 4))
    correct = rng.random(2000) < 0.7
    logits[np.arange(2000), np.where(correct, targets, (targets + 1) % 4)] += 2.0
    logits *= 4  # overconfident
    probabilities = _softmax(logits)
    before = expected_calibration_error(probabilities, targets)
    temperature = fit_temperature(logits, targets)
    after = expected_calibration_error(_softmax(logits / temperature), targets)
    assert temperature > 1.5
    assert before > 0.1
    assert after < before / 2


def _softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def test_confusion_matrix_skips_unknown_targets() -> None:
    matrix = confusion_matrix(np.array([0, 0, 1, -1]), np.array([0, 1, 1, 0]), 2)
    assert matrix.tolist() == [[1, 1], [0, 1]]


def test_probe_accuracy_separates_separable_data() -> None:
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0, 1, (30, 5)), rng.normal(5, 1, (30, 5))])
    y = np.array([0] * 30 + [1] * 30)
    assert probe_accuracy(x, y) > 0.95
    assert probe_accuracy(x[::2], y[::2], x[1::2], y[1::2]) > 0.95


# ---------------------------------------------------------------------------------- data


def _folder(root: Path, counts: dict[str, int]) -> Path:
    for label, n in counts.items():
        (root / label).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (8, 8), (i, 0, 0)).save(root / label / f"{i}.jpg")
    return root


def test_folder_of_class_folders(tmp_path: Path) -> None:
    root = _folder(tmp_path / "data", {"bags": 5, "hats": 3, "rare": 1})
    (root / "bags" / "notes.txt").write_text("not an image")
    images = load_labelled(root, min_per_class=2)
    assert images.classes == ["bags", "hats"]
    assert len(images) == 8
    assert images.skipped == {"classes with fewer than 2 images": 1}
    assert images.fingerprint() == load_labelled(root, min_per_class=2).fingerprint()


def test_csv_with_images_subfolder_and_empty_labels(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    for name in ("1.jpg", "2.jpg", "3.jpg"):
        Image.new("RGB", (8, 8)).save(tmp_path / "images" / name)
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text(
        "filename,articleType,gender\n"
        "images/1.jpg,Tshirts,Men\n2.jpg,Shirts,Men\n3.jpg,,Women\nmissing.jpg,Tshirts,Men\n"
    )
    images = load_labelled(csv_path, "articleType")
    assert images.labels == ("Tshirts", "Shirts")
    assert images.skipped == {"empty label": 1, "file not found": 1}
    assert load_labelled(csv_path, "gender").classes == ["Men", "Women"]
    with pytest.raises(InvalidInputError, match="gender"):
        load_labelled(csv_path, "colour")


def test_bad_data_paths(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        load_labelled(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError):
        load_labelled(tmp_path / "empty")


def test_split_is_stratified_and_reproducible(tmp_path: Path) -> None:
    images = load_labelled(_folder(tmp_path / "data", {"a": 10, "b": 5, "c": 2}))
    train, val = stratified_split(images, 0.2, seed=0)
    assert sorted([*train, *val]) == list(range(len(images)))
    val_labels = [images.labels[i] for i in val]
    assert val_labels.count("a") == 2 and val_labels.count("b") == 1 and val_labels.count("c") == 1
    again = stratified_split(images, 0.2, seed=0)
    assert (again[1] == val).all()
    assert select_split(images, "val", 0.2, 0).paths == tuple(images.paths[i] for i in val)
    assert (stratified_split(images, 0.2, seed=1)[1] != val).any()
