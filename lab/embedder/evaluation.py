"""Retrieval and classification quality: leave-one-out P@k and mAP@10, accuracy, confusion
matrix, calibration (ECE) and a t-SNE picture of the embeddings.

Leave-one-out retrieval: every image queries all the others; a hit is an image of the same
category. ``P@k`` is the fraction of hits among the k nearest; ``AP@10`` averages the
precision at each hit's rank over ``min(10, number of other images of the category)``, and
``mAP@10`` is its mean over queries.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shared.errors import InvalidInputError
from shared.vectors import Distance

if TYPE_CHECKING:
    from lab.embedder.data import Split
    from services.embedder.inference import Runtime

__all__ = [
    "confusion_matrix",
    "cross_hits",
    "evaluate_folder",
    "expected_calibration_error",
    "fit_temperature",
    "probe_accuracy",
    "retrieval_metrics",
    "tsne_plot",
]

KS = (1, 5, 10)


def _neighbours(embeddings: np.ndarray, metric: Distance, k: int, chunk: int = 512) -> np.ndarray:
    """Indices of each row's ``k`` nearest other rows, nearest first."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32))
    n = x.shape[0]
    k = min(k, n - 1)
    out = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, chunk):
        block = x[start : start + chunk]
        if metric == "cosine":
            score = block @ x.T
        elif metric == "l1":
            score = -torch.cdist(block, x, p=1)
        else:
            raise InvalidInputError(f"metric must be cosine or l1, got {metric!r}")
        rows = torch.arange(block.shape[0])
        score[rows, rows + start] = -math.inf
        out[start : start + block.shape[0]] = torch.topk(score, k, dim=1).indices.numpy()
    return out


def cross_hits(
    queries: np.ndarray,
    query_labels: Sequence[str] | np.ndarray,
    gallery: np.ndarray,
    gallery_labels: Sequence[str] | np.ndarray,
    *,
    k: int = 10,
    same: np.ndarray | None = None,
) -> np.ndarray:
    """Each query's P@k searched in another set, ``gallery`` (cosine on L2-normalised rows; a
    hit = same label). ``same[i]``: the gallery row that *is* query ``i`` (skipped), or
    ``-1``."""
    import torch

    q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))
    g = torch.from_numpy(np.ascontiguousarray(gallery, dtype=np.float32))
    score = torch.nn.functional.normalize(q, dim=1) @ torch.nn.functional.normalize(g, dim=1).T
    if same is not None:
        rows = np.flatnonzero(same >= 0)
        score[torch.from_numpy(rows), torch.from_numpy(same[rows])] = -math.inf
    top = torch.topk(score, min(k, g.shape[0] - 1), dim=1).indices.numpy()
    hits = np.asarray(gallery_labels)[top] == np.asarray(query_labels)[:, None]
    return hits.mean(axis=1)


def retrieval_metrics(
    embeddings: np.ndarray, labels: Sequence[str] | np.ndarray, metric: Distance = "cosine"
) -> dict[str, float]:
    """Leave-one-out ``p@1``, ``p@5``, ``p@10`` and ``map@10`` (a hit = same label)."""
    labels_arr = np.asarray(labels)
    n = len(labels_arr)
    if n < 2 or embeddings.shape[0] != n:
        raise InvalidInputError(f"need >= 2 embeddings with one label each, got {n}")
    top = _neighbours(embeddings, metric, max(KS))
    hits = labels_arr[top] == labels_arr[:, None]
    # With fewer than k other images, precision is over the whole (shorter) list.
    metrics = {f"p@{k}": float(hits[:, :k].mean(axis=1).mean()) for k in KS}
    _, inverse, counts = np.unique(labels_arr, return_inverse=True, return_counts=True)
    relevant = np.minimum(counts[inverse] - 1, hits.shape[1])
    ranks = np.arange(1, hits.shape[1] + 1)
    precision_at = np.cumsum(hits, axis=1) / ranks
    ap = (precision_at * hits).sum(axis=1) / np.maximum(relevant, 1)
    metrics["map@10"] = float(ap.mean())
    return metrics


