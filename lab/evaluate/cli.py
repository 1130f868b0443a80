"""``lookalike eval-e2e``: the end-to-end quality figures of issue #17."""

from __future__ import annotations

import functools
import json
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from shared.settings import get_settings

DATA = Path("../shared/data")


@click.command("eval-e2e")
@click.option(
    "--catalog",
    type=click.Path(file_okay=False, path_type=Path),
    default=DATA / "catalog-products-dev",
    show_default=True,
    help="A labelled shop: labels.csv (filename, item_id, articleType, baseColour ...) + images.",
)
@click.option(
    "--street",
    type=click.Path(file_okay=False, path_type=Path),
    default=DATA / "street-photos-boxes-dev",
    show_default=True,
    help="Street photos: boxes.csv (filename, category, x1, y1, x2, y2 ...) + images.",
)
@click.option("--holdout", default=0.1, show_default=True, help="Share of products held back.")
@click.option("--seed", default=0, show_default=True, help="Seed of the hold-out split.")
@click.option("--limit", type=int, default=None, help="At most N street and N product photos.")
@click.option(
    "--photos",
    type=click.Choice(["all", "held-out"]),
    default="all",
    show_default=True,
    help="Every street photo, or only the 30% that the shipped classifier and the detector's "
    "split run held out (the shipped detector then trained on every photo: for it, "
    "LOOKALIKE_DETECTOR__MODEL=<a split run> measures held-out figures).",
)
@click.option("--max-products", type=int, default=None, help="Index a seeded sample of N.")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="A fresh folder for the catalog and index, kept afterwards (default: a temporary one).",
)
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--markdown",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Merge the figures into this file under their own heading (e.g. BENCHMARKS.md).",
)
@click.option(
    "--variant",
    "variants",
    multiple=True,
    metavar="NAME=JSON",
    help="Also score these query-time settings on the same indexed catalog, e.g. "
    'det.6=\'{"gateway": {"detector_weight": 0.6}}\' (groups: gateway, detector, '
    "recommender); repeatable.",
)
@click.option("--sheets", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--sheets-max", default=25, show_default=True, help="Sheets per photo kind.")
def eval_e2e_command(
    catalog: Path,
    street: Path,
    holdout: float,
    seed: int,
    limit: int | None,
    photos: str,
    max_products: int | None,
    data_dir: Path | None,
    json_out: Path | None,
    markdown: Path | None,
    variants: tuple[str, ...],
    sheets: Path | None,
    sheets_max: int,
) -> None:
    """Index a labelled shop, answer street and product photos end to end, score per class."""
    from lab.benchmarks import machine
    from lab.evaluate.e2e import E2EConfig, run, variant_settings
    from lab.evaluate.report import write_markdown
    from shared.errors import ConfigurationError

    for folder, name in ((catalog, "labels.csv"), (street, "boxes.csv")):
        if not (folder / name).is_file():
            raise click.BadParameter(f"{folder / name} does not exist")
    settings = get_settings()
    chosen: dict[str, dict[str, Any]] = {}
    for given in variants:
        name, equals, body = given.partition("=")
        try:
            if not equals or not name.strip():
                raise ValueError("want NAME=JSON object")
            overrides = json.loads(body)
            if not isinstance(overrides, dict):
                raise ValueError("want NAME=JSON object")
            variant_settings(settings, overrides)
        except (ValueError, ConfigurationError) as exc:
            raise click.BadParameter(f"{given!r}: {exc}", param_hint="--variant") from exc
        chosen[name.strip()] = overrides
    config = E2EConfig(
        catalog=catalog,
        street=street,
        holdout=holdout,
        seed=seed,
        limit=limit,
        photos=photos,
        max_products=max_products,
        data_dir=data_dir,
        sheets=sheets,
        sheets_max=sheets_max,
        variants=chosen,
    )

    def progress(line: str) -> None:
        click.echo(line, err=True)

    figures = run(config, settings, progress)
    report = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["lookalike", *sys.argv[1:]]),
        "machine": machine(),
        **figures,
    }
    text = json.dumps(report, indent=2)
    if json_out is not None:
        json_out.write_text(text + "\n")
    if markdown is not None:
        write_markdown(report, markdown)
    click.echo(text)


def _kept(settings_dir: Path, catalog: Path, what: str) -> Path:
    return settings_dir / f"{what}-{catalog.resolve().name}"


labelled_catalog = click.option(
    "--catalog",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=DATA / "catalog-products-dev",
    show_default=True,
    help="A labelled catalog: labels.csv (articleType, baseColour, productDisplayName ...) + "
    "images.",
)
kept_index = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the catalog is indexed once and kept (default: eval-text-<catalog> in the "
    "data directory); `eval-text` and `train-bridge` reuse it.",
)


