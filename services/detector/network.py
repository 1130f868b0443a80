"""The trained detector: an anchor-free (CenterNet/TTFNet-style) head on EfficientNet-Lite0.

The backbone gives three feature maps (stride 8, 16 and 32); a small top-down pyramid merges
them at stride 8, and a shared tower of depthwise-separable 3x3 convs feeds two 1x1 outputs: a
per-class centre heatmap and the distances from each cell centre to the four box edges (in
input pixels). Decoding keeps local heatmap maxima, so no anchors and no learned NMS.

Inputs are any size that is a multiple of :data:`STRIDE_MULTIPLE`: the backbone's static
"same" padding is then identical to its 224 px build.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "C3_BLOCK",
    "C4_BLOCK",
    "OUTPUT_STRIDE",
    "STRIDE_MULTIPLE",
    "TUNE_CHOICES",
    "DetectionHead",
    "DetectorNet",
    "LiteTrunk",
    "build_lite_trunk",
    "peaks",
    "tuned_prefixes",
]

OUTPUT_STRIDE = 8
STRIDE_MULTIPLE = 32
C3_BLOCK = 4
"""Last block at stride 8 (40 channels) in EfficientNet-Lite0."""
C4_BLOCK = 10
"""Last block at stride 16 (112 channels); blocks after it form the tunable tail."""
LITE0_CHANNELS = (40, 112, 320)
TUNE_CHOICES = ("head", "tail", "stride16")
"""What a detector trains besides its head: nothing, the stride-32 blocks, or also the
stride-16 blocks."""
_MAX_LOG_DISTANCE = 7.0


class LiteTrunk(nn.Module):
    """EfficientNet-Lite blocks split in two: ``body`` (stem..C4) and ``tail`` (C4..C5)."""

    def __init__(self, net: Any) -> None:
        super().__init__()
        self.stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)
        self.body = nn.ModuleList(net._blocks[: C4_BLOCK + 1])
        self.tail = nn.ModuleList(net._blocks[C4_BLOCK + 1 :])

    def forward_c3(self, x: torch.Tensor) -> torch.Tensor:
        """Stem and the blocks up to stride 8."""
        x = self.stem(x)
        for block in self.body[: C3_BLOCK + 1]:
            x = block(x)
        return x

    def forward_mid(self, c3: torch.Tensor) -> torch.Tensor:
        """The stride-16 blocks (trained when a detector tunes from stride 16)."""
        x = c3
        for block in self.body[C3_BLOCK + 1 :]:
            x = block(x)
        return x

    def forward_body(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c3 = self.forward_c3(x)
        return c3, self.forward_mid(c3)

    def forward_tail(self, c4: torch.Tensor) -> torch.Tensor:
        x = c4
        for block in self.tail:
            x = block(x)
        return x

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c3, c4 = self.forward_body(x)
        return c3, c4, self.forward_tail(c4)


def tuned_prefixes(tune: str) -> tuple[str, ...]:
    """State-dict prefixes of what ``tune`` trains (and a model directory ships)."""
    if tune not in TUNE_CHOICES:
        raise ValueError(f"tune is one of {TUNE_CHOICES}, not {tune!r}")
    prefixes = ["head."]
    if tune in ("tail", "stride16"):
        prefixes.append("trunk.tail.")
    if tune == "stride16":
        prefixes += [f"trunk.body.{i}." for i in range(C3_BLOCK + 1, C4_BLOCK + 1)]
    return tuple(prefixes)


def peaks(logits: torch.Tensor) -> torch.Tensor:
    """Centre probabilities kept only at their 3x3 local maxima (a max-pool "NMS"), so
    decoding is a plain threshold."""
    heat = torch.sigmoid(logits)
    top = F.max_pool2d(heat, 3, stride=1, padding=1)
    return heat * (top == heat).to(heat.dtype)


def build_lite_trunk(weights: str = "imagenet") -> LiteTrunk:
    """EfficientNet-Lite0 from the backbone registry (offline ImageNet weights by default)."""
    from services.modellab.models import create_backbone

    backbone = create_backbone("efficientnet_lite0", weights=weights)
    trunk = LiteTrunk(backbone.features.net)
    return trunk.eval()


def _separable(channels: int) -> nn.Sequential:
    """Depthwise 3x3 + pointwise 1x1, each with batch norm and ReLU (cheap on a CPU)."""
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(channels, channels, 1, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(inplace=True),
    )


class DetectionHead(nn.Module):
    """Pyramid + centre heatmap + box distances from ``(c3, c4, c5)`` backbone features."""

    def __init__(
        self,
        num_classes: int,
        channels: int = 64,
        layers: int = 1,
        in_channels: tuple[int, ...] = LITE0_CHANNELS,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.lateral3 = nn.Conv2d(in_channels[0], channels, 1)
        self.lateral4 = nn.Conv2d(in_channels[1], channels, 1)
        self.lateral5 = nn.Conv2d(in_channels[2], channels, 1)
        self.smooth4 = _separable(channels)
        self.smooth3 = _separable(channels)
        self.tower = (
            _separable(channels)
            if layers == 1
            else nn.Sequential(*(_separable(channels) for _ in range(layers)))
        )
        self.heatmap = nn.Conv2d(channels, num_classes, 1)
        self.distances = nn.Conv2d(channels, 4, 1)
        with torch.no_grad():
            self.heatmap.bias.fill_(-2.19)  # type: ignore[union-attr]  # prior 0.1 (CenterNet)
            self.distances.weight.normal_(std=0.01)
            self.distances.bias.fill_(1.5)  # type: ignore[union-attr]

    def forward(
        self, c3: torch.Tensor, c4: torch.Tensor, c5: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Heatmap logits ``(N, K, H/8, W/8)`` and box distances ``(N, 4, H/8, W/8)`` in pixels."""
        p5 = self.lateral5(c5)
        p4 = self.smooth4(self.lateral4(c4) + F.interpolate(p5, size=c4.shape[-2:], mode="nearest"))
        p3 = self.smooth3(self.lateral3(c3) + F.interpolate(p4, size=c3.shape[-2:], mode="nearest"))
        x = self.tower(p3)
        log_distance = self.distances(x).clamp(max=_MAX_LOG_DISTANCE)
        return self.heatmap(x), torch.exp(log_distance) * OUTPUT_STRIDE


class DetectorNet(nn.Module):
    """Normalised ``(N, 3, H, W)`` images -> centre probabilities and box distances."""

    def __init__(self, trunk: LiteTrunk, head: DetectionHead) -> None:
        super().__init__()
        self.trunk = trunk
        self.head = head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, distances = self.head(*self.trunk(x))
        return peaks(logits), distances
