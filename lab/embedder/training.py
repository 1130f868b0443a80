"""Fine-tuning: the seeds' two-stage recipe, made to fit 2 CPU cores.

1. **Head on the frozen backbone.** Backbone features of the training images (plus a few
   augmented views of each) are computed once (in ONNX Runtime when installed, several times
   faster than eager PyTorch on a CPU) and cached; a softmax classifier (and, optionally, a
   256-d normalised-softmax metric head) trains on the cache in seconds.
2. **All layers at a lower rate.** The whole network trains with augmentation (random resized
   crop, flip, colour jitter) at a learning rate 10x below the heads', validated after each
   epoch (accuracy and leave-one-out P@10 on the validation split) with early stopping; the best
   epoch is kept. A time budget (``max_minutes``) ends stage 2 before an epoch that would not fit;
   with a checkpoint file, the run is saved after stage 1 and after each epoch, and a rerun
   resumes there (an hour-long Lite2 run survives being stopped).

Then temperature scaling on the validation split calibrates the classifier (ECE before and
after go into the model card), and the metric head is kept only if it beats the backbone
features at validation retrieval. Randomness comes from one seed: augmentations are drawn per
(seed, epoch, image), so thread scheduling does not change them.
"""

from __future__ import annotations

import copy
import logging
import math
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageEnhance
from torch import nn

from lab.embedder import evaluation
from lab.embedder.data import LabelledImages, ShopCheck, stratified_split
from lab.resume import load_checkpoint, save_checkpoint
from services.embedder.artifact import ModelCard, save_model
from services.embedder.network import EmbeddingNet, resolve_device
from services.modellab.models import Preprocess, backbone_spec, create_backbone
from services.modellab.models.preprocess import Fit, decode_batch, default_workers
from services.modellab.onnx import OnnxSession, export_onnx, onnxruntime_available
from shared.errors import InvalidInputError

