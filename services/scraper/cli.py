"""Command-line entry points of the scraper, shared by ``lookalike`` and
``python -m services.scraper``. Heavy imports (Scrapy, Twisted) happen inside the commands."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from shared.settings import get_settings

EX_TEMPFAIL = 75
"""``lookalike crawl``'s exit status when the source is being crawled already (sysexits.h)."""

if TYPE_CHECKING:
    from services.scraper.writer import IndexSync
    from shared.db import Catalog, CategoryGarment, OfferGroupOut, SourceOut
    from shared.db.schemas import CrawlRunOut
    from shared.settings import Settings


@click.command()
@click.argument("source")
@click.option("--max-pages", type=click.IntRange(min=1), default=None, help="Stop after N pages.")
@click.option("--run-id", type=int, default=None, hidden=True, help="A run the scheduler began.")
@click.option("--json", "as_json", is_flag=True, help="Print the crawl run as JSON.")
def crawl(source: str, max_pages: int | None, run_id: int | None, as_json: bool) -> None:
    """Crawl SOURCE once now and record the crawl run (exit status 1 if it failed, 75 if
    another process is crawling SOURCE: one crawl per source at a time)."""
    from services.scraper.service import run_crawl
    from shared.db import CrawlStatus
    from shared.db.sources import CrawlInProgressError

    try:
        run = run_crawl(source, get_settings(), run_id=run_id, max_pages=max_pages)
    except CrawlInProgressError as exc:
        click.echo(exc.message, err=True)
        sys.exit(EX_TEMPFAIL)
    if as_json:
        click.echo(json.dumps(run.model_dump(mode="json"), indent=2))
    else:
        click.echo(
            f"crawl {run.id} of {source}: {run.status.value}, {run.pages} pages, "
            f"{run.items} products, {run.errors} errors ({run.stats.get('outcome', '')})"
        )
        report = run.stats.get("feed_report")
        if isinstance(report, dict) and run.status is CrawlStatus.SUCCEEDED:
            click.echo(
                f"feed: {report.get('added', 0)} added, {report.get('changed', 0)} changed, "
                f"{report.get('removed', 0)} removed, {report.get('unchanged', 0)} unchanged "
                f"({report.get('out_of_stock', 0)} out of stock)"
            )
    if run.status is not CrawlStatus.SUCCEEDED:
        sys.exit(1)


@click.group()
def sources() -> None:
    """Shops to crawl: add them from a YAML file, list them, show, disable, enable or remove
    one."""


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
    for source in add_sources(catalog, definitions, sync=_index_sync(settings)):
        state = "enabled" if source.enabled else "disabled"
        click.echo(f"source {source.name} ({state}): {source.base_url}")


@sources.command("disable")
@click.argument("name")
def sources_disable(name: str) -> None:
    """Stop crawling NAME and take its products out of every answer at once (exit status 2
    if there is no such source)."""
    from services.scraper.service import disable_source

    settings = get_settings()
    catalog = _catalog_of(name, settings)
    source, count = disable_source(catalog, name, _index_sync(settings))
    click.echo(f"source {source.name} disabled: {count} products no longer recommended")


@sources.command("enable")
@click.argument("name")
def sources_enable(name: str) -> None:
    """Crawl and recommend NAME again (exit status 2 if there is no such source)."""
    from services.scraper.service import enable_source

    settings = get_settings()
    catalog = _catalog_of(name, settings)
    source, count = enable_source(catalog, name, _index_sync(settings))
    click.echo(f"source {source.name} enabled: {count} products recommended again")


@sources.command("remove")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def sources_remove(name: str, yes: bool) -> None:
    """Delete NAME with its products, its crawl history and their points in the index (asks
    first unless --yes; exit status 2 if there is no such source)."""
    from services.scraper.service import remove_source

    settings = get_settings()
    catalog = _catalog_of(name, settings)
    if not yes:
        click.confirm(
            f"Remove source {name} with its products and crawl history?", abort=True, err=True
        )
    count = remove_source(catalog, name, _index_sync(settings))
    click.echo(f"source {name} removed with its {count} products")


