"""``lookalike train`` and ``lookalike eval``. Torch and friends load inside the commands, so
importing this module (as ``lookalike status`` does) stays cheap."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

DATA_HELP = "A folder of class folders (DIR/<category>/*.jpg) or a CSV with filename + label."


@click.command("train")
@click.option("--data", required=True, type=click.Path(exists=True), help=DATA_HELP)
@click.option("--label-column", default=None, help="Label column of a CSV (e.g. articleType).")
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
def train_command(
    data: str,
    label_column: str | None,
    backbone: str,
    out: str,
    name: str | None,
    input_size: int,
    crop_fraction: float,
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
) -> None:
    """Fine-tune a backbone (two stages) into a model directory with a JSON model card."""
    from services.embedder.data import load_labelled
    from services.embedder.training import TrainConfig, train

    images = load_labelled(data, label_column, min_per_class=min_per_class)
    click.echo(
        f"{len(images)} images, {len(images.classes)} classes from {data}"
        + (f" (skipped: {images.skipped})" if images.skipped else "")
    )
    config = TrainConfig(
        backbone=backbone,
        input_size=input_size or None,
        crop_fraction=crop_fraction,
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
    )
    result = train(images, out, config)
    metrics = result.card.metrics
    summary = {k: metrics[k] for k in ("p@1", "p@5", "p@10", "map@10", "accuracy", "ece")}
    click.echo(f"saved {result.card.version} to {out} in {result.card.training['time_s']} s")
    click.echo(f"validation ({metrics['n_images']} images): {json.dumps(summary)}")


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
    from services.embedder.evaluation import evaluate_folder

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
