"""What the steps of a run share: the split, the network, the threads; progress bars and timings."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lab.embedder.batches import Batches, FeatureRunner, clean_batches
from lab.embedder.config import TrainConfig
from lab.embedder.data import LabelledImages, stratified_split
from lab.embedder.heads import MetricHead, Validation, validate
from services.embedder.network import EmbeddingNet
from services.modellab.models import Preprocess
from services.modellab.models.preprocess import default_workers
from shared.errors import InvalidInputError

__all__ = ["Run", "Split", "progress_bars", "running", "sampling_weights", "split_images", "timed"]


def progress_bars(enabled: bool) -> Callable[..., Any]:
    """``tqdm`` with the run's ``progress`` setting."""
    from tqdm.auto import tqdm

    def bar(iterable: Any = None, **kwargs: Any) -> Any:
        return tqdm(iterable, disable=not enabled, **kwargs)

    return bar


@contextmanager
def timed(timings: dict[str, float], key: str) -> Iterator[None]:
    """Add the block's wall time to ``timings[key]`` (when it does not raise)."""
    t0 = time.perf_counter()
    yield
    timings[key] = timings.get(key, 0.0) + time.perf_counter() - t0


@dataclass(frozen=True)
class Split:
    """The stratified train/validation split: indices, class targets, labels and paths."""

    classes: list[str]
    train_idx: np.ndarray
    val_idx: np.ndarray
    train_y: np.ndarray
    val_y: np.ndarray
    val_labels: list[str]
    train_paths: list[Path]
    val_paths: list[Path]
    weights: np.ndarray | None
    """Each training image's sampling probability; ``None``: every image once an epoch."""
    fine_labels: list[str]
    train_fine: np.ndarray | None
    """Each training image's fine-label index (``-1``: none); ``None`` without a fine level."""

    def draw(self, rng: np.random.Generator, n: int | None = None) -> np.ndarray:
        """An epoch's training order: a permutation, or ``n`` draws by weight."""
        if self.weights is None and n is None:
            return rng.permutation(len(self.train_paths))
        return rng.choice(len(self.train_paths), size=n or len(self.train_paths), p=self.weights)


def split_images(images: LabelledImages, config: TrainConfig) -> Split:
    classes = images.classes
    if len(classes) < 2:
        raise InvalidInputError(f"need at least 2 classes to train, got {classes}")
    train_idx, val_idx = stratified_split(images, config.val_fraction, config.seed)
    if len(val_idx) < 2:
        raise InvalidInputError("the validation split is too small: add images")
    targets = images.targets(classes)
    weights = sampling_weights(images.domain[train_idx], targets[train_idx], config)
    fine_labels = sorted({f for f in images.fine if f})
    index = {f: i for i, f in enumerate(fine_labels)}
    train_fine = (
        np.array([index.get(images.fine[i], -1) for i in train_idx], dtype=np.int64)
        if fine_labels
        else None
    )
    return Split(
        classes=classes,
        train_idx=train_idx,
        val_idx=val_idx,
        train_y=targets[train_idx],
        val_y=targets[val_idx],
        val_labels=[images.labels[i] for i in val_idx],
        train_paths=[images.paths[i] for i in train_idx],
        val_paths=[images.paths[i] for i in val_idx],
        weights=weights,
        fine_labels=fine_labels,
        train_fine=train_fine,
    )


def sampling_weights(
    domains: np.ndarray, targets: np.ndarray, config: TrainConfig
) -> np.ndarray | None:
    """Sampling probabilities from the source weights and class balancing (``None``: uniform)."""
    if not config.balance_classes and all(w == 1.0 for w in config.source_weights):
        return None
    per_source = np.ones(int(domains.max()) + 1)
    per_source[: len(config.source_weights)] = config.source_weights[: len(per_source)]
    weights = per_source[domains]
    if config.balance_classes:
        counts = np.bincount(targets, minlength=int(targets.max()) + 1)
        weights = weights / counts[targets]
    if not weights.sum() > 0:
        raise InvalidInputError("the source weights leave nothing to train on")
    return weights / weights.sum()


@dataclass
class Run:
    """What the steps of :func:`train` share: the split, the network and the workers."""

    config: TrainConfig
    split: Split
    net: EmbeddingNet
    metric: MetricHead | None
    device: torch.device
    size: int
    preprocess: Preprocess
    batches: Batches
    decode_pool: ThreadPoolExecutor
    runner: FeatureRunner

    def val_batches(self) -> Iterator[np.ndarray]:
        return clean_batches(self.split.val_paths, self.preprocess, self.decode_pool)

    def validate(self) -> Validation:
        split = self.split
        return validate(self.net, self.runner, self.val_batches, split.val_y, split.val_labels)


@contextmanager
def running(
    config: TrainConfig,
    split: Split,
    net: EmbeddingNet,
    metric: MetricHead | None,
    device: torch.device,
    size: int,
) -> Iterator[Run]:
    """The run's augmentation and decoding threads and a scratch folder for ONNX exports."""
    preprocess = net.backbone.preprocess
    workers = config.workers or default_workers()
    batches = Batches(split.train_paths, preprocess, config, workers)
    decode_pool = ThreadPoolExecutor(workers, thread_name_prefix="decode")
    try:
        with tempfile.TemporaryDirectory(prefix="lookalike-train-") as tmp:
            runner = FeatureRunner(net, device, Path(tmp), size)
            yield Run(
                config, split, net, metric, device, size, preprocess, batches, decode_pool, runner
            )
    finally:
        batches.close()
        decode_pool.shutdown()
