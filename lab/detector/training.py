"""Training the default detector on a CPU.

The backbone's early blocks stay frozen, so their features are computed once per augmented
view (scales, flips, aspect stretch, colour jitter) and cached; training then runs the pyramid
head and what ``tune`` names: the stride-32 blocks (``tail``, cheap at 1/32 resolution) or the
stride-16 blocks too (``stride16``). Targets follow TTFNet: an elliptical Gaussian centre
heatmap per class and box distances regressed with a GIoU loss at every cell of the Gaussian's
core. Synthetic street photos of demo-shop products (``services.demo_shop.compose_outfit``) and
street photos with catalog products pasted in (``lab.detector.pasting``) can be mixed in.

With held-out photos, every epoch is scored on them (mAP@0.5 over the target categories) and
the best epoch is what comes back; with a checkpoint file, an interrupted run resumes at the
epoch after the last one finished.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps

from lab.detector.data import CLASSES, BoxedImage, Sample
from lab.detector.pasting import Cutout, paste_photos
from lab.resume import BestEpoch, ResumableRun
from services.detector.inference import LITE_MEAN, LITE_STD, letterbox
from services.detector.network import (
    BACKBONES,
    OUTPUT_STRIDE,
    TUNE_CHOICES,
    DetectionHead,
    DetectorNet,
    LiteTrunk,
    build_lite_trunk,
    peaks,
    tuned_prefixes,
)
from shared.errors import InvalidInputError

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
    jitter_views: int = 0
    """Extra views of each photo at a random scale (0.55-1.3), aspect stretch (0.8-1.25),
    offset and flip, on top of ``scales`` x ``flips``."""
    paste: int = 0
    """Street photos with catalog cutouts pasted in, added to training (needs cutouts)."""
    epochs: int = 12
    batch_size: int = 32
    lr: float = 3e-3
    tail_lr: float = 3e-4
    tune: str = "tail"
    """``head``, ``tail`` (stride-32 blocks) or ``stride16`` (stride-16 and -32 blocks)."""
    head_channels: int = 96
    head_layers: int = 2
    weight_decay: float = 1e-4
    box_loss_weight: float = 5.0
    seed: int = 0
    backbone: str = "efficientnet_lite0"
    """The trunk (``network.BACKBONES``)."""
    max_minutes: float = 25.0
    stop_after: int = 0
    """Run only the first ``stop_after`` epochs of the ``epochs``-epoch schedule (0: all). The
    epoch a split chose, repeated on all photos with no split to choose by."""

    def __post_init__(self) -> None:
        if self.tune not in TUNE_CHOICES:
            raise InvalidInputError(f"tune is one of {', '.join(TUNE_CHOICES)}, not {self.tune!r}")
        if self.backbone not in BACKBONES:
            raise InvalidInputError(
                f"backbone is one of {', '.join(BACKBONES)}, not {self.backbone!r}"
            )
        if self.jitter_views < 0 or self.paste < 0:
            raise InvalidInputError("jitter_views and paste count images: not negative")
        if not 0 <= self.stop_after <= self.epochs:
            raise InvalidInputError(
                f"stop_after is an epoch of the schedule (1-{self.epochs}) or 0, "
                f"not {self.stop_after}"
            )


def synthetic_outfits(count: int, seed: int) -> list[Sample]:
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
            Sample(
                image,
                np.array(boxes, np.float32).reshape(-1, 4),
                np.array(labels, np.int64),
            )
        )
    return samples


def _augment(
    sample: Sample,
    canvas: tuple[int, int],
    scale: float,
    flip: bool,
    rng: random.Random,
    stretch: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One augmented view on the canvas: normalised CHW array, boxes, labels. ``stretch``
    widens (> 1) or narrows the photo relative to its height."""
    ch, cw = canvas
    img, boxes = sample.image, sample.boxes.copy()
    if flip:
        img = ImageOps.mirror(img)
        boxes[:, [0, 2]] = img.width - boxes[:, [2, 0]]
    if scale != 1.0 or flip or stretch != 1.0:
        img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.75, 1.25))
        img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.75, 1.25))
        img = ImageEnhance.Color(img).enhance(rng.uniform(0.7, 1.3))
    factor = min(cw / (img.width * math.sqrt(stretch)), ch / (img.height / math.sqrt(stretch)))
    factor *= scale
    sx, sy = factor * math.sqrt(stretch), factor / math.sqrt(stretch)
    width, height = max(1, round(img.width * sx)), max(1, round(img.height * sy))
    img = img.resize((width, height), Image.Resampling.BILINEAR)
    boxes[:, [0, 2]] *= sx
    boxes[:, [1, 3]] *= sy
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


