"""Compare garment-classifier data recipes cheaply: linear heads on frozen EfficientNet-Lite0
features, one per variant (sources, their weights, class balance, label smoothing, the augmented
view, crop vs squash framing).

The validation images are those ``lookalike train --val-fraction 0.5`` validates on (half of
``street-crops-dev``) plus the query-time crops of the 30 % of street photos that the detector
and ``lookalike train --extra boxes.csv`` hold out (``shared.detection.held_out``). Each variant
is trained with two seeds and the accuracies averaged; "flip" adds the mirrored crop's logits
(test-time augmentation). Features are computed once (about 6 minutes on 2 cores for
EfficientNet-Lite0 at 192 px; ``--backbone`` and ``--input-size`` probe others)::

    .venv/bin/python -m lab.probes.classifier_probes [--data ../shared/data] [--json out.json] \
        [--backbone efficientnet_lite2 --input-size 260] [--fits squash] \
        [--variants 'street only;street + boxes, weights 3/1']
"""

from __future__ import annotations

import argparse
import json
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from lab.embedder.batches import FeatureRunner, augment
from lab.embedder.config import TrainConfig
from lab.embedder.data import LabelledImages, load_labelled, mix, stratified_split
from lab.embedder.heads import build_network

ALIASES = {"jeans": "pants", "shorts": "pants", "stockings": "leggings", "tights": "leggings"}
VIEWS = ("clean", "flip", "aug")
VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("street only", {"sources": (0,)}),
    ("street + boxes", {"sources": (0, 1)}),
    ("street + boxes, weights 3/1", {"sources": (0, 1), "weights": (3, 1, 1)}),
    (
        "street + boxes, weights 3/1, no label smoothing",
        {"sources": (0, 1), "weights": (3, 1, 1), "smoothing": 0.0},
    ),
    (
        "street + boxes, weights 3/1, label smoothing 0.2",
        {"sources": (0, 1), "weights": (3, 1, 1), "smoothing": 0.2},
    ),
    (
        "street + boxes, weights 3/1, no augmented view",
        {"sources": (0, 1), "weights": (3, 1, 1), "views": ("clean", "flip")},
    ),
    ("street + boxes, class-balanced", {"sources": (0, 1), "balance": True}),
    ("street + boxes + shop, weights 2/1/0.3", {"weights": (2, 1, 0.3)}),
    ("street + shop", {"sources": (0, 2)}),
    ("boxes only", {"sources": (1,)}),
]


def features(
    images: LabelledImages,
    fit: str,
    tmp: Path,
    backbone: str,
    input_size: int | None,
    views: tuple[str, ...] = VIEWS,
) -> dict[str, np.ndarray]:
    """Frozen backbone features of every image in ``views``: as is, mirrored, augmented."""
    config = TrainConfig(fit=fit, backbone=backbone, input_size=input_size)  # type: ignore[arg-type]
    net, _, size = build_network(config, 2, torch.device("cpu"))
    pre = net.backbone.preprocess
    runner = FeatureRunner(net, torch.device("cpu"), tmp, size)

    def load(i: int, view: str) -> np.ndarray:
        img = pre.load(images.paths[i])
        if view == "aug":
            img = pre.squash(img, size) if fit == "squash" else img
            img = augment(img, size, np.random.default_rng([0, i]), 0.5)
        else:
            img = pre.geometry(img)
        if view == "flip":
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return pre.array(img)

    out = {}
    with ThreadPoolExecutor(2) as pool:
        for view in views:
            batches = (
                np.stack(
                    list(pool.map(lambda i, v=view: load(i, v), range(s, min(s + 64, len(images)))))
                )
                for s in range(0, len(images), 64)
            )
            out[view] = np.concatenate(list(runner.features(batches)))
    return out