__all__ = ["TrainConfig", "TrainResult", "train"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of :func:`train`; the defaults fit ~5,000 images in 30 minutes on 2 cores."""

    backbone: str = "efficientnet_lite0"
    input_size: int | None = 192
    crop_fraction: float = 1.0
    fit: Fit = "crop"
    """``squash``: every image resized to a square, aspect not kept (see ``Preprocess``)."""
    val_fraction: float = 0.2
    seed: int = 0
    batch_size: int = 32
    feature_views: int = 2
    head_epochs: int = 40
    head_lr: float = 3e-3
    finetune_epochs: int = 6
    finetune_lr: float = 3e-4
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    patience: int = 2
    projection_dim: int = 256
    metric_scale: float = 16.0
    min_scale: float = 0.5
    max_minutes: float | None = 27.0
    device: str = "auto"
    workers: int | None = None
    name: str | None = None
    source_weights: tuple[float, ...] = ()
    """Sampling weight of each source's images (primary first; missing ones are 1.0)."""
    balance_classes: bool = False
    """Draw every class equally often (within each source's weight)."""
    epoch_images: int | None = None
    """Stage 2 images per epoch, drawn by weight (default: as many as there are)."""


@dataclass
class TrainResult:
    card: ModelCard
    out: Path


# --------------------------------------------------------------------------- augmentation


def augment(img: Image.Image, size: int, rng: np.random.Generator, min_scale: float) -> Image.Image:
    """Random resized crop (scale ``min_scale``-1, ratio 3/4-4/3), flip, colour jitter."""
    width, height = img.size
    area = width * height
    for _ in range(10):
        target = area * rng.uniform(min_scale, 1.0)
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        w = round(math.sqrt(target * ratio))
        h = round(math.sqrt(target / ratio))
        if 0 < w <= width and 0 < h <= height:
            left = int(rng.integers(0, width - w + 1))
            top = int(rng.integers(0, height - h + 1))
            break
    else:
        w, h = min(width, height), min(width, height)
        left, top = (width - w) // 2, (height - h) // 2
    out = img.resize((size, size), Image.Resampling.BILINEAR, box=(left, top, left + w, top + h))
    if rng.random() < 0.5:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        out = enhancer(out).enhance(float(rng.uniform(0.8, 1.2)))
    return out


class _Batches:
    """Decoded, augmented training batches, prepared in threads one batch ahead."""

    def __init__(
        self,
        paths: Sequence[Path],
        preprocess: Preprocess,
        config: TrainConfig,
        workers: int,
    ) -> None:
        self.paths = list(paths)
        self.preprocess = preprocess
        self.config = config
        self.pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="augment")
        self._images: dict[int, Image.Image] = {}

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    def _image(self, index: int) -> Image.Image:
        # Decoded at the input size once: augmenting a small image is much cheaper, and the
        # crops never need more detail than the network's input.
        cached = self._images.get(index)
        if cached is None:
            img = self.preprocess.load(self.paths[index])
            side = round(self.preprocess.input_size / self.config.min_scale**0.5)
            if self.preprocess.fit == "squash":
                img = self.preprocess.squash(img, side)
            elif min(img.size) > side:
                scale = side / min(img.size)
                img = img.resize(
                    (round(img.width * scale), round(img.height * scale)),
                    Image.Resampling.BILINEAR,
                )
            self._images[index] = cached = img
        return cached

    def view(self, index: int, epoch: int, view: int = 0) -> np.ndarray:
        rng = np.random.default_rng([self.config.seed, epoch, view, index])
        img = augment(self._image(index), self.preprocess.input_size, rng, self.config.min_scale)
        return self.preprocess.array(img)

    def _batch(self, indices: np.ndarray, epoch: int, view: int) -> np.ndarray:
        arrays = self.pool.map(lambda i: self.view(int(i), epoch, view), indices)
        return np.stack(list(arrays))

    def epoch(
        self, order: np.ndarray, epoch: int, view: int = 0
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(indices, images)`` for each batch of ``order``."""
        size = self.config.batch_size
        chunks = [order[i : i + size] for i in range(0, len(order), size)]
        with ThreadPoolExecutor(1, thread_name_prefix="prefetch") as prefetch:
            pending: Future[np.ndarray] | None = (
                prefetch.submit(self._batch, chunks[0], epoch, view) if chunks else None
            )
            for i, chunk in enumerate(chunks):
                assert pending is not None
                batch = pending.result()
                if i + 1 < len(chunks):
                    pending = prefetch.submit(self._batch, chunks[i + 1], epoch, view)
                yield chunk, batch


# ------------------------------------------------------------------------------- features


class _FeatureRunner:
    """Backbone forward passes for feature caching and validation: ONNX Runtime on the CPU when
    installed (exported once per weight update), else PyTorch."""

    def __init__(
        self, net: EmbeddingNet, device: torch.device, workdir: Path, input_size: int
    ) -> None:
        self.net = net
        self.device = device
        self.workdir = workdir
        self.input_size = input_size
        self.use_onnx = device.type == "cpu" and onnxruntime_available()
        self._session: OnnxSession | None = None
        self._exports = 0

    def invalidate(self) -> None:
        """The backbone's weights changed: export again (to a new file: an export is written
        once per path) before the next use."""
        self._session = None
        self._path.unlink(missing_ok=True)
        self._exports += 1

    @property
    def _path(self) -> Path:
        return self.workdir / f"backbone-{self._exports}.onnx"

    def features(self, batches: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        """Backbone features, one array per batch."""
        self.net.eval()
        if self.use_onnx:
            if self._session is None:
                export_onnx(_FeaturesOnly(self.net.backbone), self._path, self.input_size)
                self._session = OnnxSession(self._path)
            for batch in batches:
                yield self._session.run(batch)[0]
            return
        with torch.inference_mode():
            for batch in batches:
                x = torch.from_numpy(batch).to(self.device)
                yield self.net.backbone(x).float().cpu().numpy()


class _FeaturesOnly(nn.Module):
    """The backbone's raw features as an "embedding" (so the ONNX exporter sees one output)."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.backbone(x), None


# ---------------------------------------------------------------------------------- heads


