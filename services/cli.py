"""``lookalike``: one command line for every part of the system (like ``scrapy`` or
``celery``). Command modules import their heavy dependencies (torch, Scrapy, Celery workers)
inside the commands, so that, say, ``lookalike status`` stays fast.

More commands come from the entry-point group ``lookalike.commands``: the lab's (``train``,
``eval-e2e``, ``bench`` ...) register there, so the services never import the lab, and an image
without the lab simply has no lab commands."""

from __future__ import annotations

import json
import logging
import sys
import tomllib
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import click

from services.gateway.cli import keys
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

COMMANDS_GROUP = "lookalike.commands"
"""Entry points naming a function that returns more ``click`` commands for ``lookalike``."""

log = logging.getLogger(__name__)


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


# Commands that live with their service.
for _command in (
    crawl,
    sources,
    keys,
    worker_command,
    sweep_command,
    reindex_command,
    ingest_status_command,
):
    main.add_command(_command)


def _declared_commands() -> Iterator[str]:
    """``"module:function"`` of each ``lookalike.commands`` entry point: from the
    installed metadata, or, in a source checkout whose install predates the group, from the
    ``pyproject.toml`` beside ``services/`` (the same declaration)."""
    installed = metadata.entry_points(group=COMMANDS_GROUP)
    if installed:
        yield from (entry.value for entry in installed)
        return
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    if pyproject.is_file():
        project = tomllib.loads(pyproject.read_text()).get("project", {})
        yield from project.get("entry-points", {}).get(COMMANDS_GROUP, {}).values()


def _load(value: str) -> Callable[[], list[click.Command]] | None:
    """The function an entry point names; ``None`` when its package is not installed (a service
    image ships no lab)."""
    module, _, attr = value.partition(":")
    try:
        loaded: Callable[[], list[click.Command]] = metadata.EntryPoint(
            name=attr, value=value, group=COMMANDS_GROUP
        ).load()
    except ModuleNotFoundError as exc:
        if exc.name is None or not (module == exc.name or module.startswith(f"{exc.name}.")):
            raise
        log.debug("no %s here: its commands are left out", module)
        return None
    return loaded


for _value in _declared_commands():
    _commands = _load(_value)
    for _command in _commands() if _commands is not None else ():
        main.add_command(_command)


if __name__ == "__main__":
    main()
