"""Model artifacts: a directory with fp16 weights and a JSON model card.

```
MODEL_DIR/
  model.json    the card: backbone, classes, preprocessing, temperature, validation metrics,
                data fingerprint, training config and time, version
  weights.pt    state dict of the EmbeddingNet (float16, tensors only); when fine-tuning kept
                the backbone's ImageNet weights (``backbone_weights: imagenet``), only the heads
```
The version is content-addressed (``<name>-<sha256 of weights.pt>[:10]``), so every stored
vector can name exactly the model that made it.
"""

from __future__ import annotations

import os
import pickle
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, Field

from services.embedder.network import EmbeddingNet
from services.modellab.artifact import (
    WEIGHTS_FILE,
    is_model_dir,
    read_card,
    write_artifact,
)
from services.modellab.models import Preprocess, create_backbone
from shared.errors import ConfigurationError, NotFoundError

__all__ = [
    "SHIPPED_DIR",
    "ModelCard",
    "find_model_dir",
    "load_card",
    "load_model",
    "save_model",
    "shipped_models",
]

FORMAT_VERSION = 1


class ModelCard(BaseModel):
    """What a trained model is, how it was made and how good it is on its validation split."""

    format_version: int = FORMAT_VERSION
    name: str
    version: str = ""
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    backbone: str
    input_size: int
    preprocess: dict[str, Any]
    embedding_dim: int
    embedding_source: Literal["backbone", "projection"]
    projection_dim: int = 0
    classes: list[str]
    temperature: float = 1.0
    label_column: str | None = None
    backbone_weights: Literal["included", "imagenet"] = "included"
    weights_file: str = WEIGHTS_FILE
    weights_dtype: str = "float16"
    weights_bytes: int = 0
    data: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict)
    notes: str = ""

    def preprocess_config(self) -> Preprocess:
        return Preprocess.from_dict(self.preprocess)


SHIPPED_DIR = Path(__file__).parent / "artifacts"
"""Small fine-tuned models that ship with the code, one directory per name."""


def shipped_models() -> list[str]:
    """Names of the models in ``services/embedder/artifacts/``."""
    if not SHIPPED_DIR.is_dir():
        return []
    return sorted(p.name for p in SHIPPED_DIR.iterdir() if is_model_dir(p))


def find_model_dir(model: str | os.PathLike[str]) -> Path | None:
    """A model directory for ``model``: a path to one, or the name of a shipped model."""
    if is_model_dir(model):
        return Path(model)
    shipped = SHIPPED_DIR / str(model)
    if "/" not in str(model) and is_model_dir(shipped):
        return shipped
    return None


def load_card(path: str | Path) -> ModelCard:
    """Read and validate ``PATH/model.json``."""
    return read_card(path, ModelCard, kind="model", max_version=FORMAT_VERSION)


def save_model(net: EmbeddingNet, card: ModelCard, out: str | Path) -> ModelCard:
    """Write weights (float16) and the card; return the card with version and size filled in."""
    skip = "backbone." if card.backbone_weights == "imagenet" else "backbone.imagenet_head."
    state = {k: v for k, v in net.state_dict().items() if not k.startswith(skip)}
    return write_artifact(state, card, out, temperature=float(net.temperature.item()))


def build_net(card: ModelCard) -> EmbeddingNet:
    """An untrained network with the card's architecture."""
    weights = "imagenet" if card.backbone_weights == "imagenet" else "random"
    backbone = create_backbone(card.backbone, weights=weights, input_size=card.input_size)
    backbone.drop_imagenet_head()
    backbone.preprocess = card.preprocess_config()
    return EmbeddingNet(backbone, len(card.classes), card.projection_dim)


def load_model(
    path: str | Path, device: torch.device | None = None
) -> tuple[EmbeddingNet, ModelCard]:
    """Load a model directory as a float32 network in eval mode (on ``device``, default CPU)."""
    card = load_card(path)
    net = build_net(card)
    weights_path = Path(path) / card.weights_file
    if not weights_path.is_file():
        raise NotFoundError(f"model at {path} has no weights file {card.weights_file}")
    try:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise ConfigurationError(f"cannot read {weights_path}: {exc}") from exc
    floats = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        missing, unexpected = net.load_state_dict(floats, strict=False)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ConfigurationError(f"{weights_path} does not match its card: {first}") from exc
    from_imagenet = card.backbone_weights == "imagenet"
    if unexpected or any(not (from_imagenet and k.startswith("backbone.")) for k in missing):
        raise ConfigurationError(
            f"{weights_path} does not match its card: missing {list(missing)[:3]}, "
            f"unexpected {list(unexpected)[:3]}"
        )
    return net.to(device or torch.device("cpu")).eval(), card