class _MetricHead(nn.Module):
    """Normalised-softmax proxies for the projection (training only; not saved): one per class
    and, when the data has a finer level, one per fine label."""

    def __init__(self, dim: int, n_classes: int, scale: float, n_fine: int = 0) -> None:
        super().__init__()
        self.proxies = nn.Parameter(torch.randn(n_classes, dim) * 0.01)
        self.fine = nn.Parameter(torch.randn(n_fine, dim) * 0.01) if n_fine else None
        self.scale = scale

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.scale * embedding @ F.normalize(self.proxies, dim=1).T

    def fine_loss(self, embedding: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
        """Cross-entropy over the fine proxies of the images that have a fine label (``>= 0``)."""
        known = fine >= 0
        if self.fine is None or not bool(known.any()):
            return embedding.new_zeros(())
        logits = self.scale * embedding[known] @ F.normalize(self.fine, dim=1).T
        return F.cross_entropy(logits, fine[known])


def _losses(
    net: EmbeddingNet,
    metric: _MetricHead | None,
    features: torch.Tensor,
    targets: torch.Tensor,
    smoothing: float,
    fine: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    embedding, logits = net.heads(features)
    assert logits is not None
    loss = F.cross_entropy(logits, targets, label_smoothing=smoothing)
    if metric is not None:
        loss = loss + F.cross_entropy(metric(embedding), targets)
        if fine is not None:
            loss = loss + metric.fine_loss(embedding, fine)
    return loss, logits


def _train_heads(
    net: EmbeddingNet,
    metric: _MetricHead | None,
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    config: TrainConfig,
    progress: Callable[..., Any],
    weights: np.ndarray | None = None,
    train_fine: np.ndarray | None = None,
) -> dict[str, Any]:
    """Stage 1: heads on cached features (drawn by ``weights`` when given); keeps the epoch with
    the best validation loss."""
    generator = torch.Generator().manual_seed(config.seed)
    draw = None if weights is None else torch.from_numpy(weights)
    heads = [m for m in (net.classifier, net.projection, metric) if m is not None]
    params = [p for m in heads for p in m.parameters()]
    optimiser = torch.optim.AdamW(params, lr=config.head_lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train_x) / 128)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, config.head_lr, total_steps=max(1, config.head_epochs * steps_per_epoch)
    )
    device = next(net.parameters()).device
    x_train, y_train = torch.from_numpy(train_x).to(device), torch.from_numpy(train_y).to(device)
    x_val, y_val = torch.from_numpy(val_x).to(device), torch.from_numpy(val_y).to(device)
    f_train = None if train_fine is None else torch.from_numpy(train_fine).to(device)
    best: tuple[float, list[dict[str, Any]], int] | None = None
    history = []
    for epoch in progress(range(config.head_epochs), desc="stage 1: heads", unit="epoch"):
        for m in heads:
            m.train()
        net.dropout.train()
        order = (
            torch.randperm(len(x_train), generator=generator)
            if draw is None
            else torch.multinomial(draw, len(x_train), replacement=True, generator=generator)
        ).to(device)
        for start in range(0, len(order), 128):
            idx = order[start : start + 128]
            fine = None if f_train is None else f_train[idx]
            loss, _ = _losses(net, metric, x_train[idx], y_train[idx], config.label_smoothing, fine)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            scheduler.step()
        net.eval()
        with torch.no_grad():
            _, logits = net.heads(x_val)
            assert logits is not None
            val_loss = float(F.cross_entropy(logits, y_val))
            accuracy = float((logits.argmax(1) == y_val).float().mean())
        history.append({"epoch": epoch + 1, "val_loss": round(val_loss, 4), "val_acc": accuracy})
        if best is None or val_loss < best[0]:
            best = (val_loss, [copy.deepcopy(m.state_dict()) for m in heads], epoch + 1)
    assert best is not None
    for module, state in zip(heads, best[1], strict=True):
        module.load_state_dict(state)
    return {"best_epoch": best[2], "best_val_loss": round(best[0], 4), "history": history}


# ------------------------------------------------------------------------------ validation


@dataclass
class _Validation:
    loss: float
    accuracy: float
    retrieval_backbone: dict[str, float]
    retrieval_projection: dict[str, float] | None
    logits: np.ndarray

    @property
    def score(self) -> float:
        """Early-stopping score: mean of accuracy and the best embedding's P@10."""
        p10 = self.retrieval_backbone["p@10"]
        if self.retrieval_projection is not None:
            p10 = max(p10, self.retrieval_projection["p@10"])
        return (self.accuracy + p10) / 2


def _validate(
    net: EmbeddingNet,
    runner: _FeatureRunner,
    val_batches: Callable[[], Iterator[np.ndarray]],
    val_y: np.ndarray,
    labels: Sequence[str],
) -> _Validation:
    features = np.concatenate(list(runner.features(val_batches())))
    with torch.no_grad():
        x = torch.from_numpy(features)
        net.eval()
        embedding, logits_t = net.heads(x.to(next(net.parameters()).device))
        assert logits_t is not None
        logits = logits_t.float().cpu().numpy()
        projected = embedding.float().cpu().numpy()
    y = torch.from_numpy(val_y)
    loss = float(F.cross_entropy(torch.from_numpy(logits), y))
    accuracy = float((logits.argmax(1) == val_y).mean())
    backbone_retrieval = evaluation.retrieval_metrics(features, labels)
    projection_retrieval = (
        evaluation.retrieval_metrics(projected, labels) if net.projection is not None else None
    )
    return _Validation(loss, accuracy, backbone_retrieval, projection_retrieval, logits)


# ---------------------------------------------------------------------------------- train


