"""What a fine-tuning run is asked to do (:class:`TrainConfig`) and what it gives."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.embedder.artifact import ModelCard
from services.modellab.models.preprocess import Fit

__all__ = ["TrainConfig", "TrainResult"]


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