def _catalog_of(name: str, settings: Settings) -> Catalog:
    """The catalog, once it is known to hold source ``name`` (else exit status 2)."""
    from shared.db import Catalog
    from shared.errors import NotFoundError

    catalog = Catalog.from_settings(settings)
    try:
        catalog.get_source(name)
    except NotFoundError:
        names = [known.name for known in catalog.list_sources()]
        known = f"the sources are: {', '.join(names)}" if names else "there are no sources yet"
        click.echo(f"no source named {name!r}; {known}", err=True)
        sys.exit(2)
    return catalog


def _index_sync(settings: Settings) -> IndexSync:
    """Ask the index owner (the worker, or ``lookalike run``) to update these products."""
    from functools import partial

    from services.scraper.service import request_sync

    return partial(request_sync, settings)


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


@sources.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def sources_show(name: str, as_json: bool) -> None:
    """NAME's config, last crawl, and the garment class of each of its categories (exit
    status 2 if there is no such source)."""
    catalog = _catalog_of(name, get_settings())
    source = catalog.get_source(name)
    runs = catalog.crawl_runs(source.id, limit=1)
    last = runs[0] if runs else None
    categories = catalog.category_garments(source.id)
    if as_json:
        body = {
            "source": source.model_dump(mode="json"),
            "last_crawl": last.model_dump(mode="json") if last else None,
            "categories": [row.model_dump(mode="json") for row in categories],
        }
        click.echo(json.dumps(body, indent=2))
        return
    for line in _source_summary(source, last):
        click.echo(line)
    click.echo("")
    _echo_categories(categories)


def _printable(text: str) -> str:
    """A shop's string as plain text for a terminal (no control characters)."""
    return "".join(char if char.isprintable() else "?" for char in text)


def _source_summary(source: SourceOut, last: CrawlRunOut | None) -> list[str]:
    from services.scraper.schemas import SourceConfig
    from shared.errors import ConfigurationError

    state = "enabled" if source.enabled else "disabled"
    lines = [f"{_printable(source.name)} ({state}): {_printable(source.base_url)}"]
    try:
        config = SourceConfig.of(source)
    except ConfigurationError as exc:
        lines.append(f"  config: {_printable(exc.message)}")
    else:
        seeds = ", ".join(config.start_urls) or "none"
        if config.feed_url:
            currency = f", currency {config.currency}" if config.currency else ""
            lines.append(f"  feed: {_printable(config.feed_url)} ({config.format}{currency})")
        else:
            lines.append(f"  start URLs: {_printable(seeds)}; sitemaps: {config.sitemaps}")
        lines.append(
            f"  crawl every {config.crawl_interval}, at most {config.max_pages:,} pages; "
            f"category_map: {len(config.category_map)} labels"
        )
        pinned = ", ".join(f"{k} -> {v}" for k, v in config.garment_map.items()) or "none"
        lines.append(f"  garment_map: {_printable(pinned)}")
    lines.append(
        f"  last crawl {last.started_at:%Y-%m-%d %H:%M} {last.status.value}, "
        f"{last.items} products, {last.errors} errors"
        if last
        else "  never crawled"
    )
    return lines


def _echo_categories(categories: list[CategoryGarment]) -> None:
    if not categories:
        click.echo("No active products yet: no categories.")
        return
    header = ("CATEGORY", "PRODUCTS", "GARMENT", "PARENT", "HOW", "VOTES", "SHARE")
    table = [
        (
            _printable(row.category) if row.category is not None else "(no category)",
            f"{row.products:,}",
            row.garment or "?",
            row.parent or "?",
            row.how,
            f"{row.votes:,}",
            f"{row.share:.0%}" if row.votes else "-",
        )
        for row in categories
    ]
    widths = [max(len(cells[i]) for cells in (header, *table)) for i in range(len(header))]
    numeric = {1, 5, 6}

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ).rstrip()

    click.echo(line(header))
    for row, cells in zip(categories, table, strict=True):
        unknown = row.how == "unknown"
        text = line(cells) + ("  <- unknown" if unknown else "")
        click.echo(click.style(text, fg="yellow", bold=True) if unknown else text)
    pinnable = [row.category for row in categories if row.how == "unknown" and row.category]
    if pinnable:
        from shared.taxonomy import CLASSES

        example = _printable(pinnable[0])
        click.echo(
            f"\n{len(pinnable)} categor{'y has' if len(pinnable) == 1 else 'ies have'} no garment "
            "class: the taxonomy does not read the name and the crops' votes are too few or "
            "split.\nPin a class with garment_map in the source's YAML, then `lookalike sources "
            f'add` it: garment_map: {{"{example}": <class>}}\n'
            f"Classes: {', '.join(garment.name for garment in CLASSES)}"
        )
    if any(row.category is None for row in categories):
        click.echo(
            "(no category): products without one; their crops' own votes place them when they "
            "are indexed and searched."
        )