def probe(
    x: dict[str, torch.Tensor],
    y: np.ndarray,
    domain: np.ndarray,
    train: np.ndarray,
    vals: list[np.ndarray],
    *,
    sources: tuple[int, ...] = (0, 1, 2),
    weights: tuple[float, ...] = (1, 1, 1),
    balance: bool = False,
    smoothing: float = 0.1,
    views: tuple[str, ...] = VIEWS,
    seed: int = 0,
    epochs: int = 30,
) -> list[float]:
    """Accuracy and flip accuracy on each validation set of one linear head."""
    idx = train[np.isin(domain[train], sources)]
    w = np.array([weights[d] for d in domain[idx]], dtype=float)
    if balance:
        w = w / np.bincount(y[idx], minlength=y.max() + 1)[y[idx]]
    xs = torch.cat([x[v][idx] for v in views])
    ys = torch.from_numpy(np.tile(y[idx], len(views)))
    ws = torch.from_numpy(np.tile(w / w.sum(), len(views)))
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    head = torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Linear(xs.shape[1], y.max() + 1))
    optimiser = torch.optim.AdamW(head.parameters(), lr=3e-3, weight_decay=1e-4)
    steps = epochs * -(-len(xs) // 256)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, 3e-3, total_steps=steps)
    for _ in range(epochs):
        head.train()
        order = torch.multinomial(ws, len(xs), replacement=True, generator=generator)
        for start in range(0, len(xs), 256):
            batch = order[start : start + 256]
            loss = F.cross_entropy(head(xs[batch]), ys[batch], label_smoothing=smoothing)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
    head.eval()
    out = []
    with torch.no_grad():
        for val in vals:
            truth = torch.from_numpy(y[val])
            plain, flipped = head(x["clean"][val]), head(x["flip"][val])
            out += [
                float((plain.argmax(1) == truth).float().mean()),
                float(((plain + flipped).argmax(1) == truth).float().mean()),
            ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        help="A seeded sample of N training images (a quick look).",
    )
    parser.add_argument("--backbone", default=TrainConfig.backbone, help="A registry backbone.")
    parser.add_argument(
        "--input-size", type=int, default=TrainConfig.input_size, help="Pixels (the trainer's)."
    )
    parser.add_argument("--fits", default="crop,squash", help="Framings, comma-separated.")
    parser.add_argument(
        "--variants", default=None, help="Only these variants (names, separated by ';')."
    )
    args = parser.parse_args()
    variants = [
        (name, options)
        for name, options in VARIANTS
        if args.variants is None or name in args.variants.split(";")
    ]
    torch.set_num_threads(2)
    mixture = mix(
        load_labelled(args.data / "street-crops-dev"),
        [load_labelled(args.data / "street-photos-boxes-dev" / "boxes.csv")],
        ALIASES,
        shop=load_labelled(args.data / "catalog-products-dev" / "labels.csv"),
        holdout_shop=0.0,
    )
    images, [held] = mixture.images, mixture.checks
    everything = LabelledImages(
        images.paths + held.paths,
        images.labels + held.labels,
        images.source,
        domains=images.domains + (3,) * len(held),
        sources=(*images.sources, held.source),
    )
    train, street_val = stratified_split(images, 0.5, 0)
    box_val = np.arange(len(images), len(everything))
    if args.limit:
        rng = np.random.default_rng(0)
        train = np.sort(rng.choice(train, min(args.limit, len(train)), replace=False))
        street_val = np.sort(
            rng.choice(street_val, min(args.limit // 4, len(street_val)), replace=False)
        )
        box_val = np.sort(rng.choice(box_val, min(args.limit // 4, len(box_val)), replace=False))
    used = np.concatenate([train, street_val, box_val])
    everything = everything.subset(used)
    train, street_val, box_val = np.split(
        np.arange(len(used)), [len(train), len(train) + len(street_val)]
    )
    y = everything.targets(images.classes)
    domain = everything.domain
    report: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for fit in args.fits.split(","):
            x = {
                k: torch.from_numpy(v)
                for k, v in features(
                    everything, fit, Path(tmp), args.backbone, args.input_size
                ).items()
            }
            for name, options in variants:
                runs = [
                    probe(x, y, domain, train, [street_val, box_val], seed=s, **options)
                    for s in (0, 1)
                ]
                street, street_flip, boxes, boxes_flip = np.mean(runs, axis=0).round(3).tolist()
                row = {"backbone": args.backbone, "input_size": args.input_size, "fit": fit,
                       "variant": name, "street": street, "street_flip": street_flip,
                       "boxes": boxes, "boxes_flip": boxes_flip}  # fmt: skip
                report.append(row)
                print(json.dumps(row), flush=True)
    print(f"\nstreet val {len(street_val)} crops; query-time crops {len(box_val)} ({held.source})")
    print(
        "| backbone | input | fit | sources | street crops | + flip | query-time crops | + flip |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in report:
        print(f"| {r['backbone']} | {r['input_size']} | {r['fit']} | {r['variant']} | "
              f"{r['street']:.3f} | {r['street_flip']:.3f} | "
              f"{r['boxes']:.3f} | {r['boxes_flip']:.3f} |")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
