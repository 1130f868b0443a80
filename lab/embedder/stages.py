"""The two stages: heads on frozen-backbone features (stage 1), then all layers at a lower
rate with early stopping, the time budget and a checkpoint after every epoch (stage 2)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from lab.embedder import evaluation
from lab.embedder.batches import clean_batches
from lab.embedder.config import TrainConfig
from lab.embedder.data import LabelledImages
from lab.embedder.heads import Validation, head_losses, train_heads
from lab.embedder.run import Run, timed
from lab.resume import BestEpoch, ResumableRun

__all__ = [
    "Checkpoints",
    "FrozenScores",
    "Stage1",
    "finetune",
    "fingerprint",
    "frozen_features",
    "run_stage1",
    "snapshot",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrozenScores:
    """The stock backbone's validation scores (for the card)."""

    retrieval: dict[str, float]
    probe_accuracy: float


@dataclass(frozen=True)
class _FrozenFeatures:
    """Stage 1's cache of frozen-backbone features and the stock backbone's scores."""

    train_views: list[np.ndarray]
    val: np.ndarray
    scores: FrozenScores


def frozen_features(run: Run) -> _FrozenFeatures:
    """Features of the clean training images, ``feature_views`` augmented views of each and the
    validation images."""
    split, runner = run.split, run.runner
    clean = clean_batches(split.train_paths, run.preprocess, run.decode_pool)
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
    return _FrozenFeatures(views, val, FrozenScores(retrieval, probe))


Checkpoints = ResumableRun[Validation]
"""The run's checkpoints, its history and its best epoch (scored by :attr:`Validation.score`)."""


@dataclass(frozen=True)
class Stage1:
    """Stage 1's record, saved with every checkpoint (a resumed run has no feature cache)."""

    scores: FrozenScores
    record: dict[str, Any]


