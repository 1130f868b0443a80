"""After training: calibration, the embedding that ships, the check figures and the model card."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lab.embedder import evaluation
from lab.embedder.batches import clean_batches
from lab.embedder.config import TrainConfig
from lab.embedder.data import LabelledImages, ShopCheck
from lab.embedder.heads import Validation
from lab.embedder.run import Run
from lab.embedder.stages import Stage1
from lab.resume import BestEpoch
from services.embedder.artifact import ModelCard
from services.embedder.network import EmbeddingNet
from shared.errors import InvalidInputError

__all__ = [
    "Calibration",
    "calibrate",
    "choose_embedding",
    "model_card",
    "score_check",
    "shop_retrieval",
]


@dataclass(frozen=True)
class Calibration:
    temperature: float
    ece_before: float
    ece_after: float


def calibrate(net: EmbeddingNet, best: Validation, val_y: np.ndarray) -> Calibration:
    """Temperature scaling on the best epoch's validation logits; sets ``net``'s temperature."""
    probs_before = _softmax(best.logits)
    temperature = evaluation.fit_temperature(best.logits, val_y)
    probs_after = _softmax(best.logits / temperature)
    net.set_temperature(temperature)
    return Calibration(
        temperature,
        evaluation.expected_calibration_error(probs_before, val_y),
        evaluation.expected_calibration_error(probs_after, val_y),
    )


def score_check(run: Run, checks: LabelledImages) -> dict[str, Any]:
    """The final model's accuracy, per-class recall and ECE on ``checks``."""
    classes = run.split.classes
    y = checks.targets(classes)
    if len(checks) == 0 or (y < 0).any():
        raise InvalidInputError(f"the check images need labels among {classes}")
    features = np.concatenate(
        list(run.runner.features(clean_batches(checks.paths, run.preprocess, run.decode_pool)))
    )
    with torch.no_grad():
        _, logits = run.net.heads(torch.from_numpy(features))
    assert logits is not None
    probs = _softmax(logits.float().numpy())
    hits = probs.argmax(1) == y
    return {
        "source": checks.source,
        "n_images": len(checks),
        "accuracy": round(float(hits.mean()), 4),
        "ece": round(evaluation.expected_calibration_error(probs, y), 4),
        "recall_per_class": {
            name: round(float(hits[y == i].mean()), 4)
            for i, name in enumerate(classes)
            if (y == i).any()
        },
    }


