"""The backbone registry: names -> constructors, each with its own preprocessing (like timm).

>>> backbone = create_backbone("efficientnet_lite0")          # offline ImageNet weights
>>> backbone = create_backbone("resnet50", weights="random")  # tests, speed figures
>>> backbone = create_backbone("vgg16", weights="/models/vgg16-397923af.pth")

A :class:`Backbone` maps a normalised ``(N, 3, S, S)`` batch to pooled ``(N, dim)`` features;
``imagenet_logits`` gives the original ImageNet classifier's logits when the weights have one.
Nothing is built or loaded at import time.
"""

from __future__ import annotations

import os
import pickle
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import torch
from torch import nn

from services.modellab.models.preprocess import Preprocess
from shared.errors import ConfigurationError, InvalidInputError, NotFoundError

__all__ = [
    "Backbone",
    "BackboneSpec",
    "Weights",
    "available_backbones",
    "backbone_spec",
    "create_backbone",
    "load_state_dict",
    "register_backbone",
]

Weights: TypeAlias = str | os.PathLike[str]
"""``"imagenet"`` (offline pretrained weights), ``"random"``, or a path to a state dict."""

Builder: TypeAlias = Callable[["Weights", int], "Backbone"]


class Backbone(nn.Module):
    """Pooled features of a CNN, with its preprocessing config and optional ImageNet head."""

    def __init__(
        self,
        name: str,
        features: nn.Module,
        dim: int,
        preprocess: Preprocess,
        imagenet_head: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self.features = features
        self.dim = dim
        self.preprocess = preprocess
        self.imagenet_head = imagenet_head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, S, S)`` normalised images -> ``(N, dim)`` features (not normalised)."""
        return self.features(x)

    def imagenet_logits(self, features: torch.Tensor) -> torch.Tensor:
        """ImageNet-1k logits from :meth:`forward`'s features (pretrained weights only)."""
        if self.imagenet_head is None:
            raise InvalidInputError(f"backbone {self.name} has no ImageNet classifier")
        return self.imagenet_head(features)

    def drop_imagenet_head(self) -> None:
        """Forget the ImageNet classifier (fine-tuned models do not need it)."""
        self.imagenet_head = None


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    dim: int
    preprocess: Preprocess
    builder: Builder
    description: str


_REGISTRY: dict[str, BackboneSpec] = {}
_LOCK = threading.Lock()


def register_backbone(
    name: str, *, dim: int, preprocess: Preprocess, description: str
) -> Callable[[Builder], Builder]:
    """Register ``builder(weights, input_size) -> Backbone`` under ``name``."""

    def register(builder: Builder) -> Builder:
        with _LOCK:
            if name in _REGISTRY:
                raise ValueError(f"backbone {name!r} is already registered")
            _REGISTRY[name] = BackboneSpec(name, dim, preprocess, builder, description)
        return builder

    return register


def available_backbones() -> list[str]:
    """Registered backbone names, sorted."""
    return sorted(_REGISTRY)


def backbone_spec(name: str) -> BackboneSpec:
    """The registry entry for ``name``; an unknown name raises :class:`InvalidInputError`."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InvalidInputError(
            f"unknown backbone {name!r}; available: {', '.join(available_backbones())}"
        ) from None


def create_backbone(
    name: str, weights: Weights = "imagenet", *, input_size: int | None = None
) -> Backbone:
    """Build backbone ``name`` in eval mode.

    ``weights`` is ``"imagenet"`` (offline pretrained weights; for torchvision models from the
    torch cache), ``"random"`` or a path to a state dict in the original model's layout.
    ``input_size`` overrides the resolution (the resize keeps the entry's crop fraction).
    """
    spec = backbone_spec(name)
    size = spec.preprocess.input_size if input_size is None else int(input_size)
    if size < 32:
        raise InvalidInputError(f"input_size must be at least 32 pixels, got {size}")
    if isinstance(weights, str) and weights not in ("imagenet", "random"):
        weights = Path(weights)
    backbone = spec.builder(weights, size)
    return backbone.eval()


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Load a tensor-only state dict on the CPU (no pickled code is executed)."""
    if not path.is_file():
        raise NotFoundError(f"weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise ConfigurationError(f"cannot read weights file {path}: {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ConfigurationError(f"weights file {path} does not hold a state dict")
    return state


def load_into(
    model: nn.Module, state: dict[str, torch.Tensor], source: str, *, head_prefix: str
) -> bool:
    """Load ``state`` into ``model``; only the classifier (``head_prefix``) may be missing.

    Returns whether the classifier was loaded. Key or shape mismatches raise a clear error.
    """
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ConfigurationError(f"weights from {source} do not fit this model: {first}") from exc
    body_missing = [key for key in missing if not key.startswith(head_prefix)]
    if body_missing or unexpected:
        raise ConfigurationError(
            f"weights from {source} do not fit this model: missing {body_missing[:3]}, "
            f"unexpected {list(unexpected)[:3]}"
        )
    return not missing