def confusion_matrix(targets: np.ndarray, predictions: np.ndarray, n_classes: int) -> np.ndarray:
    """``(n, n)`` counts: row = true class, column = predicted class (``-1`` targets skipped)."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    known = targets >= 0
    np.add.at(matrix, (targets[known], predictions[known]), 1)
    return matrix


def expected_calibration_error(
    probabilities: np.ndarray, targets: np.ndarray, n_bins: int = 15
) -> float:
    """ECE: confidence-vs-accuracy gap over equal-width confidence bins, weighted by size."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == targets
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ece = 0.0
    for lo, hi in itertools.pairwise(edges):
        in_bin = (confidence > lo) & (confidence <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """Temperature scaling: the T > 0 minimising the NLL of ``softmax(logits / T)``."""
    import torch

    x = torch.from_numpy(logits.astype(np.float64))
    y = torch.from_numpy(targets.astype(np.int64))
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(x / log_t.exp(), y)
        loss.backward()
        return loss

    optimiser.step(closure)
    temperature = float(log_t.detach().exp())
    return temperature if math.isfinite(temperature) and temperature > 0 else 1.0


def probe_accuracy(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray | None = None,
    test_y: np.ndarray | None = None,
    *,
    folds: int = 5,
    seed: int = 0,
) -> float:
    """Linear-probe accuracy of frozen embeddings (logistic regression).

    With a test set: fit on train, score on test. Without: stratified k-fold cross-validation.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    model = LogisticRegression(C=1.0, max_iter=2000)
    if test_x is not None and test_y is not None:
        model.fit(train_x, train_y)
        return float(model.score(test_x, test_y))
    _, counts = np.unique(train_y, return_counts=True)
    n_folds = max(2, min(folds, int(counts.min())))
    splitter = StratifiedKFold(n_folds, shuffle=True, random_state=seed)
    return float(cross_val_score(model, train_x, train_y, cv=splitter).mean())


def tsne_plot(
    embeddings: np.ndarray,
    labels: Sequence[str],
    path: str | Path,
    *,
    title: str = "",
    seed: int = 0,
    max_points: int = 3000,
) -> Path:
    """Save a 2-D t-SNE of the embeddings, one colour per label, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE

    labels_arr = np.asarray(labels)
    if len(labels_arr) > max_points:
        keep = np.random.default_rng(seed).choice(len(labels_arr), max_points, replace=False)
        embeddings, labels_arr = embeddings[keep], labels_arr[keep]
    perplexity = float(min(30, max(2, (len(labels_arr) - 1) // 3)))
    points = TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(embeddings)
    classes, counts = np.unique(labels_arr, return_counts=True)
    # Many classes (catalog article types): colour the 20 biggest, the rest in grey.
    shown = set(classes[np.argsort(-counts)[:20]])
    cmap = plt.get_cmap("tab20")
    fig, ax = plt.subplots(figsize=(9, 7), dpi=100)
    rest = np.array([label not in shown for label in labels_arr])
    if rest.any():
        ax.scatter(points[rest, 0], points[rest, 1], s=6, c="lightgrey", label="other")
    for i, name in enumerate(sorted(shown)):
        mask = labels_arr == name
        ax.scatter(points[mask, 0], points[mask, 1], s=8, color=cmap(i % 20), label=name)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or f"t-SNE of {len(labels_arr)} embeddings")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, markerscale=2)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def evaluate_folder(
    data: str | Path,
    *,
    label_column: str | None = None,
    model: str | None = None,
    metric: Distance = "cosine",
    split: Split = "all",
    val_fraction: float | None = None,
    seed: int | None = None,
    min_per_class: int = 2,
    plot: str | Path | None = None,
    batch_size: int = 32,
    runtime: Runtime = "auto",
) -> dict[str, Any]:
    """Evaluate ``model`` (a model directory or backbone name; default frozen
    efficientnet_lite0) on a labelled folder or CSV; the report's keys include ``p@1``,
    ``p@5``, ``p@10``, ``map@10``, ``accuracy`` and ``n_images``.

    ``accuracy`` comes from the model's classifier when it has one; for a frozen backbone it is
    a logistic-regression probe (trained on the train split when ``split="val"``, else 5-fold
    cross-validated); ``accuracy_method`` says which. ``split="val"`` uses the model card's
    split settings unless ``val_fraction``/``seed`` are given, so a fine-tuned model is judged
    on images it never trained on.
    """
    from lab.embedder.data import load_labelled, select_split
    from services.embedder.artifact import find_model_dir, load_card
    from services.embedder.inference import DEFAULT_MODEL, Embedder

    model_name = model or DEFAULT_MODEL
    model_dir = find_model_dir(model_name)
    card = load_card(model_dir) if model_dir is not None else None
    card_split = card.data.get("split", {}) if card else {}
    fraction = val_fraction if val_fraction is not None else card_split.get("val_fraction", 0.2)
    split_seed = seed if seed is not None else card_split.get("seed", 0)
    if label_column is None and card is not None and Path(data).suffix.lower() == ".csv":
        label_column = card.label_column
    images = load_labelled(data, label_column, min_per_class=min_per_class)
    subset = select_split(images, split, fraction, split_seed)
    embedder = Embedder(model_name, batch_size=batch_size, runtime=runtime)
    info = embedder.load().info

    started = time.perf_counter()
    probabilities = None
    if info.classes:
        embeddings, probabilities = embedder.classify(list(subset.paths))
    else:
        embeddings = embedder.embed(list(subset.paths))
    seconds = time.perf_counter() - started
    report: dict[str, Any] = {
        **{k: round(v, 4) for k, v in retrieval_metrics(embeddings, subset.labels, metric).items()},
        "accuracy": None,
        "n_images": len(subset),
        "metric": metric,
        "model": info.version,
        "backbone": info.backbone,
        "runtime": info.runtime,
        "data": str(data),
        "label_column": subset.label_column,
        "split": {"name": split, "val_fraction": fraction, "seed": split_seed},
        "fingerprint": images.fingerprint(),
        "skipped": images.skipped,
        "embed_seconds": round(seconds, 2),
        "images_per_s": round(len(subset) / seconds, 1) if seconds > 0 else None,
    }
    if card is not None:
        report["data_matches_training"] = card.data.get("fingerprint") == images.fingerprint()
    if probabilities is not None:
        classes = list(info.classes)
        targets = subset.targets(classes)
        predictions = probabilities.argmax(axis=1)
        known = targets >= 0
        report["accuracy"] = round(float((predictions == targets).mean()), 4)
        report["accuracy_method"] = "model classifier head"
        report["unknown_labels"] = int((~known).sum())
        if known.any():
            report["ece"] = round(
                expected_calibration_error(probabilities[known], targets[known]), 4
            )
        report["classes"] = classes
        report["confusion_matrix"] = confusion_matrix(targets, predictions, len(classes)).tolist()
    else:
        classes = subset.classes
        targets = subset.targets(classes)
        if split == "val":
            train = select_split(images, "train", fraction, split_seed)
            train_x = embedder.embed(list(train.paths))
            accuracy = probe_accuracy(train_x, train.targets(classes), embeddings, targets)
            report["accuracy_method"] = "logistic-regression probe fitted on the train split"
        else:
            accuracy = probe_accuracy(embeddings, targets)
            report["accuracy_method"] = "logistic-regression probe, 5-fold cross-validation"
        report["accuracy"] = round(accuracy, 4)
        report["classes"] = classes
    report["per_class_p@10"] = _per_class_precision(embeddings, subset.labels, metric)
    embedder.close()
    if plot is not None:
        title = f"{info.version} on {Path(data).name} ({split}, {len(subset)} images)"
        report["plot"] = str(tsne_plot(embeddings, subset.labels, plot, title=title))
    return report


def _per_class_precision(
    embeddings: np.ndarray, labels: Sequence[str], metric: Distance
) -> dict[str, float]:
    labels_arr = np.asarray(labels)
    top = _neighbours(embeddings, metric, 10)
    hits = (labels_arr[top] == labels_arr[:, None]).mean(axis=1)
    return {
        str(name): round(float(hits[labels_arr == name].mean()), 4)
        for name in np.unique(labels_arr)
    }
