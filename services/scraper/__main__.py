"""``python -m services.scraper``: the crawl scheduler; ``... crawl NAME``: one crawl."""

from __future__ import annotations

import click

from services.scraper.cli import crawl, scheduler, sources
from shared.errors import LookalikeError
from shared.logging import configure_logging
from shared.settings import get_settings


class _Main(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except LookalikeError as exc:
            click.echo(f"Error: {exc.message}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=_Main, invoke_without_command=True)
@click.pass_context
def main(ctx: click.Context) -> None:
    """The Lookalike scraper: with no command, run the scheduler."""
    configure_logging(get_settings().log_level)
    if ctx.invoked_subcommand is None:
        ctx.invoke(scheduler)


main.add_command(crawl)
main.add_command(scheduler)
main.add_command(sources)

if __name__ == "__main__":
    main()