_FEATURES = {"head": ("c3", "c4", "c5"), "tail": ("c3", "c4"), "stride16": ("c3",)}
"""The frozen backbone outputs each way of tuning needs (cached once per view)."""


def _frozen_features(trunk: LiteTrunk, images: torch.Tensor, tune: str) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        out = {"c3": trunk.forward_c3(images)}
        if tune != "stride16":
            out["c4"] = trunk.forward_mid(out["c3"])
        if tune == "head":
            out["c5"] = trunk.forward_tail(out["c4"])
    return out


def _forward(
    trunk: LiteTrunk, head: DetectionHead, features: dict[str, torch.Tensor], tune: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Heatmap logits and distances from cached frozen features, through what is trained."""
    c3 = features["c3"].float()
    c4 = trunk.forward_mid(c3) if tune == "stride16" else features["c4"].float()
    c5 = features["c5"].float() if tune == "head" else trunk.forward_tail(c4)
    return head(c3, c4, c5)


def _views(
    samples: list[Sample], config: TrainConfig, rng: random.Random
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    flips = (False, True) if config.flips else (False,)
    for sample in samples:
        for scale in config.scales:
            for flip in flips:
                yield _augment(sample, config.canvas, scale, flip, rng)
        for _ in range(config.jitter_views):
            scale = rng.uniform(0.55, 1.3)
            stretch = math.exp(rng.uniform(math.log(0.8), math.log(1.25)))
            yield _augment(sample, config.canvas, scale, rng.random() < 0.5, rng, stretch)


def _cache_features(
    trunk: LiteTrunk,
    samples: list[Sample],
    config: TrainConfig,
    progress: Callable[[int], None],
) -> dict[str, torch.Tensor]:
    """Frozen features (float16) and targets of every augmented view."""
    rng = random.Random(config.seed)  # noqa: S311 - augmentation, not secrets
    cache: dict[str, list[torch.Tensor]] = {
        k: [] for k in (*_FEATURES[config.tune], "heat", "box", "weight")
    }
    out_shape = (config.canvas[0] // OUTPUT_STRIDE, config.canvas[1] // OUTPUT_STRIDE)
    batch: list[np.ndarray] = []

    def flush() -> None:
        for name, value in _frozen_features(
            trunk, torch.from_numpy(np.stack(batch)), config.tune
        ).items():
            cache[name].extend(value.half())
        progress(len(batch))
        batch.clear()

    for array, boxes, labels in _views(samples, config, rng):
        heat, box, weight = _targets(boxes, labels, len(CLASSES), out_shape)
        cache["heat"].append(torch.from_numpy(heat).half())
        cache["box"].append(torch.from_numpy(box))
        cache["weight"].append(torch.from_numpy(weight))
        batch.append(array)
        if len(batch) == 16:
            flush()
    if batch:
        flush()
    return {k: torch.stack(v) for k, v in cache.items()}


class _Validator:
    """Scores a model under training on held-out photos, their frozen features computed once."""

    def __init__(
        self, items: Sequence[BoxedImage], trunk: LiteTrunk, config: TrainConfig, min_score: float
    ) -> None:
        from shared.images import load_image

        self.items = list(items)
        self.tune = config.tune
        self.min_score = min_score
        self.sizes: list[tuple[int, int]] = []
        self.scales: list[float] = []
        shapes: dict[tuple[int, ...], list[int]] = {}
        arrays = []
        for index, item in enumerate(self.items):
            img = load_image(item.path)
            boxed = letterbox(img, config.canvas[0])
            self.sizes.append(img.size)
            self.scales.append(boxed.scale)
            arrays.append(boxed.array)
            shapes.setdefault(boxed.array.shape, []).append(index)
        self.groups: list[tuple[list[int], dict[str, torch.Tensor]]] = []
        for ids in shapes.values():
            for start in range(0, len(ids), 16):
                chunk = ids[start : start + 16]
                images = torch.from_numpy(np.stack([arrays[i] for i in chunk]))
                self.groups.append((chunk, _frozen_features(trunk, images, config.tune)))

    def __call__(self, trunk: LiteTrunk, head: DetectionHead) -> dict[str, Any]:
        from lab.detector.evaluation import AP_MIN_SCORE, score_detections
        from services.detector.inference import to_detections

        found: list[list[Any]] = [[] for _ in self.items]
        head.eval()
        with torch.inference_mode():
            for ids, features in self.groups:
                logits, distances = _forward(trunk, head, features, self.tune)
                heat = peaks(logits).numpy()
                dist = distances.numpy()
                for row, index in enumerate(ids):
                    found[index] = to_detections(
                        heat[row],
                        dist[row],
                        self.scales[index],
                        self.sizes[index],
                        CLASSES,
                        min_score=AP_MIN_SCORE,
                        max_detections=100,
                    )
        head.train()
        return score_detections(found, self.items, list(CLASSES), min_score=self.min_score)


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


def _cache_file(cache_dir: Path | None, key: str, config: TrainConfig) -> Path | None:
    if cache_dir is None:
        return None
    return cache_dir / f"detector-features-{config.tune}-{key}.pt"


def _data_key(
    items: list[BoxedImage], synthetic: int, cutouts: Sequence[Cutout], config: TrainConfig
) -> str:
    """What the cached views depend on: the photos, their boxes and the augmentation."""
    key = hashlib.sha256()
    for item in items:
        key.update(
            f"{item.path}:{item.path.stat().st_size}:{item.boxes.tobytes().hex()}\n".encode()
        )
    for cutout in cutouts:
        key.update(cutout.image.tobytes()[:256] + bytes([cutout.label]))
    parts = (synthetic, config.canvas, config.scales, config.flips, config.seed, config.tune)
    key.update(repr(parts).encode())
    if config.backbone != "efficientnet_lite0":
        key.update(config.backbone.encode())
    if config.jitter_views or config.paste or cutouts:
        key.update(repr((config.jitter_views, config.paste, len(cutouts))).encode())
    return key.hexdigest()[:16]


def _to_samples(items: list[BoxedImage]) -> list[Sample]:
    from shared.images import load_image

    return [Sample(load_image(item.path), item.boxes, item.labels) for item in items]


def _trained_state(net: DetectorNet, tune: str) -> dict[str, torch.Tensor]:
    prefixes = tuned_prefixes(tune, net.trunk)
    return {k: v.detach().clone() for k, v in net.state_dict().items() if k.startswith(prefixes)}


def train_detector(
    train_items: list[BoxedImage],
    config: TrainConfig,
    *,
    synthetic: int = 0,
    cutouts: Sequence[Cutout] = (),
    val_items: Sequence[BoxedImage] = (),
    min_score: float = 0.35,
    checkpoint: Path | None = None,
    progress: bool = True,
    cache_dir: Path | None = None,
) -> tuple[DetectorNet, dict[str, object]]:
    """Train a detector on ``train_items`` (+ ``synthetic`` demo outfits, + ``config.paste``
    photos with ``cutouts`` pasted in); return it and its statistics.

    With ``val_items``, every epoch is scored on them (mAP@0.5 of the target categories; recall
    and precision at ``min_score``) and the best epoch's weights come back. With ``checkpoint``,
    the state after each epoch is saved there and a later call with the same data and settings
    resumes after the last finished epoch. With ``cache_dir``, the frozen features are kept
    there (keyed by the images and the augmentation), so a run with other training settings
    starts at once.
    """
    from tqdm import tqdm

    from lab.detector.evaluation import TARGET_CATEGORIES

    if config.paste and not cutouts:
        raise InvalidInputError("paste > 0 needs catalog cutouts to paste")
    started = time.perf_counter()
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    trunk = build_lite_trunk("imagenet", config.backbone)
    key = _data_key(train_items, synthetic, cutouts, config)
    cache_file = _cache_file(cache_dir, key, config)
    if cache_file is not None and cache_file.is_file():
        cache = torch.load(cache_file, weights_only=True)
        log.info("features from %s", cache_file)
    else:
        street = _to_samples(train_items)
        samples = street + synthetic_outfits(synthetic, config.seed)
        samples += paste_photos(street, cutouts, config.paste, config.seed)
        per_sample = len(config.scales) * (2 if config.flips else 1) + config.jitter_views
        with tqdm(
            total=len(samples) * per_sample,
            desc="caching features",
            unit="view",
            disable=not progress,
        ) as bar:
            cache = _cache_features(trunk, samples, config, bar.update)
        if cache_file is not None:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            torch.save(cache, cache_file)
    validate = _Validator(val_items, trunk, config, min_score) if val_items else None
    cache_s = time.perf_counter() - started
    head = DetectionHead(len(CLASSES), config.head_channels, config.head_layers, trunk.channels)
    net = DetectorNet(trunk, head)
    for param in trunk.parameters():
        param.requires_grad_(False)
    groups: list[dict[str, object]] = [{"params": list(head.parameters()), "lr": config.lr}]
    if config.tune != "head":
        tuned = list(trunk.tail.parameters())
        if config.tune == "stride16":
            tuned += [p for i in trunk.mid_blocks() for p in trunk.body[i].parameters()]
        for param in tuned:
            param.requires_grad_(True)
        groups.append({"params": tuned, "lr": config.tail_lr})
    optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    n = cache["c3"].shape[0]
    steps_per_epoch = max(1, n // config.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=[g["lr"] for g in groups],  # type: ignore[misc]
        total_steps=steps_per_epoch * config.epochs,
        pct_start=0.1,
    )
    generator = torch.Generator().manual_seed(config.seed)
    settings = {k: v for k, v in asdict(config).items() if k not in ("max_minutes", "stop_after")}
    run: ResumableRun[None] = ResumableRun(
        checkpoint,
        {"config": settings, "data": key, "val": len(val_items)},
        max_minutes=config.max_minutes if config.max_minutes > 0 else None,
        started=started,
    )
    if run.saved is not None:
        net.load_state_dict(run.saved["trained"], strict=False)
        optimizer.load_state_dict(run.saved["optimizer"])
        scheduler.load_state_dict(run.saved["scheduler"])
        generator.set_state(run.saved["generator"])
    best = run.best or BestEpoch(0, -1.0, None)
    run.best = best
    run.start_budget()  # the budget counts training, not the feature cache
    trunk.eval()  # batch-norm statistics of the backbone stay the ImageNet ones
    head.train()
    for epoch in range(run.epoch, config.stop_after or config.epochs):
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
            features = {name: cache[name][ids] for name in _FEATURES[config.tune]}
            logits, distances = _forward(trunk, head, features, config.tune)
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
        row = {k: round(v / steps_per_epoch, 4) for k, v in totals.items()}
        if validate is not None:
            metrics = validate(trunk, head)
            targets = [
                metrics["per_category"][c]
                for c in TARGET_CATEGORIES
                if c in metrics["per_category"]
            ]
            row.update(
                {
                    "val_map_targets": metrics["map@0.5_targets"],
                    "val_recall": metrics["recall@0.5"],
                    "val_precision": metrics["precision@0.5"],
                    "val_mean_recall_targets": round(
                        sum(float(t["recall"]) for t in targets) / max(1, len(targets)), 4
                    ),
                }
            )
            best.offer(
                epoch + 1,
                metrics["map@0.5_targets"],
                None,
                lambda: _trained_state(net, config.tune),
            )
        run.history.append(row)
        log.info("epoch %d: %s", epoch + 1, row)
        run.save(
            epoch + 1,
            trained=_trained_state(net, config.tune),
            optimizer=optimizer.state_dict(),
            scheduler=scheduler.state_dict(),
            generator=generator.get_state(),
        )
        if run.out_of_time():
            log.warning("time budget reached after %d epochs", epoch + 1)
            break
    if best.state is not None:
        net.load_state_dict(best.state, strict=False)
    head.eval()
    for param in net.parameters():
        param.requires_grad_(False)
    stats: dict[str, object] = {
        "config": asdict(config),
        "train_images": len(train_items),
        "synthetic_images": synthetic,
        "pasted_images": config.paste,
        "cutouts": len(cutouts),
        "views": n,
        "epochs_done": len(run.history),
        "best_epoch": best.epoch or len(run.history),
        "feature_cache_s": round(cache_s, 1),
        "train_time_s": round(run.elapsed(), 1),
        "loss_history": run.history,
    }
    return net.eval(), stats
