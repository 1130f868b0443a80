"""The network behind every embedder: a backbone, an optional metric-learning projection and
an optional (calibrated) classifier head."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from services.modellab.models import Backbone
from shared.errors import InvalidInputError

__all__ = ["EmbeddingNet", "resolve_device"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else the CPU."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise InvalidInputError(f"unknown device {device!r}") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError("device cuda was asked for but CUDA is not available")
    return resolved


class EmbeddingNet(nn.Module):
    """``images -> (embedding, logits)``.

    The embedding is L2-normalised: the projection's output when there is one (a metric head),
    else the backbone's pooled features. Logits come from a linear classifier on the backbone
    features, divided by the calibration temperature; ``None`` without a classifier.
    """

    def __init__(
        self,
        backbone: Backbone,
        n_classes: int = 0,
        projection_dim: int = 0,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.projection = nn.Linear(backbone.dim, projection_dim) if projection_dim else None
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(backbone.dim, n_classes) if n_classes else None
        self.temperature: torch.Tensor
        self.register_buffer("temperature", torch.ones(()))

    @property
    def embedding_dim(self) -> int:
        return self.projection.out_features if self.projection is not None else self.backbone.dim

    @property
    def n_classes(self) -> int:
        return self.classifier.out_features if self.classifier is not None else 0

    def set_temperature(self, value: float) -> None:
        """Set the calibration temperature (logits are divided by it)."""
        if not value > 0:
            raise InvalidInputError(f"temperature must be positive, got {value}")
        self.temperature.fill_(float(value))

    def heads(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Embedding and calibrated logits from backbone features."""
        raw = self.projection(features) if self.projection is not None else features
        embedding = F.normalize(raw, dim=1)
        if self.classifier is None:
            return embedding, None
        return embedding, self.classifier(self.dropout(features)) / self.temperature

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.heads(self.backbone(x))