@click.command()
def scheduler() -> None:
    """Re-crawl every enabled source on its interval until stopped (SIGTERM or Ctrl-C)."""
    from services.scraper.scheduler import Scheduler
    from shared.db import Catalog

    settings = get_settings()
    settings.ensure_dirs()
    catalog = Catalog.from_settings(settings)
    catalog.migrate()
    Scheduler(settings, catalog).run_forever()
    catalog.dispose()


@click.group()
def offers() -> None:
    """One product across shops: offer groups of products that share a GTIN, or an MPN and
    brand, each merge with its evidence (grouped as products are written)."""


def _echo_group(group: OfferGroupOut) -> None:
    click.echo(f"offer group {group.id} (made {group.created_at:%Y-%m-%d %H:%M} UTC)")
    for offer in group.offers:
        price = f"{offer.price} {offer.currency or ''}".strip() if offer.price is not None else "-"
        state = "" if offer.active else " (inactive)"
        matched = f" = product {offer.matched_product_id}" if offer.matched_product_id else ""
        click.echo(
            f"  product {offer.product_id:<8} {offer.shop:<16} {price:<14} "
            f"{_printable(offer.title)[:50]}{state}"
        )
        click.echo(
            f"    {offer.url}\n    merged on {offer.kind} {offer.value}{matched}, "
            f"{offer.merged_at:%Y-%m-%d %H:%M:%S} UTC"
        )


@offers.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
def offers_list(as_json: bool) -> None:
    """Every offer group with its shops' offers and the evidence of each merge."""
    from shared.db import Catalog

    groups = Catalog.from_settings(get_settings()).list_offer_groups()
    for group in groups:
        if as_json:
            click.echo(json.dumps(group.model_dump(mode="json")))
        else:
            _echo_group(group)
    if not groups and not as_json:
        click.echo(
            "no offer groups: no two shops' products share a GTIN or an MPN and brand", err=True
        )


@offers.command("show")
@click.argument("group", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def offers_show(group: int, as_json: bool) -> None:
    """The offer group GROUP: its offers and the evidence of each merge."""
    from shared.db import Catalog

    found = Catalog.from_settings(get_settings()).offer_group(group)
    if as_json:
        click.echo(json.dumps(found.model_dump(mode="json")))
    else:
        _echo_group(found)


@offers.command("split")
@click.argument("product_id", type=int)
def offers_split(product_id: int) -> None:
    """Undo a wrong merge: detach PRODUCT_ID from its offer group. It is never merged again on
    the identifiers it shared with the group (a new identifier is new evidence)."""
    from shared.db import Catalog

    split = Catalog.from_settings(get_settings()).split_offer(product_id)
    refused = ", ".join(split.codes) or "none"
    click.echo(
        f"product {split.product_id} split from offer group {split.group_id}; "
        f"not merged again on: {refused}"
    )
    if split.regrouped:
        made = ", ".join(str(g) for g in split.regrouped)
        click.echo(f"the group's other products regrouped as offer group {made}")


@offers.command("group")
def offers_group() -> None:
    """The upkeep pass: read every product's identifiers and group them (products written
    before offer groups existed, and any a write could not group)."""
    from shared.db import Catalog

    report = Catalog.from_settings(get_settings()).group_offers()
    click.echo(
        f"{report.products} products read: {len(report.merged)} merged, "
        f"{len(report.groups_made)} offer groups made, "
        f"{len(report.groups_dissolved)} dissolved"
    )