@click.command("eval-text")
@labelled_catalog
@kept_index
@click.option(
    "--min-products",
    default=10,
    show_default=True,
    help="Ask for a (colour, type) pair only when the shop has this many of it.",
)
@click.option(
    "--variant",
    "variants",
    type=click.Choice(["published", "hidden"]),
    multiple=True,
    help="Titles and categories as published, or hidden (default: both).",
)
@click.option(
    "--path",
    "paths",
    type=click.Choice(["text", "pictures", "both"]),
    multiple=True,
    help="The paths that answer (default: each alone, then both fused).",
)
@click.option(
    "--pictures-weight",
    "pictures_weights",
    type=float,
    multiple=True,
    help="Also score the fused path at this gateway.words_pictures_weight (repeatable).",
)
@click.option(
    "--colour-weight",
    "colour_weights",
    type=float,
    multiple=True,
    help="Also score the pictures and fused paths at this gateway.words_colour_weight.",
)
@click.option(
    "--bridge",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Use this word bridge (default: one learnt on the other half of the catalog).",
)
@click.option("--json-out", type=click.Path(dir_okay=False, path_type=Path), default=None)
def eval_text_command(
    catalog: Path,
    data_dir: Path | None,
    min_products: int,
    variants: tuple[str, ...],
    paths: tuple[str, ...],
    pictures_weights: tuple[float, ...],
    colour_weights: tuple[float, ...],
    bridge: Path | None,
    json_out: Path | None,
) -> None:
    """Words alone on /recommend, end to end: P@10 of the same article type and of the same
    type and colour for "<colour> <type>" queries in the catalog's and a shopper's words, by
    the text path, the pictures path and both fused, with the CPU time per query
    (lab/evaluate/words.py)."""
    from lab.benchmarks import machine
    from lab.evaluate.words import PATHS, VARIANTS, run

    settings = get_settings()

    def progress(line: str) -> None:
        click.echo(line, err=True)

    figures = run(
        catalog,
        data_dir or _kept(settings.data_dir, catalog, "eval-text"),
        settings,
        min_products=min_products,
        variants=variants or tuple(VARIANTS),
        paths=paths or PATHS,
        grid={"words_pictures_weight": pictures_weights, "words_colour_weight": colour_weights},
        bridge=bridge,
        progress=progress,
    )
    report = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["lookalike", *sys.argv[1:]]),
        "machine": machine(),
        **figures,
    }
    text = json.dumps(report, indent=2)
    if json_out is not None:
        json_out.write_text(text + "\n")
    click.echo(text)


@click.command("eval-sessions")
@labelled_catalog
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the sample is indexed once and kept (default: eval-sessions-<catalog>-<N> in "
    "the data directory).",
)
@click.option(
    "--max-products",
    type=int,
    default=1500,
    show_default=True,
    help="Index a seeded sample of N products (0: all; the whole dev catalog takes ~25 min).",
)
@click.option("--sessions", "per_kind", default=100, show_default=True, help="Sessions per kind.")
@click.option("--seed", default=0, show_default=True, help="Seed of the sample and sessions.")
@click.option("--json-out", type=click.Path(dir_okay=False, path_type=Path), default=None)
def eval_sessions_command(
    catalog: Path,
    data_dir: Path | None,
    max_products: int,
    per_kind: int,
    seed: int,
    json_out: Path | None,
) -> None:
    """ "Based on what you viewed", end to end: sessions simulated from the labels (one type
    and colour, two types, one "not for me"), P@10 of the same type / type + colour, the
    session's types in the top 10, the rejected type and colour in the top 10 with and without
    the negative, beside one product's "more like this" (lab/evaluate/sessions.py)."""
    from lab.benchmarks import machine
    from lab.evaluate.sessions import run

    settings = get_settings()
    sample = max_products or None
    kept = data_dir or settings.data_dir / (
        f"eval-sessions-{catalog.resolve().name}-{sample or 'all'}"
    )
    figures = run(
        catalog,
        kept,
        settings,
        max_products=sample,
        per_kind=per_kind,
        seed=seed,
        progress=functools.partial(click.echo, err=True),
    )
    report = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["lookalike", *sys.argv[1:]]),
        "machine": machine(),
        **figures,
    }
    text = json.dumps(report, indent=2)
    if json_out is not None:
        json_out.write_text(text + "\n")
    click.echo(text)


@click.command("train-bridge")
@labelled_catalog
@kept_index
@click.option(
    "--out",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="The model folder to write bridge.npz + bridge.json into (default: the folder of "
    "embedder.model); its card must be the model the catalog was indexed with.",
)
def train_bridge_command(catalog: Path, data_dir: Path | None, out: Path | None) -> None:
    """Learn the word bridge of the catalog's embedder model (words read as pictures for a
    shop whose titles say nothing) on every product of a labelled catalog."""
    from lab.embedder.bridge import train
    from lab.evaluate.shop import PARTS, indexed_shop, read_pairs
    from services.embedder.artifact import find_model_dir, load_card
    from shared.words import sentence_encoder

    settings = get_settings()
    folder = out or find_model_dir(settings.embedder.model)
    if folder is None:
        raise click.BadParameter(
            f"{settings.embedder.model!r} is not a model folder: give --out", param_hint="--out"
        )
    kept = data_dir or _kept(settings.data_dir, catalog, "eval-text")
    echo = functools.partial(click.echo, err=True)
    with indexed_shop(catalog, kept, settings, progress=echo) as shop:
        pairs = read_pairs(shop, [part for part in PARTS if part != "hidden"])
        version = load_card(folder).version
        if pairs.model_version != version:
            raise click.ClickException(
                f"{kept} was indexed with {pairs.model_version}, {folder} holds {version}"
            )
        bridge, figures = train(pairs, sentence_encoder(), progress=echo)
    card = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["lookalike", *sys.argv[1:]]),
        "trained_on": str(catalog),
        **figures,
    }
    bridge.save(folder, card)
    click.echo(json.dumps({"out": str(folder), **card}, indent=2))