def shop_retrieval(run: Run, shop: ShopCheck) -> dict[str, Any]:
    """P@10 with the embedding alone: the primary's validation images searched in the shop
    (same class), and held-out shop images searched in the rest of it (same fine label); for the
    shipped embedding and for the backbone's own features."""
    pool, pre = run.decode_pool, run.preprocess
    gallery = np.concatenate(
        list(run.runner.features(clean_batches(shop.gallery.paths, pre, pool)))
    )
    street = np.concatenate(list(run.runner.features(run.val_batches())))
    queries = np.flatnonzero(shop.held)
    fine = np.asarray(shop.gallery.fine or shop.gallery.labels)

    def figures(embed: Callable[[np.ndarray], np.ndarray]) -> dict[str, float]:
        g = embed(gallery)
        street_hits = evaluation.cross_hits(
            embed(street), run.split.val_labels, g, shop.gallery.labels
        )
        shop_hits = evaluation.cross_hits(g[queries], fine[queries], g, fine, same=queries)
        return {
            "street_to_shop_p@10": round(float(street_hits.mean()), 4),
            "shop_to_shop_p@10": round(float(shop_hits.mean()), 4),
        }

    def shipped(features: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            embedding, _ = run.net.heads(torch.from_numpy(features))
        return embedding.float().numpy()

    return {
        "shop": shop.gallery.source,
        "n_shop": len(shop.gallery),
        "n_shop_queries": len(queries),
        "n_street_queries": len(street),
        "embedding": figures(shipped),
        "backbone_features": figures(lambda x: x),
    }


def choose_embedding(net: EmbeddingNet, best: Validation) -> tuple[bool, dict[str, float]]:
    """Keep the projection only if it beats the backbone features at validation retrieval (else
    drop it from ``net``); whether it is kept and the shipped embedding's retrieval scores."""
    if best.retrieval_projection is None:
        return False, best.retrieval_backbone
    proj, back = best.retrieval_projection, best.retrieval_backbone
    if (proj["p@10"], proj["map@10"]) > (back["p@10"], back["map@10"]):
        return True, proj
    net.projection = None
    return False, back


def model_card(
    images: LabelledImages,
    out: str | Path,
    run: Run,
    *,
    best: BestEpoch[Validation],
    history: list[dict[str, Any]],
    stage1: Stage1,
    calibration: Calibration,
    projection_kept: bool,
    retrieval: dict[str, float],
    timings: dict[str, float],
    elapsed: float,
) -> ModelCard:
    config, split, validation = run.config, run.split, best.result
    matrix = evaluation.confusion_matrix(
        split.val_y, validation.logits.argmax(1), len(split.classes)
    )
    return ModelCard(
        name=config.name or Path(out).name,
        backbone=config.backbone,
        input_size=run.size,
        preprocess=run.preprocess.to_dict(),
        embedding_dim=run.net.embedding_dim,
        embedding_source="projection" if projection_kept else "backbone",
        projection_dim=config.projection_dim if projection_kept else 0,
        # Stage 2 did not beat stage 1: the backbone is the stock one, ship only the heads.
        backbone_weights="imagenet" if best.epoch == 0 else "included",
        classes=split.classes,
        label_column=images.label_column,
        data={
            "source": images.source,
            "fingerprint": images.fingerprint(),
            "n_images": len(images),
            "n_train": len(split.train_idx),
            "n_val": len(split.val_idx),
            "class_counts": images.counts(),
            "skipped": images.skipped,
            "split": {"val_fraction": config.val_fraction, "seed": config.seed},
            **({"sources": _sources(images, config)} if images.sources else {}),
        },
        metrics={
            "split": "val",
            "n_images": len(split.val_idx),
            **{k: round(v, 4) for k, v in retrieval.items()},
            "accuracy": round(validation.accuracy, 4),
            "ece_before_calibration": round(calibration.ece_before, 4),
            "ece": round(calibration.ece_after, 4),
            "frozen_imagenet": {
                **{k: round(v, 4) for k, v in stage1.scores.retrieval.items()},
                "accuracy_logreg_probe": round(stage1.scores.probe_accuracy, 4),
            },
            "retrieval_backbone_features": _rounded(validation.retrieval_backbone),
            "retrieval_projection": _rounded(validation.retrieval_projection),
            "confusion_matrix": matrix.tolist(),
        },
        training={
            "config": asdict(config),
            "device": str(run.device),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "time_s": round(elapsed, 1),
            "timings_s": {k: round(v, 1) for k, v in timings.items()},
            "stage1": stage1.record,
            "best_epoch": best.epoch,
            "history": history,
            "temperature": round(calibration.temperature, 4),
        },
    )


def _sources(images: LabelledImages, config: TrainConfig) -> list[dict[str, Any]]:
    """Each source of a combined set: its images per class and its sampling weight."""
    out = []
    for d, source in enumerate(images.sources):
        labels = [images.labels[i] for i in np.flatnonzero(images.domain == d)]
        weight = config.source_weights[d] if d < len(config.source_weights) else 1.0
        out.append(
            {
                "source": source,
                "role": "primary (validation split)" if d == 0 else "training only",
                "n_images": len(labels),
                "class_counts": dict(sorted(Counter(labels).items())),
                "weight": weight,
            }
        )
    return out


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def _rounded(values: dict[str, float] | None) -> dict[str, float] | None:
    return None if values is None else {k: round(v, 4) for k, v in values.items()}
