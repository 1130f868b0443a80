"""Training the default detector on a CPU in minutes.

The backbone up to stride 16 stays frozen, so its features are computed once per augmented
view (scales, flips, colour jitter) and cached; training then runs only the pyramid head and,
optionally (``tune_tail``), the last backbone blocks (stride 32, cheap at 1/32 resolution).
Targets follow TTFNet: an elliptical Gaussian centre heatmap per class and box distances
regressed with a GIoU loss at every cell of the Gaussian's core. Synthetic street photos of
demo-shop products (``services.demo_shop.compose_outfit``) can be mixed into training.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps

from services.detector.data import CLASSES, LITE_MEAN, LITE_STD, BoxedImage
from services.detector.network import (
    OUTPUT_STRIDE,
    DetectionHead,
    DetectorNet,
    LiteTrunk,
    build_lite_trunk,
)

__all__ = ["TrainConfig", "synthetic_outfits", "train_detector"]

log = logging.getLogger(__name__)

_GAUSSIAN_ALPHA = 0.54
_MIN_VISIBLE = 0.45  # boxes cut by a crop keep their label if this share stays visible
_DEMO_TO_COARSE = {
    "tops": "top",
    "outerwear": "outerwear",
    "dresses": "dress",
    "pants": "bottom",
    "skirts": "bottom",
}


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of :func:`train_detector` (recorded in the model card). The defaults
    are the shipped model's, as are ``lookalike train-detector``'s."""

    canvas: tuple[int, int] = (416, 256)
    """Training canvas (height, width): street photos are portrait."""
    scales: tuple[float, ...] = (1.0, 0.75)
    flips: bool = True
    epochs: int = 12
    batch_size: int = 32
    lr: float = 3e-3
    tail_lr: float = 3e-4
    tune_tail: bool = True
    head_channels: int = 96
    head_layers: int = 2
    weight_decay: float = 1e-4
    box_loss_weight: float = 5.0
    seed: int = 0
    max_minutes: float = 25.0


@dataclass
class _Sample:
    image: Image.Image
    boxes: np.ndarray
    labels: np.ndarray


def synthetic_outfits(count: int, seed: int) -> list[_Sample]:
    """Street-like photos of demo-shop products worn as outfits, with their boxes."""
    from services.demo_shop import DemoCatalog, compose_outfit
    from services.demo_shop.vocabulary import LOWER_BODY, UPPER_BODY

    catalog = DemoCatalog.generate(max(40, count), seed=seed)
    uppers = [p for p in catalog if p.category in UPPER_BODY]
    lowers = [p for p in catalog if p.category in LOWER_BODY]
    rng = random.Random(seed)  # noqa: S311 - augmentation, not secrets
    samples = []
    for index in range(count):
        top, bottom = rng.choice(uppers), rng.choice(lowers)
        width = rng.randint(360, 560)
        photo = compose_outfit(
            top, bottom, (width, round(width * rng.uniform(1.25, 1.6))), seed=index
        )
        boxes, labels = [], []
        for garment in photo.boxes:
            x0, y0, x1, y1 = garment.box
            if x1 > x0 and y1 > y0:
                boxes.append([x0, y0, x1, y1])
                labels.append(CLASSES.index(_DEMO_TO_COARSE[garment.category]))
        image = Image.open(io.BytesIO(photo.jpeg)).convert("RGB")
        samples.append(
            _Sample(
                image,
                np.array(boxes, np.float32).reshape(-1, 4),
                np.array(labels, np.int64),
            )
        )
    return samples


