"""The lab's commands on the one ``lookalike`` command line: ``train``, ``eval``,
``train-detector``, ``eval-detector``, ``eval-e2e`` and ``bench``.

``services.cli`` never imports the lab: it reads the entry-point group ``lookalike.commands``
(``pyproject.toml``), which names :func:`commands`. Torch and friends load inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from lab.detector.cli import eval_detector_command, train_detector_command
from lab.embedder.cli import eval_command, train_command
from lab.evaluate.cli import (
    eval_e2e_command,
    eval_sessions_command,
    eval_text_command,
    train_bridge_command,
)

__all__ = ["bench", "commands"]


@click.command()
@click.option("--only", multiple=True, help="Run only this benchmark (repeatable).")
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Merge the figures into this JSON file.",
)
@click.option(
    "--markdown",
    type=click.Path(dir_okay=False),
    default="BENCHMARKS.md",
    show_default=True,
    help="Refresh the generated section of this file if it exists.",
)
def bench(only: tuple[str, ...], json_out: str | None, markdown: str) -> None:
    """Run the speed benchmarks and record the figures with the machine they ran on."""
    from lab import benchmarks

    try:
        report = benchmarks.run(list(only) or None)
    except KeyError as exc:
        raise click.BadParameter(str(exc.args[0]), param_hint="--only") from exc
    benchmarks.write(report, Path(json_out) if json_out else None, Path(markdown))
    click.echo(json.dumps(report, indent=2))


def commands() -> list[click.Command]:
    """Every lab command, for ``lookalike`` (the ``lookalike.commands`` entry point)."""
    return [
        train_command,
        eval_command,
        train_bridge_command,
        train_detector_command,
        eval_detector_command,
        eval_e2e_command,
        eval_text_command,
        eval_sessions_command,
        bench,
    ]
