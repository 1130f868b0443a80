"""``lookalike eval-e2e``: the end-to-end quality figures of issue #17."""

from __future__ import annotations

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


@click.command("eval-text")
@click.option(
    "--catalog",
    type=click.Path(file_okay=False, path_type=Path),
    default=DATA / "catalog-products-dev",
    show_default=True,
    help="A labelled shop: labels.csv (articleType, baseColour, productDisplayName ...).",
)
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
@click.option("--json-out", type=click.Path(dir_okay=False, path_type=Path), default=None)
def eval_text_command(
    catalog: Path, min_products: int, variants: tuple[str, ...], json_out: Path | None
) -> None:
    """Words on /recommend, the text path: P@10 of the same article type and of the same type
    and colour for "<colour> <type>" queries in the catalog's and a shopper's words, with the
    CPU time per query (lab/evaluate/words.py)."""
    from lab.evaluate.words import run

    def progress(line: str) -> None:
        click.echo(line, err=True)

    figures = run(
        catalog,
        min_products=min_products,
        variants=variants or ("published", "hidden"),
        progress=progress,
    )
    report = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["lookalike", *sys.argv[1:]]),
        **figures,
    }
    text = json.dumps(report, indent=2)
    if json_out is not None:
        json_out.write_text(text + "\n")
    click.echo(text)