def snapshot(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def run_stage1(
    run: Run, checkpoints: Checkpoints, timings: dict[str, float], bar: Callable[..., Any]
) -> Stage1:
    """Features of the frozen backbone, the heads trained on them, the first validation (the
    first best epoch, 0), saved; or, for a resumed run, the saved weights and stage 1's record."""
    if checkpoints.saved is not None:
        saved = checkpoints.saved
        run.net.load_state_dict(saved["net"])
        if run.metric is not None:
            run.metric.load_state_dict(saved["metric"])
        torch.set_rng_state(saved["torch_rng"])
        return Stage1(saved["scores"], saved["stage1"])
    split, net, config = run.split, run.net, run.config
    with timed(timings, "features_s"):
        frozen = frozen_features(run)
    n_views = len(frozen.train_views)
    with timed(timings, "stage1_s"):
        record = train_heads(
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
    result = run.validate()
    checkpoints.best = BestEpoch(0, result.score, result, snapshot(run.net))
    checkpoints.history = [_record(0, result, math.nan)]
    log.info(
        "stage 1: val accuracy %.3f, P@10 %.3f (projection %s)",
        result.accuracy,
        result.retrieval_backbone["p@10"],
        result.retrieval_projection and round(result.retrieval_projection["p@10"], 3),
    )
    stage1 = Stage1(frozen.scores, record)
    _save(checkpoints, run, stage1, timings, epoch=0)
    return stage1


def finetune(
    run: Run,
    checkpoints: Checkpoints,
    stage1: Stage1,
    timings: dict[str, float],
    bar: Callable[..., Any],
) -> None:
    """Stage 2: all layers at a lower rate, validated after each epoch, with early stopping and
    the time budget; updates ``checkpoints.best`` and ends with its weights loaded. Each epoch is
    saved, and a resumed run goes on after the last saved one."""
    config, net, best = run.config, run.net, checkpoints.best
    assert best is not None, "stage 1 gives the first best epoch"
    if run.device.type == "cpu":
        net.to(memory_format=torch.channels_last)
    optimiser, scheduler, steps = _finetune_optimiser(run)
    generator = np.random.default_rng([config.seed, 1])
    progress = _Stage2(optimiser, scheduler, generator, started=time.perf_counter())
    progress.before_s = timings.get("stage2_s", 0.0)
    progress.restore(checkpoints.saved)
    stale = progress.stale
    epoch_seconds: float | None = None
    last = progress.epoch if progress.stopped else config.finetune_epochs
    for epoch in range(progress.epoch + 1, last + 1):
        if epoch_seconds is not None and checkpoints.out_of_time(epoch_seconds):
            log.info("stage 2: time budget reached before epoch %d", epoch)
            break
        epoch_start = time.perf_counter()
        order = run.split.draw(generator, config.epoch_images)
        losses = _finetune_epoch(run, optimiser, scheduler, steps, order, epoch, bar)
        run.runner.invalidate()
        result = run.validate()
        checkpoints.history.append(_record(epoch, result, float(np.mean(losses))))
        log.info(
            "stage 2 epoch %d: loss %.3f, val accuracy %.3f, P@10 %.3f (projection %s)",
            epoch,
            np.mean(losses),
            result.accuracy,
            result.retrieval_backbone["p@10"],
            result.retrieval_projection and round(result.retrieval_projection["p@10"], 3),
        )
        epoch_seconds = time.perf_counter() - epoch_start
        if best.offer(epoch, result.score, result, lambda: snapshot(net)):
            stale = 0
        else:
            stale += 1
        # The one-cycle rate is high early on: judge only the second half.
        stop = stale >= config.patience and epoch > config.finetune_epochs // 2
        progress.epoch, progress.stale, progress.stopped = epoch, stale, stop
        _save(checkpoints, run, stage1, timings, epoch=epoch, stage2=progress)
        if stop:
            log.info("stage 2: early stop after epoch %d", epoch)
            break
    assert best.state is not None
    net.load_state_dict(best.state)
    net.to(memory_format=torch.contiguous_format)


def _finetune_optimiser(
    run: Run,
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


def _finetune_epoch(
    run: Run,
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
            loss, _ = head_losses(
                net, run.metric, net.backbone(x), y, run.config.label_smoothing, fine
            )
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


@dataclass
class _Stage2:
    """Stage 2's state between epochs: what a resumed run needs to go on as if never stopped."""

    optimiser: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.OneCycleLR
    generator: np.random.Generator
    started: float
    before_s: float = 0.0
    """Stage 2's seconds in the runs this one resumes."""
    epoch: int = 0
    stale: int = 0
    stopped: bool = False
    """Early stopping ended stage 2 after ``epoch``."""

    def restore(self, saved: dict[str, Any] | None) -> None:
        """The optimiser, the schedule and the sampling after the last saved epoch."""
        state = None if saved is None else saved["stage2"]
        if state is None:
            return
        self.optimiser.load_state_dict(state["optimiser"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.bit_generator.state = state["generator"]
        self.epoch, self.stale, self.stopped = state["epoch"], state["stale"], state["stopped"]

    def state(self) -> dict[str, Any]:
        return {
            "optimiser": self.optimiser.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "generator": self.generator.bit_generator.state,
            "epoch": self.epoch,
            "stale": self.stale,
            "stopped": self.stopped,
        }


def fingerprint(images: LabelledImages, config: TrainConfig) -> dict[str, Any]:
    """What a checkpoint must share with the run that resumes it: the data and every setting
    that shapes the weights (not the time budget, the device or the name)."""
    settings = asdict(config)
    for key in ("max_minutes", "device", "workers", "name"):
        settings.pop(key)
    return {"data": images.fingerprint(), "config": settings}


def _save(
    checkpoints: Checkpoints,
    run: Run,
    stage1: Stage1,
    timings: dict[str, float],
    *,
    epoch: int,
    stage2: _Stage2 | None = None,
) -> None:
    """Checkpoint the run after stage 1 (``epoch`` 0) or after a stage-2 epoch."""
    if checkpoints.path is None:
        return
    saved_timings = dict(timings)
    if stage2 is not None:
        saved_timings["stage2_s"] = stage2.before_s + time.perf_counter() - stage2.started
    checkpoints.save(
        epoch,
        net=run.net.state_dict(),
        metric=None if run.metric is None else run.metric.state_dict(),
        torch_rng=torch.get_rng_state(),
        scores=stage1.scores,
        stage1=stage1.record,
        stage2=None if stage2 is None else stage2.state(),
        timings=saved_timings,
    )


def _record(epoch: int, result: Validation, train_loss: float) -> dict[str, Any]:
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