def _augment(
    sample: _Sample, canvas: tuple[int, int], scale: float, flip: bool, rng: random.Random
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One augmented view on the canvas: normalised CHW array, boxes, labels."""
    ch, cw = canvas
    img, boxes = sample.image, sample.boxes.copy()
    if flip:
        img = ImageOps.mirror(img)
        boxes[:, [0, 2]] = img.width - boxes[:, [2, 0]]
    if scale != 1.0 or flip:
        img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.75, 1.25))
        img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.75, 1.25))
        img = ImageEnhance.Color(img).enhance(rng.uniform(0.7, 1.3))
    factor = min(cw / img.width, ch / img.height) * scale
    width, height = max(1, round(img.width * factor)), max(1, round(img.height * factor))
    img = img.resize((width, height), Image.Resampling.BILINEAR)
    boxes *= factor
    # Place (smaller) or crop (larger) at a random offset.
    dx = rng.randint(min(0, cw - width), max(0, cw - width))
    dy = rng.randint(min(0, ch - height), max(0, ch - height))
    out = np.zeros((3, ch, cw), dtype=np.float32)
    pixels = (np.asarray(img, dtype=np.float32).transpose(2, 0, 1) - LITE_MEAN) / LITE_STD
    sx0, sy0 = max(0, -dx), max(0, -dy)
    tx0, ty0 = max(0, dx), max(0, dy)
    w, h = min(width - sx0, cw - tx0), min(height - sy0, ch - ty0)
    out[:, ty0 : ty0 + h, tx0 : tx0 + w] = pixels[:, sy0 : sy0 + h, sx0 : sx0 + w]
    boxes[:, [0, 2]] += dx
    boxes[:, [1, 3]] += dy
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    clipped = boxes.copy()
    clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(0, cw)
    clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(0, ch)
    visible = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    keep = (visible >= _MIN_VISIBLE * np.maximum(area, 1e-6)) & (visible > 4)
    return out, clipped[keep], sample.labels[keep]


def _targets(
    boxes: np.ndarray, labels: np.ndarray, num_classes: int, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian centre heatmap ``(K, h, w)``, box targets ``(4, h, w)``, box weights ``(h, w)``."""
    h, w = shape
    heat = np.zeros((num_classes, h, w), dtype=np.float32)
    box_target = np.zeros((4, h, w), dtype=np.float32)
    weight = np.zeros((h, w), dtype=np.float32)
    ys = (np.arange(h, dtype=np.float32) + 0.5) * OUTPUT_STRIDE
    xs = (np.arange(w, dtype=np.float32) + 0.5) * OUTPUT_STRIDE
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    # Larger boxes first, so a small garment's cells win where boxes overlap.
    for i in np.argsort(-areas):
        x0, y0, x1, y1 = boxes[i]
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        sx = max(_GAUSSIAN_ALPHA * (x1 - x0) / 6, OUTPUT_STRIDE / 2)
        sy = max(_GAUSSIAN_ALPHA * (y1 - y0) / 6, OUTPUT_STRIDE / 2)
        g = np.exp(
            -((xs[None, :] - cx) ** 2) / (2 * sx**2) - ((ys[:, None] - cy) ** 2) / (2 * sy**2)
        ).astype(np.float32)
        peak_y = min(h - 1, int(cy // OUTPUT_STRIDE))
        peak_x = min(w - 1, int(cx // OUTPUT_STRIDE))
        g[peak_y, peak_x] = 1.0
        cls = int(labels[i])
        heat[cls] = np.maximum(heat[cls], g)
        core = g > 0.3
        core[peak_y, peak_x] = True
        if core.sum() == 0:
            continue
        box_weight = g * core
        box_weight *= math.log(max(float(areas[i]), 2.0)) / box_weight.sum()
        box_target[:, core] = np.array([x0, y0, x1, y1], np.float32)[:, None]
        weight[core] = box_weight[core]
    return heat, box_target, weight


class _Cache:
    """Frozen-trunk features and targets of every augmented view, in float16."""

    def __init__(self) -> None:
        self.c3: list[torch.Tensor] = []
        self.c4: list[torch.Tensor] = []
        self.c5: list[torch.Tensor] = []
        self.heat: list[torch.Tensor] = []
        self.box: list[torch.Tensor] = []
        self.weight: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self.c3)

    def stack(self) -> dict[str, torch.Tensor]:
        return {
            "c3": torch.stack(self.c3),
            "c4": torch.stack(self.c4),
            "c5": torch.stack(self.c5) if self.c5 else torch.zeros(0),
            "heat": torch.stack(self.heat),
            "box": torch.stack(self.box),
            "weight": torch.stack(self.weight),
        }


def _views(
    samples: list[_Sample], config: TrainConfig, rng: random.Random
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    flips = (False, True) if config.flips else (False,)
    for sample in samples:
        for scale in config.scales:
            for flip in flips:
                yield _augment(sample, config.canvas, scale, flip, rng)


def _cache_features(
    trunk: LiteTrunk,
    samples: list[_Sample],
    config: TrainConfig,
    progress: Callable[[int], None],
) -> dict[str, torch.Tensor]:
    rng = random.Random(config.seed)  # noqa: S311 - augmentation, not secrets
    cache = _Cache()
    out_shape = (config.canvas[0] // OUTPUT_STRIDE, config.canvas[1] // OUTPUT_STRIDE)
    batch: list[np.ndarray] = []

    def flush() -> None:
        with torch.inference_mode():
            c3, c4 = trunk.forward_body(torch.from_numpy(np.stack(batch)))
            if not config.tune_tail:
                cache.c5.extend(trunk.forward_tail(c4).half())
        cache.c3.extend(c3.half())
        cache.c4.extend(c4.half())
        progress(len(batch))
        batch.clear()

    for array, boxes, labels in _views(samples, config, rng):
        heat, box, weight = _targets(boxes, labels, len(CLASSES), out_shape)
        cache.heat.append(torch.from_numpy(heat).half())
        cache.box.append(torch.from_numpy(box))
        cache.weight.append(torch.from_numpy(weight))
        batch.append(array)
        if len(batch) == 16:
            flush()
    if batch:
        flush()
    return cache.stack()


def _focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss, normalised by the number of centres."""
    pred = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = target >= 0.999
    pos_loss = torch.log(pred) * (1 - pred) ** 2 * pos
    neg_loss = torch.log(1 - pred) * pred**2 * (1 - target) ** 4 * (~pos)
    return -(pos_loss.sum() + neg_loss.sum()) / pos.sum().clamp(min=1)


def _giou_loss(distances: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted ``1 - GIoU`` between predicted and target boxes at weighted cells."""
    mask = weight > 0
    if not mask.any():
        return distances.sum() * 0.0
    n, _, h, w = distances.shape
    ys = (torch.arange(h, dtype=torch.float32) + 0.5) * OUTPUT_STRIDE
    xs = (torch.arange(w, dtype=torch.float32) + 0.5) * OUTPUT_STRIDE
    cy, cx = torch.meshgrid(ys, xs, indexing="ij")
    cx, cy = cx.expand(n, h, w)[mask], cy.expand(n, h, w)[mask]
    d = distances.permute(0, 2, 3, 1)[mask]
    t = target.permute(0, 2, 3, 1)[mask]
    px0, py0, px1, py1 = cx - d[:, 0], cy - d[:, 1], cx + d[:, 2], cy + d[:, 3]
    tx0, ty0, tx1, ty1 = t.unbind(1)
    inter = (torch.min(px1, tx1) - torch.max(px0, tx0)).clamp(min=0) * (
        torch.min(py1, ty1) - torch.max(py0, ty0)
    ).clamp(min=0)
    union = (px1 - px0) * (py1 - py0) + (tx1 - tx0) * (ty1 - ty0) - inter
    iou = inter / union.clamp(min=1e-6)
    hull = (torch.max(px1, tx1) - torch.min(px0, tx0)) * (torch.max(py1, ty1) - torch.min(py0, ty0))
    giou = iou - (hull - union) / hull.clamp(min=1e-6)
    wts = weight[mask]
    return ((1 - giou) * wts).sum() / wts.sum()


def _cache_file(
    cache_dir: Path | None, items: list[BoxedImage], synthetic: int, config: TrainConfig
) -> Path | None:
    if cache_dir is None:
        return None
    key = hashlib.sha256()
    for item in items:
        key.update(
            f"{item.path}:{item.path.stat().st_size}:{item.boxes.tobytes().hex()}\n".encode()
        )
    parts = (synthetic, config.canvas, config.scales, config.flips, config.seed, config.tune_tail)
    key.update(repr(parts).encode())
    return cache_dir / f"detector-features-{key.hexdigest()[:16]}.pt"


def _to_samples(items: list[BoxedImage]) -> list[_Sample]:
    from shared.images import load_image

    return [_Sample(load_image(item.path), item.boxes, item.labels) for item in items]


def train_detector(
    train_items: list[BoxedImage],
    config: TrainConfig,
    *,
    synthetic: int = 0,
    progress: bool = True,
    cache_dir: Path | None = None,
) -> tuple[DetectorNet, dict[str, object]]:
    """Train a detector on ``train_items`` (+ ``synthetic`` demo outfits); return it and stats.

    With ``cache_dir``, the frozen-trunk features are kept there (keyed by the images and the
    augmentation settings), so a second run with other training settings starts at once.
    """
    from tqdm import tqdm

    started = time.monotonic()
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    trunk = build_lite_trunk("imagenet")
    cache_file = _cache_file(cache_dir, train_items, synthetic, config)
    if cache_file is not None and cache_file.is_file():
        cache = torch.load(cache_file, weights_only=True)
        log.info("features from %s", cache_file)
    else:
        samples = _to_samples(train_items) + synthetic_outfits(synthetic, config.seed)
        views = len(samples) * len(config.scales) * (2 if config.flips else 1)
        with tqdm(total=views, desc="caching features", unit="view", disable=not progress) as bar:
            cache = _cache_features(trunk, samples, config, bar.update)
        if cache_file is not None:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            torch.save(cache, cache_file)
    cache_s = time.monotonic() - started
    head = DetectionHead(len(CLASSES), config.head_channels, config.head_layers)
    net = DetectorNet(trunk, head)
    for param in trunk.parameters():
        param.requires_grad_(False)
    groups: list[dict[str, object]] = [{"params": list(head.parameters()), "lr": config.lr}]
    if config.tune_tail:
        tail_params = list(trunk.tail.parameters())
        for param in tail_params:
            param.requires_grad_(True)
        groups.append({"params": tail_params, "lr": config.tail_lr})
    optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    n = cache["c3"].shape[0]
    steps_per_epoch = max(1, n // config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=[g["lr"] for g in groups],  # type: ignore[misc]
        total_steps=total_steps,
        pct_start=0.1,
    )
    generator = torch.Generator().manual_seed(config.seed)
    deadline = started + config.max_minutes * 60 if config.max_minutes > 0 else math.inf
    history: list[dict[str, float]] = []
    epochs_done = 0
    trunk.eval()  # batch-norm statistics of the backbone stay the ImageNet ones
    head.train()
    for epoch in range(config.epochs):
        order = torch.randperm(n, generator=generator)
        totals = {"heatmap": 0.0, "box": 0.0}
        bar = tqdm(
            range(steps_per_epoch),
            desc=f"epoch {epoch + 1}/{config.epochs}",
            unit="batch",
            disable=not progress,
        )
        for step in bar:
            ids = order[step * config.batch_size : (step + 1) * config.batch_size]
            c3 = cache["c3"][ids].float()
            c4 = cache["c4"][ids].float()
            c5 = trunk.forward_tail(c4) if config.tune_tail else cache["c5"][ids].float()
            logits, distances = head(c3, c4, c5)
            heat_loss = _focal_loss(logits, cache["heat"][ids].float())
            box_loss = _giou_loss(distances, cache["box"][ids], cache["weight"][ids])
            loss = heat_loss + config.box_loss_weight * box_loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            totals["heatmap"] += heat_loss.item()
            totals["box"] += box_loss.item()
            bar.set_postfix(heat=f"{heat_loss.item():.3f}", box=f"{box_loss.item():.3f}")
        bar.close()
        epochs_done = epoch + 1
        history.append({k: round(v / steps_per_epoch, 4) for k, v in totals.items()})
        log.info("epoch %d: %s", epochs_done, history[-1])
        if time.monotonic() > deadline:
            log.warning("time budget reached after %d epochs", epochs_done)
            break
    head.eval()
    for param in net.parameters():
        param.requires_grad_(False)
    stats: dict[str, object] = {
        "config": asdict(config),
        "train_images": len(train_items),
        "synthetic_images": synthetic,
        "views": n,
        "epochs_done": epochs_done,
        "feature_cache_s": round(cache_s, 1),
        "train_time_s": round(time.monotonic() - started, 1),
        "loss_history": history,
    }
    return net.eval(), stats