def train(
    images: LabelledImages,
    out: str | Path,
    config: TrainConfig | None = None,
    *,
    progress: bool = True,
    checks: Sequence[LabelledImages] = (),
    shop: ShopCheck | None = None,
    command: str | None = None,
    checkpoint: Path | None = None,
) -> TrainResult:
    """Fine-tune ``config.backbone`` on ``images`` and write a model directory to ``out``.

    ``checks`` (labelled in ``images``' classes, never trained on) are scored by the final
    model into the card's ``metrics["checks"]``: e.g. query-time crops of held-out photos.
    ``shop`` measures retrieval into a shop catalog: ``metrics["street_to_shop"]``.
    ``command`` (the command line that reproduces the run) goes into the card's training record.
    With ``checkpoint``, the state after stage 1 and after every stage-2 epoch is saved there,
    and a later call on the same data with the same settings resumes after the last saved step
    (the time budget counts the resumed run; the card's time counts every run).
    """
    config = config or TrainConfig()
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    bar = _progress_bars(progress)
    split = _split(images, config)
    device = resolve_device(config.device)
    net, metric, size = _build_network(config, len(split.classes), device, len(split.fine_labels))
    log.info(
        "training %s at %d px on %d images (%d train, %d val, %d classes), device %s",
        config.backbone,
        size,
        len(images),
        len(split.train_idx),
        len(split.val_idx),
        len(split.classes),
        device,
    )
    saver = _Checkpointer(checkpoint, _fingerprint(images, config), started)
    saved = saver.load()
    timings = saver.timings
    with _running(config, split, net, metric, device, size) as run:
        if saved is None:
            scores, stage1, best = _stage1(run, timings, bar)
            saver.start(scores, stage1)
            saver.save(run, best, epoch=0)
        else:
            scores, stage1, best = saver.resume(run, saved)
        with _timed(timings, "stage2_s"):
            if config.finetune_epochs > 0:
                _finetune(run, best, started, bar, saver)
        net.eval().cpu()
        calibration = _calibrate(net, best.result, split.val_y)
        projection_kept, retrieval = _choose_embedding(net, best.result)
        run.runner.invalidate()  # the best epoch's weights are loaded: export them once
        checked = [_check(run, c) for c in checks]
        shopped = None if shop is None else _shop_retrieval(run, shop)
    elapsed = saver.elapsed()
    card = _model_card(
        images,
        out,
        run,
        best=best,
        frozen=scores,
        stage1=stage1,
        calibration=calibration,
        projection_kept=projection_kept,
        retrieval=retrieval,
        timings=timings,
        elapsed=elapsed,
    )
    if checked:
        card.metrics["checks"] = checked
    if shopped is not None:
        card.metrics["street_to_shop"] = shopped
    if command is not None:
        card.training["command"] = command
    card = save_model(net, card, out)
    log.info("saved %s to %s in %.0f s", card.version, out, elapsed)
    return TrainResult(card=card, out=Path(out))


def _progress_bars(enabled: bool) -> Callable[..., Any]:
    """``tqdm`` with the run's ``progress`` setting."""
    from tqdm.auto import tqdm

    def bar(iterable: Any = None, **kwargs: Any) -> Any:
        return tqdm(iterable, disable=not enabled, **kwargs)

    return bar


@contextmanager
def _timed(timings: dict[str, float], key: str) -> Iterator[None]:
    """Add the block's wall time to ``timings[key]`` (when it does not raise)."""
    t0 = time.perf_counter()
    yield
    timings[key] = timings.get(key, 0.0) + time.perf_counter() - t0


@dataclass(frozen=True)
class _Split:
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


