"""``lookalike train`` and ``lookalike eval``. Torch and friends load inside the commands, so
importing this module (as ``lookalike status`` does) stays cheap."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import click

DATA_HELP = "A folder of class folders (DIR/<category>/*.jpg) or a CSV with filename + label."


@click.command("train")
@click.option("--data", required=True, type=click.Path(exists=True), help=DATA_HELP)
@click.option("--label-column", default=None, help="Label column of a CSV (e.g. articleType).")
@click.option(
    "--extra",
    "extras",
    multiple=True,
    type=click.Path(exists=True),
    help="More training data (repeatable): a folder, a CSV or a boxes CSV (x1,y1,x2,y2 columns; "
    "crops cut as the detector cuts them). Labels are read in --data's classes through the "
    "garment taxonomy; the validation split stays within --data.",
)
@click.option(
    "--weight",
    "weights",
    multiple=True,
    type=click.FloatRange(0.0),
    help="Sampling weight of each source: --data, each --extra, --shop (repeatable; missing "
    "ones are 1).",
)
@click.option(
    "--alias",
    "aliases",
    multiple=True,
    help="LABEL=CLASS for an --extra label the taxonomy files elsewhere (e.g. jeans=pants).",
)
@click.option(
    "--holdout-photos",
    default=0.3,
    show_default=True,
    type=click.FloatRange(0.0, 0.9),
    help="Share of a boxes CSV's photos never trained on (split by photo as the detector splits "
    "them, with --seed): their crops are scored into the card as query-time checks.",
)
@click.option(
    "--shop",
    default=None,
    type=click.Path(exists=True),
    help="A shop catalog (folder or CSV) to train with, its own labels (e.g. articleType) as "
    "the embedding's finer level; --holdout-shop of it is kept out to measure street -> shop "
    "and shop -> shop P@10 with the embedding alone.",
)
@click.option(
    "--holdout-shop",
    default=0.2,
    show_default=True,
    type=click.FloatRange(0.0, 0.9),
    help="Share of each --shop label's images never trained on.",
)
@click.option(
    "--balance-classes", is_flag=True, help="Draw every class equally often (within weights)."
)
@click.option(
    "--epoch-images",
    default=0,
    type=click.IntRange(0),
    help="Stage 2 images per epoch, drawn by weight (0: every training image once).",
)
@click.option("--backbone", default="efficientnet_lite0", show_default=True)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Model directory.")
@click.option("--name", default=None, help="Model name (default: the --out folder's name).")
@click.option(
    "--input-size", default=192, show_default=True, type=int, help="Pixels (0: the backbone's own)."
)
@click.option(
    "--crop-fraction",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.5, 1.0),
    help="Share of the resized image the centre crop keeps (0.875: the ImageNet recipe).",
)
@click.option(
    "--fit",
    type=click.Choice(["crop", "squash"]),
    default="crop",
    show_default=True,
    help="crop: shorter side resized, centre crop; squash: resized to a square, aspect not kept.",
)
@click.option("--epochs", default=6, show_default=True, help="Stage 2 (all layers) epochs.")
@click.option("--head-epochs", default=40, show_default=True, help="Stage 1 (heads) epochs.")
@click.option("--lr", default=3e-4, show_default=True, help="Stage 2 backbone learning rate.")
@click.option("--batch-size", default=32, show_default=True)
@click.option(
    "--metric-head",
    "projection_dim",
    default=256,
    show_default=True,
    type=int,
    help="Dimension of a normalised-softmax embedding head (0: none); it is kept only "
    "if it beats the backbone features at validation retrieval.",
)
@click.option("--val-fraction", default=0.2, show_default=True)
@click.option("--min-per-class", default=2, show_default=True, help="Drop rarer classes.")
@click.option("--seed", default=0, show_default=True)
@click.option("--max-minutes", default=27.0, show_default=True, help="Time budget (0: none).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False),
    default=None,
    help="Save the run after stage 1 and every stage-2 epoch here; a rerun with the same data "
    "and settings resumes after the last saved step.",
)
def train_command(
    data: str,
    label_column: str | None,
    extras: tuple[str, ...],
    weights: tuple[float, ...],
    aliases: tuple[str, ...],
    holdout_photos: float,
    shop: str | None,
    holdout_shop: float,
    balance_classes: bool,
    epoch_images: int,
    backbone: str,
    out: str,
    name: str | None,
    input_size: int,
    crop_fraction: float,
    fit: str,
    epochs: int,
    head_epochs: int,
    lr: float,
    batch_size: int,
    projection_dim: int,
    val_fraction: float,
    min_per_class: int,
    seed: int,
    max_minutes: float,
    device: str,
    checkpoint: str | None,
) -> None:
    """Fine-tune a backbone (two stages) into a model directory with a JSON model card."""
    from lab.embedder.data import load_labelled, mix
    from lab.embedder.training import TrainConfig, train

    n_sources = 1 + len(extras) + (shop is not None)
    if len(weights) > n_sources:
        raise click.BadParameter(
            f"{len(weights)} weights for {n_sources} sources", param_hint="--weight"
        )
    primary = load_labelled(data, label_column, min_per_class=min_per_class)
    mixture = mix(
        primary,
        [load_labelled(e) for e in extras],
        _aliases(aliases),
        shop=None if shop is None else load_labelled(shop),
        holdout_photos=holdout_photos,
        holdout_shop=holdout_shop,
        seed=seed,
    )
    images = mixture.images
    click.echo(
        f"{len(images)} images, {len(images.classes)} classes from {data}"
        + (f" and {n_sources - 1} more sources" if n_sources > 1 else "")
        + (f" (skipped: {images.skipped})" if images.skipped else "")
    )
    config = TrainConfig(
        backbone=backbone,
        input_size=input_size or None,
        crop_fraction=crop_fraction,
        fit=fit,  # type: ignore[arg-type]
        val_fraction=val_fraction,
        seed=seed,
        batch_size=batch_size,
        head_epochs=head_epochs,
        finetune_epochs=epochs,
        finetune_lr=lr,
        projection_dim=projection_dim,
        max_minutes=max_minutes or None,
        device=device,
        name=name,
        source_weights=weights,
        balance_classes=balance_classes,
        epoch_images=epoch_images or None,
    )
    command = shlex.join(["lookalike", *sys.argv[1:]]) if sys.argv[1:2] == ["train"] else None
    result = train(
        images,
        out,
        config,
        checks=mixture.checks,
        shop=mixture.shop,
        command=command,
        checkpoint=Path(checkpoint) if checkpoint else None,
    )
    metrics = result.card.metrics
    summary = {k: metrics[k] for k in ("p@1", "p@5", "p@10", "map@10", "accuracy", "ece")}
    click.echo(f"saved {result.card.version} to {out} in {result.card.training['time_s']} s")
    click.echo(f"validation ({metrics['n_images']} images): {json.dumps(summary)}")
    for checked in metrics.get("checks", []):
        click.echo(
            f"checks ({checked['n_images']} {checked['source']}): accuracy "
            f"{checked['accuracy']}, ECE {checked['ece']}"
        )
    if "street_to_shop" in metrics:
        click.echo(f"retrieval, embedding only: {json.dumps(metrics['street_to_shop'])}")


def _aliases(pairs: tuple[str, ...]) -> dict[str, str]:
    """``LABEL=CLASS`` pairs as a dict; a pair without ``=`` is a usage error."""
    out = {}
    for pair in pairs:
        label, sep, target = pair.partition("=")
        if not sep or not label.strip() or not target.strip():
            raise click.BadParameter(f"{pair!r} is not LABEL=CLASS", param_hint="--alias")
        out[label.strip()] = target.strip()
    return out


@click.command("eval")
@click.option("--data", required=True, type=click.Path(exists=True), help=DATA_HELP)
@click.option("--label-column", default=None, help="Label column of a CSV (e.g. articleType).")
@click.option(
    "--model",
    default=None,
    help="A model directory or a backbone name (default: frozen efficientnet_lite0).",
)
@click.option("--metric", type=click.Choice(["cosine", "l1"]), default="cosine", show_default=True)
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the figures as JSON here.",
)
@click.option(
    "--split",
    type=click.Choice(["all", "train", "val"]),
    default="all",
    show_default=True,
    help="Evaluate on part of the data: 'val' reproduces the training split.",
)
@click.option(
    "--val-fraction",
    type=float,
    default=None,
    help="Split fraction (default: the model card's, else 0.2).",
)
@click.option("--seed", type=int, default=None, help="Split seed (default: the card's, else 0).")
@click.option("--min-per-class", default=2, show_default=True)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False),
    default=None,
    help="t-SNE PNG (default: beside --json, else no plot).",
)
@click.option("--batch-size", default=32, show_default=True)
@click.option(
    "--runtime", type=click.Choice(["auto", "torch", "onnx"]), default="auto", show_default=True
)
def eval_command(
    data: str,
    label_column: str | None,
    model: str | None,
    metric: str,
    json_out: str | None,
    split: str,
    val_fraction: float | None,
    seed: int | None,
    min_per_class: int,
    plot: str | None,
    batch_size: int,
    runtime: str,
) -> None:
    """Leave-one-out retrieval (P@1/5/10, mAP@10), accuracy, confusion matrix and a t-SNE plot."""
    from lab.embedder.evaluation import evaluate_folder

    plot_path = plot or (str(Path(json_out).with_suffix(".tsne.png")) if json_out else None)
    report: dict[str, Any] = evaluate_folder(
        data,
        label_column=label_column,
        model=model,
        metric=metric,  # type: ignore[arg-type]
        split=split,  # type: ignore[arg-type]
        val_fraction=val_fraction,
        seed=seed,
        min_per_class=min_per_class,
        plot=plot_path,
        batch_size=batch_size,
        runtime=runtime,  # type: ignore[arg-type]
    )
    if json_out:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(report, indent=2) + "\n")
    keys = ("p@1", "p@5", "p@10", "map@10", "accuracy", "n_images")
    click.echo(json.dumps({k: report[k] for k in keys}))
    click.echo(f"accuracy: {report['accuracy_method']}")
    if plot_path:
        click.echo(f"t-SNE plot: {plot_path}")
