"""``lookalike keys``: the storefronts' API keys, each bound to its shops. A key counts (or
stops counting) at once on a running gateway: it is looked up in the catalog per request."""

from __future__ import annotations

import json

import click

from shared.settings import get_settings


@click.group()
def keys() -> None:
    """Storefront API keys: each sees only its own shops' products on /recommend, /feedback
    and /products."""


@keys.command("add")
@click.argument("name")
@click.option(
    "--shop",
    "shops",
    multiple=True,
    required=True,
    help="A shop (source name) the key may see; repeat for several.",
)
def keys_add(name: str, shops: tuple[str, ...]) -> None:
    """Make the key NAME for its shops and print it: once, it is stored only hashed."""
    from pydantic import ValidationError

    from shared.db import ApiKeyIn, Catalog

    try:
        wanted = ApiKeyIn(name=name, shops=shops)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        raise click.BadParameter(problems) from None
    made = Catalog.from_settings(get_settings()).add_api_key(wanted)
    click.echo(made.key)
    click.echo(
        f"key {made.name} for {', '.join(made.shops)}: send it as X-API-Key; it is shown only now",
        err=True,
    )


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
def keys_list(as_json: bool) -> None:
    """The keys by name, with their shops (never the keys themselves)."""
    from shared.db import Catalog

    stored = Catalog.from_settings(get_settings()).list_api_keys()
    for key in stored:
        if as_json:
            click.echo(json.dumps(key.model_dump(mode="json")))
        else:
            click.echo(f"{key.name:<24} {', '.join(key.shops)}  (made {key.created_at:%Y-%m-%d})")
    if not stored and not as_json:
        click.echo("no API keys yet: lookalike keys add NAME --shop SOURCE", err=True)


@keys.command("remove")
@click.argument("name")
def keys_remove(name: str) -> None:
    """Delete the key NAME: requests with it are refused (403) from now on."""
    from shared.db import Catalog

    Catalog.from_settings(get_settings()).remove_api_key(name)
    click.echo(f"key {name} removed")
