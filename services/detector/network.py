"""The trained detector: an anchor-free (CenterNet/TTFNet-style) head on EfficientNet-Lite.

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
    "BACKBONES",
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
BACKBONES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
"""Trunks a detector can be built on (the EfficientNet-Lite sizes with offline weights)."""
LITE0_CHANNELS = (40, 112, 320)
TUNE_CHOICES = ("head", "tail", "stride16")
"""What a detector trains besides its head: nothing, the stride-32 blocks, or also the
stride-16 blocks."""
_MAX_LOG_DISTANCE = 7.0


class LiteTrunk(nn.Module):
    """EfficientNet-Lite blocks split in two: ``body`` (stem..C4) and ``tail`` (C4..C5).

    ``c3_block`` and ``c4_block`` index the last block at stride 8 and 16 (4 and 10 in Lite0;
    the deeper Lite1/2 have more), ``channels`` the widths of C3, C4 and C5."""

    def __init__(self, net: Any) -> None:
        super().__init__()
        self.stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)
        self.c3_block, self.c4_block, self.channels = _stage_ends(self.stem, net._blocks)
        self.body = nn.ModuleList(net._blocks[: self.c4_block + 1])
        self.tail = nn.ModuleList(net._blocks[self.c4_block + 1 :])

    def forward_c3(self, x: torch.Tensor) -> torch.Tensor:
        """Stem and the blocks up to stride 8."""
        x = self.stem(x)
        for block in self.body[: self.c3_block + 1]:
            x = block(x)
        return x

    def forward_mid(self, c3: torch.Tensor) -> torch.Tensor:
        """The stride-16 blocks (trained when a detector tunes from stride 16)."""
        x = c3
        for block in self.body[self.c3_block + 1 :]:
            x = block(x)
        return x

    def mid_blocks(self) -> list[int]:
        """Indices (in ``body``) of the stride-16 blocks."""
        return list(range(self.c3_block + 1, self.c4_block + 1))

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


def _stage_ends(
    stem: nn.Module, blocks: Any, size: int = 64
) -> tuple[int, int, tuple[int, int, int]]:
    """The last block at stride 8 and at stride 16, and the C3/C4/C5 widths, found by running
    a small dummy image through the network (the block layout differs per Lite size)."""
    last: dict[int, tuple[int, int]] = {}
    with torch.no_grad():
        x = stem(torch.zeros(1, 3, size, size))
        for i, block in enumerate(blocks):
            x = block(x)
            last[size // x.shape[-1]] = (i, x.shape[1])
    (c3, w3), (c4, w4), (_, w5) = last[8], last[16], last[32]
    return c3, c4, (w3, w4, w5)


def tuned_prefixes(tune: str, trunk: LiteTrunk) -> tuple[str, ...]:
    """State-dict prefixes of what ``tune`` trains (and a model directory ships)."""
    if tune not in TUNE_CHOICES:
        raise ValueError(f"tune is one of {TUNE_CHOICES}, not {tune!r}")
    prefixes = ["head."]
    if tune in ("tail", "stride16"):
        prefixes.append("trunk.tail.")
    if tune == "stride16":
        prefixes += [f"trunk.body.{i}." for i in trunk.mid_blocks()]
    return tuple(prefixes)


def peaks(logits: torch.Tensor) -> torch.Tensor:
    """Centre probabilities kept only at their 3x3 local maxima (a max-pool "NMS"), so
    decoding is a plain threshold."""
    heat = torch.sigmoid(logits)
    top = F.max_pool2d(heat, 3, stride=1, padding=1)
    return heat * (top == heat).to(heat.dtype)


def build_lite_trunk(weights: str = "imagenet", backbone: str = "efficientnet_lite0") -> LiteTrunk:
    """An EfficientNet-Lite from the backbone registry (offline ImageNet weights by default).

    Built for 224 px, a multiple of :data:`STRIDE_MULTIPLE`, whatever the size's own input."""
    from services.modellab.models import create_backbone

    if backbone not in BACKBONES:
        raise ValueError(f"a detector trunk is one of {', '.join(BACKBONES)}, not {backbone!r}")
    model = create_backbone(backbone, weights=weights, input_size=7 * STRIDE_MULTIPLE)
    trunk = LiteTrunk(model.features.net)
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
