"""``lookalike``: one command line for every part of the system (like ``scrapy`` or
``celery``). Command modules import their heavy dependencies (torch, Scrapy, Celery workers)
inside the commands, so that, say, ``lookalike status`` stays fast."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from services.detector.cli import eval_detector_command, train_detector_command
from services.embedder.cli import eval_command, train_command
from services.evaluate.cli import eval_e2e_command
from services.ingest.cli import (
    ingest_status_command,
    reindex_command,
    sweep_command,
    worker_command,
)
from services.scraper.cli import crawl, sources
from shared.errors import LookalikeError
from shared.logging import configure_logging
from shared.settings import get_settings


class _Cli(click.Group):
    """Turn the project's own errors into a one-line message and their exit status (1; 2 for a
    bad setting)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LookalikeError as exc:
            click.echo(f"Error: {exc.message}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=_Cli)
@click.version_option(package_name="lookalike")
def main() -> None:
    """Lookalike: visual recommendations for fashion shops."""
    configure_logging(get_settings().log_level)


@main.command()
@click.option("--host", default=None, help="Interface to serve on (LOOKALIKE_HOST).")
@click.option("--port", default=None, type=int, help="Gateway port (LOOKALIKE_PORT, 8000).")
@click.option("--demo-products", default=120, show_default=True, help="Size of the demo shop.")
@click.option(
    "--demo-port", default=None, type=int, help="Demo shop port (LOOKALIKE_DEMO_PORT, 8001)."
)
@click.option("--seed", default=0, show_default=True, help="Seed of the generated demo shop.")
@click.option("--verbose", is_flag=True, help="Let Scrapy and Celery log their own details.")
def run(
    host: str | None,
    port: int | None,
    demo_products: int,
    demo_port: int | None,
    seed: int,
    verbose: bool,
) -> None:
    """Run the embedded stack: catalog, demo shop (when no shop is configured), gateway."""
    settings = get_settings()
    updates = {"host": host, "port": port, "demo_port": demo_port}
    settings = settings.model_copy(update={k: v for k, v in updates.items() if v is not None})
    click.echo(f"Lookalike: starting the embedded stack (data in {settings.data_dir})", err=True)
    from services import embedded  # torch, Scrapy and Celery load here: seconds

    embedded.run(settings, demo_products=demo_products, seed=seed, verbose=verbose)


@main.command("demo-shop")
@click.option("--products", default=200, show_default=True)
@click.option("--port", default=8001, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--seed", default=0, show_default=True)
def demo_shop(products: int, port: int, host: str, seed: int) -> None:
    """Serve a generated demo shop (listing pages, JSON-LD product pages, sitemap, images)."""
    from services.demo_shop.server import serve

    serve(products=products, port=port, host=host, seed=seed)


@main.command()
def migrate() -> None:
    """Apply the catalog DB migrations (DATABASE_URL, or SQLite in the data dir)."""
    from shared.db import Catalog
    from shared.db.migrate import current_revision

    settings = get_settings()
    settings.ensure_dirs()
    catalog = Catalog.from_settings(settings)
    catalog.migrate()
    click.echo(f"catalog at revision {current_revision(catalog.engine)} ({catalog.dialect})")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def status(as_json: bool) -> None:
    """Catalog counts and the health of the database and the broker."""
    from shared.db import Catalog
    from shared.health import check_broker, check_database

    settings = get_settings()
    catalog = Catalog.from_settings(settings)
    checks = [check_database(catalog), check_broker(settings.broker_url)]
    stats = catalog.stats() if checks[0].ok else None
    progress = catalog.ingest_progress() if checks[0].ok else None
    if as_json:
        ingest = None
        if progress is not None:
            ingest = {
                **progress.model_dump(mode="json"),
                "seconds_since_progress": progress.seconds_since_progress(),
                "stalled": progress.stalled(),
            }
        body = {
            "mode": settings.mode,
            "checks": {c.name: {"ok": c.ok, "detail": c.detail} for c in checks},
            "catalog": stats.model_dump(mode="json") if stats else None,
            "ingest": ingest,
        }
        click.echo(json.dumps(body, indent=2))
    else:
        click.echo(f"mode: {settings.mode}")
        for check in checks:
            click.echo(f"{check.name:<9} {'ok ' if check.ok else 'DOWN'} {check.detail}")
        if stats:
            click.echo(f"sources   {stats.sources}")
            click.echo(
                f"products  {stats.products_active} active, {stats.products_inactive} inactive"
            )
            images = ", ".join(f"{count} {state.value}" for state, count in stats.images.items())
            click.echo(f"images    {images}")
        if progress:
            click.echo(f"ingest    {progress.summary()}")
    if not all(check.ok for check in checks):
        sys.exit(1)


@main.command()
@click.argument("sql")
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="Bind a :NAME parameter (repeatable).",
)
@click.option("--max-rows", default=10_000, show_default=True)
def query(sql: str, params: tuple[str, ...], max_rows: int) -> None:
    """Run a read-only SQL query on the catalog and print JSON lines (for analysts)."""
    from shared.db import Catalog

    bound: dict[str, str] = {}
    for param in params:
        name, sep, value = param.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{param!r} is not NAME=VALUE", param_hint="--param")
        bound[name] = value
    catalog = Catalog.from_settings()
    for row in catalog.run_query(sql, bound, max_rows=max_rows):
        click.echo(json.dumps(row, default=str))


@main.command()
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
    from pathlib import Path

    from services import benchmarks

    try:
        report = benchmarks.run(list(only) or None)
    except KeyError as exc:
        raise click.BadParameter(str(exc.args[0]), param_hint="--only") from exc
    benchmarks.write(report, Path(json_out) if json_out else None, Path(markdown))
    click.echo(json.dumps(report, indent=2))


# Commands that live with their service.
for _command in (
    crawl,
    sources,
    train_command,
    eval_command,
    worker_command,
    sweep_command,
    reindex_command,
    ingest_status_command,
    train_detector_command,
    eval_detector_command,
    eval_e2e_command,
):
    main.add_command(_command)
