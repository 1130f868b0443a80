"""Command-line entry points of the scraper, shared by ``lookalike`` and
``python -m services.scraper``. Heavy imports (Scrapy, Twisted) happen inside the commands."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from shared.settings import get_settings


@click.command()
@click.argument("source")
@click.option("--max-pages", type=click.IntRange(min=1), default=None, help="Stop after N pages.")
@click.option("--run-id", type=int, default=None, hidden=True, help="A run the scheduler began.")
@click.option("--json", "as_json", is_flag=True, help="Print the crawl run as JSON.")
def crawl(source: str, max_pages: int | None, run_id: int | None, as_json: bool) -> None:
    """Crawl SOURCE once now and record the crawl run (exit status 1 if it failed)."""
    from services.scraper.service import run_crawl
    from services.scraper.settings import get_scraper_settings
    from shared.db import CrawlStatus

    run = run_crawl(
        source, get_settings(), get_scraper_settings(), run_id=run_id, max_pages=max_pages
    )
    if as_json:
        click.echo(json.dumps(run.model_dump(mode="json"), indent=2))
    else:
        click.echo(
            f"crawl {run.id} of {source}: {run.status.value}, {run.pages} pages, "
            f"{run.items} products, {run.errors} errors ({run.stats.get('outcome', '')})"
        )
    if run.status is not CrawlStatus.SUCCEEDED:
        sys.exit(1)


@click.group()
def sources() -> None:
    """Shops to crawl: add them from a YAML file, list them."""


@sources.command("add")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def sources_add(file: Path) -> None:
    """Create or update the sources defined in FILE (YAML, see services/scraper/schemas.py)."""
    from services.scraper.schemas import load_sources_file
    from services.scraper.service import add_sources
    from shared.db import Catalog

    definitions = load_sources_file(file)
    settings = get_settings()
    settings.ensure_dirs()
    catalog = Catalog.from_settings(settings)
    catalog.migrate()
    for source in add_sources(catalog, definitions):
        state = "enabled" if source.enabled else "disabled"
        click.echo(f"source {source.name} ({state}): {source.base_url}")


@sources.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
def sources_list(as_json: bool) -> None:
    """The sources, with their last crawl."""
    from shared.db import Catalog

    catalog = Catalog.from_settings(get_settings())
    for source in catalog.list_sources():
        runs = catalog.crawl_runs(source.id, limit=1)
        last = runs[0] if runs else None
        if as_json:
            body = {
                **source.model_dump(mode="json"),
                "last_crawl": last.model_dump(mode="json") if last else None,
            }
            click.echo(json.dumps(body))
            continue
        state = "enabled " if source.enabled else "disabled"
        crawled = (
            f"last crawl {last.started_at:%Y-%m-%d %H:%M} {last.status.value}, "
            f"{last.items} products, {last.errors} errors"
            if last
            else "never crawled"
        )
        click.echo(f"{source.name:<24} {state} {source.base_url}  ({crawled})")


@click.command()
def scheduler() -> None:
    """Re-crawl every enabled source on its interval until stopped (SIGTERM or Ctrl-C)."""
    from services.scraper.scheduler import Scheduler
    from services.scraper.settings import get_scraper_settings
    from shared.db import Catalog

    settings = get_settings()
    settings.ensure_dirs()
    catalog = Catalog.from_settings(settings)
    catalog.migrate()
    Scheduler(settings, get_scraper_settings(), catalog).run_forever()
    catalog.dispose()
