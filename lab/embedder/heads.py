"""The heads trained on top of the backbone (classifier, projection, metric proxies), stage 1's
loop over cached features, and validation."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lab.embedder import evaluation
from lab.embedder.batches import FeatureRunner
from lab.embedder.config import TrainConfig
from services.embedder.network import EmbeddingNet
from services.modellab.models import backbone_spec, create_backbone

__all__ = ["MetricHead", "Validation", "build_network", "head_losses", "train_heads", "validate"]


class MetricHead(nn.Module):
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


def head_losses(
    net: EmbeddingNet,
    metric: MetricHead | None,
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


def train_heads(
    net: EmbeddingNet,
    metric: MetricHead | None,
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
            loss, _ = head_losses(
                net, metric, x_train[idx], y_train[idx], config.label_smoothing, fine
            )
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


@dataclass
class Validation:
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


def validate(
    net: EmbeddingNet,
    runner: FeatureRunner,
    val_batches: Callable[[], Iterator[np.ndarray]],
    val_y: np.ndarray,
    labels: Sequence[str],
) -> Validation:
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
    return Validation(loss, accuracy, backbone_retrieval, projection_retrieval, logits)


def build_network(
    config: TrainConfig, n_classes: int, device: torch.device, n_fine: int = 0
) -> tuple[EmbeddingNet, MetricHead | None, int]:
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
        MetricHead(config.projection_dim, n_classes, config.metric_scale, n_fine).to(device)
        if config.projection_dim
        else None
    )
    return net, metric, size