def _split(images: LabelledImages, config: TrainConfig) -> _Split:
    classes = images.classes
    if len(classes) < 2:
        raise InvalidInputError(f"need at least 2 classes to train, got {classes}")
    train_idx, val_idx = stratified_split(images, config.val_fraction, config.seed)
    if len(val_idx) < 2:
        raise InvalidInputError("the validation split is too small: add images")
    targets = images.targets(classes)
    weights = _weights(images.domain[train_idx], targets[train_idx], config)
    fine_labels = sorted({f for f in images.fine if f})
    index = {f: i for i, f in enumerate(fine_labels)}
    train_fine = (
        np.array([index.get(images.fine[i], -1) for i in train_idx], dtype=np.int64)
        if fine_labels
        else None
    )
    return _Split(
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


def _weights(domains: np.ndarray, targets: np.ndarray, config: TrainConfig) -> np.ndarray | None:
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


def _build_network(
    config: TrainConfig, n_classes: int, device: torch.device, n_fine: int = 0
) -> tuple[EmbeddingNet, _MetricHead | None, int]:
    """The ImageNet backbone at the input size with fresh heads; also the input size."""
    spec = backbone_spec(config.backbone)
    size = config.input_size or spec.preprocess.input_size
    backbone = create_backbone(config.backbone, "imagenet", input_size=size)
    backbone.drop_imagenet_head()
    backbone.preprocess = backbone.preprocess.with_input_size(
        size, config.crop_fraction, config.fit
    )
    net = EmbeddingNet(backbone, n_classes, config.projection_dim).to(device)
    metric = (
        _MetricHead(config.projection_dim, n_classes, config.metric_scale, n_fine).to(device)
        if config.projection_dim
        else None
    )
    return net, metric, size


@dataclass
class _Run:
    """What the steps of :func:`train` share: the split, the network and the workers."""

    config: TrainConfig
    split: _Split
    net: EmbeddingNet
    metric: _MetricHead | None
    device: torch.device
    size: int
    preprocess: Preprocess
    batches: _Batches
    decode_pool: ThreadPoolExecutor
    runner: _FeatureRunner

    def val_batches(self) -> Iterator[np.ndarray]:
        return _clean(self.split.val_paths, self.preprocess, self.decode_pool)

    def validate(self) -> _Validation:
        split = self.split
        return _validate(self.net, self.runner, self.val_batches, split.val_y, split.val_labels)


@contextmanager
def _running(
    config: TrainConfig,
    split: _Split,
    net: EmbeddingNet,
    metric: _MetricHead | None,
    device: torch.device,
    size: int,
) -> Iterator[_Run]:
    """The run's augmentation and decoding threads and a scratch folder for ONNX exports."""
    preprocess = net.backbone.preprocess
    workers = config.workers or default_workers()
    batches = _Batches(split.train_paths, preprocess, config, workers)
    decode_pool = ThreadPoolExecutor(workers, thread_name_prefix="decode")
    try:
        with tempfile.TemporaryDirectory(prefix="lookalike-train-") as tmp:
            runner = _FeatureRunner(net, device, Path(tmp), size)
            yield _Run(
                config, split, net, metric, device, size, preprocess, batches, decode_pool, runner
            )
    finally:
        batches.close()
        decode_pool.shutdown()


@dataclass(frozen=True)
class _FrozenScores:
    """The stock backbone's validation scores (for the card)."""

    retrieval: dict[str, float]
    probe_accuracy: float


@dataclass(frozen=True)
class _FrozenFeatures:
    """Stage 1's cache of frozen-backbone features and the stock backbone's scores."""

    train_views: list[np.ndarray]
    val: np.ndarray
    scores: _FrozenScores


def _frozen_features(run: _Run) -> _FrozenFeatures:
    """Features of the clean training images, ``feature_views`` augmented views of each and the
    validation images."""
    split, runner = run.split, run.runner
    clean = _clean(split.train_paths, run.preprocess, run.decode_pool)
    views = [np.concatenate(list(runner.features(clean)))]
    for view in range(1, run.config.feature_views + 1):
        order = np.arange(len(split.train_paths))
        augmented = (batch for _, batch in run.batches.epoch(order, 0, view))
        views.append(np.concatenate(list(runner.features(augmented))))
    val = np.concatenate(list(runner.features(run.val_batches())))
    retrieval = evaluation.retrieval_metrics(val, split.val_labels)
    probe = evaluation.probe_accuracy(
        views[0], split.train_y, val, split.val_y, seed=run.config.seed
    )
    return _FrozenFeatures(views, val, _FrozenScores(retrieval, probe))


@dataclass
class _Best:
    """The best validation so far, its epoch (0: after stage 1) and the weights then, plus the
    record of every validated epoch."""

    result: _Validation
    epoch: int
    state: dict[str, torch.Tensor]
    history: list[dict[str, Any]]


def _snapshot(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _stage1(
    run: _Run, timings: dict[str, float], bar: Callable[..., Any]
) -> tuple[_FrozenScores, dict[str, Any], _Best]:
    """Features of the frozen backbone, the heads trained on them, the first validation."""
    split, net, config = run.split, run.net, run.config
    with _timed(timings, "features_s"):
        frozen = _frozen_features(run)
    n_views = len(frozen.train_views)
    with _timed(timings, "stage1_s"):
        stage1 = _train_heads(
            net,
            run.metric,
            np.concatenate(frozen.train_views),
            np.tile(split.train_y, n_views),
            frozen.val,
            split.val_y,
            config,
            bar,
            None if split.weights is None else np.tile(split.weights, n_views) / n_views,
            None if split.train_fine is None else np.tile(split.train_fine, n_views),
        )
    return frozen.scores, stage1, _validate_heads(run)


def _validate_heads(run: _Run) -> _Best:
    """Validate after stage 1: the first best, epoch 0 of the history."""
    result = run.validate()
    best = _Best(result, 0, _snapshot(run.net), [_record(0, result, math.nan)])
    log.info(
        "stage 1: val accuracy %.3f, P@10 %.3f (projection %s)",
        result.accuracy,
        result.retrieval_backbone["p@10"],
        result.retrieval_projection and round(result.retrieval_projection["p@10"], 3),
    )
    return best


def _finetune(
    run: _Run, best: _Best, started: float, bar: Callable[..., Any], saver: _Checkpointer
) -> None:
    """Stage 2: all layers at a lower rate, validated after each epoch, with early stopping and
    the time budget; updates ``best`` and ends with its weights loaded. Each epoch is saved by
    ``saver``, and a resumed run goes on after the last saved one."""
    config, net = run.config, run.net
    if run.device.type == "cpu":
        net.to(memory_format=torch.channels_last)
    optimiser, scheduler, steps = _finetune_optimiser(run)
    generator = np.random.default_rng([config.seed, 1])
    progress = _Stage2(optimiser, scheduler, generator)
    saver.resume_stage2(progress)
    stale = progress.stale
    epoch_seconds: float | None = None
    last = progress.epoch if progress.stopped else config.finetune_epochs
    for epoch in range(progress.epoch + 1, last + 1):
        if _out_of_time(config, started, epoch_seconds):
            log.info("stage 2: time budget reached before epoch %d", epoch)
            break
        epoch_start = time.perf_counter()
        order = run.split.draw(generator, config.epoch_images)
        losses = _finetune_epoch(run, optimiser, scheduler, steps, order, epoch, bar)
        run.runner.invalidate()
        result = run.validate()
        best.history.append(_record(epoch, result, float(np.mean(losses))))
        log.info(
            "stage 2 epoch %d: loss %.3f, val accuracy %.3f, P@10 %.3f (projection %s)",
            epoch,
            np.mean(losses),
            result.accuracy,
            result.retrieval_backbone["p@10"],
            result.retrieval_projection and round(result.retrieval_projection["p@10"], 3),
        )
        epoch_seconds = time.perf_counter() - epoch_start
        if result.score > best.result.score:
            best.result, best.epoch, stale = result, epoch, 0
            best.state = _snapshot(net)
        else:
            stale += 1
        # The one-cycle rate is high early on: judge only the second half.
        stop = stale >= config.patience and epoch > config.finetune_epochs // 2
        progress.epoch, progress.stale, progress.stopped = epoch, stale, stop
        saver.save(run, best, epoch=epoch, stage2=progress)
        if stop:
            log.info("stage 2: early stop after epoch %d", epoch)
            break
    net.load_state_dict(best.state)
    net.to(memory_format=torch.contiguous_format)


def _finetune_optimiser(
    run: _Run,
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.OneCycleLR, int]:
    """AdamW with the heads at 10x the backbone's rate, one cycle over all of stage 2's steps."""
    config, net = run.config, run.net
    head_params = [
        p
        for m in (net.classifier, net.projection, run.metric)
        if m is not None
        for p in m.parameters()
    ]
    optimiser = torch.optim.AdamW(
        [
            {"params": net.backbone.parameters(), "lr": config.finetune_lr},
            {"params": head_params, "lr": config.finetune_lr * 10},
        ],
        weight_decay=config.weight_decay,
    )
    per_epoch = config.epoch_images or len(run.split.train_paths)
    steps = config.finetune_epochs * math.ceil(per_epoch / config.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimiser,
        [config.finetune_lr, config.finetune_lr * 10],
        total_steps=steps,
        pct_start=0.15,
    )
    return optimiser, scheduler, steps


def _out_of_time(config: TrainConfig, started: float, epoch_seconds: float | None) -> bool:
    """Whether another epoch as long as the last one would overrun ``max_minutes``."""
    elapsed_min = (time.perf_counter() - started) / 60
    return (
        config.max_minutes is not None
        and epoch_seconds is not None
        and elapsed_min + epoch_seconds / 60 > config.max_minutes
    )


def _finetune_epoch(
    run: _Run,
    optimiser: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.OneCycleLR,
    steps: int,
    order: np.ndarray,
    epoch: int,
    bar: Callable[..., Any],
) -> list[float]:
    """One pass over the training images in ``order`` with ``epoch``'s augmentations; the batch
    losses."""
    net, device = run.net, run.device
    net.train()
    losses: list[float] = []
    steps_done = 0
    with bar(total=len(order), desc=f"stage 2: epoch {epoch}", unit="img") as pbar:
        for idx, batch in run.batches.epoch(order, epoch):
            x = torch.from_numpy(batch).to(device)
            if device.type == "cpu":
                x = x.contiguous(memory_format=torch.channels_last)
            y = torch.from_numpy(run.split.train_y[idx]).to(device)
            fine = (
                None
                if run.split.train_fine is None
                else torch.from_numpy(run.split.train_fine[idx]).to(device)
            )
            loss, _ = _losses(net, run.metric, net.backbone(x), y, run.config.label_smoothing, fine)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            if steps_done < steps:
                scheduler.step()
                steps_done += 1
            losses.append(float(loss.detach()))
            if hasattr(pbar, "set_postfix"):
                pbar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
            pbar.update(len(idx))
    return losses


# ----------------------------------------------------------------------------- checkpoints


@dataclass
class _Stage2:
    """Stage 2's state between epochs: what a resumed run needs to go on as if never stopped."""

    optimiser: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.OneCycleLR
    generator: np.random.Generator
    epoch: int = 0
    stale: int = 0
    stopped: bool = False
    """Early stopping ended stage 2 after ``epoch``."""


def _fingerprint(images: LabelledImages, config: TrainConfig) -> dict[str, Any]:
    """What a checkpoint must share with the run that resumes it: the data and every setting
    that shapes the weights (not the time budget, the device or the name)."""
    settings = asdict(config)
    for key in ("max_minutes", "device", "workers", "name"):
        settings.pop(key)
    return {"data": images.fingerprint(), "config": settings}


class _Checkpointer:
    """Saves the run after stage 1 and after each stage-2 epoch (nothing without a ``path``),
    restores a saved run, and keeps the time of every run."""

    def __init__(self, path: Path | None, fingerprint: dict[str, Any], started: float) -> None:
        self.path = path
        self.fingerprint = fingerprint
        self.started = started
        self.timings: dict[str, float] = {}
        self.earlier_s = 0.0
        self._scores: _FrozenScores | None = None
        self._stage1: dict[str, Any] = {}
        self._saved: dict[str, Any] | None = None
        self._stage2_started = started
        self._stage2_before = 0.0

    def load(self) -> dict[str, Any] | None:
        """The saved state of an earlier run of the same fingerprint, if there is one."""
        self._saved = load_checkpoint(self.path, self.fingerprint)
        if self._saved is not None:
            self.timings.update(self._saved["timings"])
            self.earlier_s = self._saved["elapsed_s"]
            epoch = self._saved["epoch"]
            after = f"stage-2 epoch {epoch}" if epoch else "stage 1"
            log.info("resuming %s after %s", self.path, after)
        return self._saved

    def elapsed(self) -> float:
        """Seconds of training, this run's and the runs it resumes."""
        return self.earlier_s + time.perf_counter() - self.started

    def start(self, scores: _FrozenScores, stage1: dict[str, Any]) -> None:
        """Stage 1's record, saved with every checkpoint (a resumed run has no cache)."""
        self._scores, self._stage1 = scores, stage1

    def resume(
        self, run: _Run, saved: dict[str, Any]
    ) -> tuple[_FrozenScores, dict[str, Any], _Best]:
        """Load the saved weights; stage 1's record and the best epoch so far."""
        run.net.load_state_dict(saved["net"])
        if run.metric is not None:
            run.metric.load_state_dict(saved["metric"])
        torch.set_rng_state(saved["torch_rng"])
        self.start(saved["scores"], saved["stage1"])
        return saved["scores"], saved["stage1"], saved["best"]

    def resume_stage2(self, stage2: _Stage2) -> None:
        """Restore the optimiser, the schedule and the sampling after the last saved epoch."""
        self._stage2_started = time.perf_counter()
        self._stage2_before = self.timings.get("stage2_s", 0.0)
        saved = self._saved["stage2"] if self._saved is not None else None
        if saved is None:
            return
        stage2.optimiser.load_state_dict(saved["optimiser"])
        stage2.scheduler.load_state_dict(saved["scheduler"])
        stage2.generator.bit_generator.state = saved["generator"]
        stage2.epoch, stage2.stale, stage2.stopped = (
            saved["epoch"],
            saved["stale"],
            saved["stopped"],
        )

    def save(self, run: _Run, best: _Best, *, epoch: int, stage2: _Stage2 | None = None) -> None:
        if self.path is None:
            return
        timings = dict(self.timings)
        if stage2 is not None:
            timings["stage2_s"] = self._stage2_before + time.perf_counter() - self._stage2_started
        save_checkpoint(
            self.path,
            {
                "fingerprint": self.fingerprint,
                "epoch": epoch,
                "net": run.net.state_dict(),
                "metric": None if run.metric is None else run.metric.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "best": best,
                "scores": self._scores,
                "stage1": self._stage1,
                "stage2": None
                if stage2 is None
                else {
                    "optimiser": stage2.optimiser.state_dict(),
                    "scheduler": stage2.scheduler.state_dict(),
                    "generator": stage2.generator.bit_generator.state,
                    "epoch": stage2.epoch,
                    "stale": stage2.stale,
                    "stopped": stage2.stopped,
                },
                "timings": timings,
                "elapsed_s": self.elapsed(),
            },
        )


@dataclass(frozen=True)
class _Calibration:
    temperature: float
    ece_before: float
    ece_after: float


def _calibrate(net: EmbeddingNet, best: _Validation, val_y: np.ndarray) -> _Calibration:
    """Temperature scaling on the best epoch's validation logits; sets ``net``'s temperature."""
    probs_before = _softmax(best.logits)
    temperature = evaluation.fit_temperature(best.logits, val_y)
    probs_after = _softmax(best.logits / temperature)
    net.set_temperature(temperature)
    return _Calibration(
        temperature,
        evaluation.expected_calibration_error(probs_before, val_y),
        evaluation.expected_calibration_error(probs_after, val_y),
    )


def _check(run: _Run, checks: LabelledImages) -> dict[str, Any]:
    """The final model's accuracy, per-class recall and ECE on ``checks``."""
    classes = run.split.classes
    y = checks.targets(classes)
    if len(checks) == 0 or (y < 0).any():
        raise InvalidInputError(f"the check images need labels among {classes}")
    features = np.concatenate(
        list(run.runner.features(_clean(checks.paths, run.preprocess, run.decode_pool)))
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


def _shop_retrieval(run: _Run, shop: ShopCheck) -> dict[str, Any]:
    """P@10 with the embedding alone: the primary's validation images searched in the shop
    (same class), and held-out shop images searched in the rest of it (same fine label); for the
    shipped embedding and for the backbone's own features."""
    pool, pre = run.decode_pool, run.preprocess
    gallery = np.concatenate(list(run.runner.features(_clean(shop.gallery.paths, pre, pool))))
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


def _choose_embedding(net: EmbeddingNet, best: _Validation) -> tuple[bool, dict[str, float]]:
    """Keep the projection only if it beats the backbone features at validation retrieval (else
    drop it from ``net``); whether it is kept and the shipped embedding's retrieval scores."""
    if best.retrieval_projection is None:
        return False, best.retrieval_backbone
    proj, back = best.retrieval_projection, best.retrieval_backbone
    if (proj["p@10"], proj["map@10"]) > (back["p@10"], back["map@10"]):
        return True, proj
    net.projection = None
    return False, back


def _model_card(
    images: LabelledImages,
    out: str | Path,
    run: _Run,
    *,
    best: _Best,
    frozen: _FrozenScores,
    stage1: dict[str, Any],
    calibration: _Calibration,
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
                **{k: round(v, 4) for k, v in frozen.retrieval.items()},
                "accuracy_logreg_probe": round(frozen.probe_accuracy, 4),
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
            "stage1": stage1,
            "best_epoch": best.epoch,
            "history": best.history,
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


def _clean(
    paths: Sequence[Path], preprocess: Preprocess, pool: ThreadPoolExecutor
) -> Iterator[np.ndarray]:
    for start in range(0, len(paths), 64):
        yield decode_batch(paths[start : start + 64], preprocess, pool)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def _rounded(values: dict[str, float] | None) -> dict[str, float] | None:
    return None if values is None else {k: round(v, 4) for k, v in values.items()}


def _record(epoch: int, result: _Validation, train_loss: float) -> dict[str, Any]:
    return {
        "epoch": epoch,
        "train_loss": None if math.isnan(train_loss) else round(train_loss, 4),
        "val_loss": round(result.loss, 4),
        "val_accuracy": round(result.accuracy, 4),
        "val_p@10": round(result.retrieval_backbone["p@10"], 4),
        "val_p@10_projection": (
            round(result.retrieval_projection["p@10"], 4) if result.retrieval_projection else None
        ),
    }
