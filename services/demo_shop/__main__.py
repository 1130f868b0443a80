"""``python -m services.demo_shop --products 200 --port 8001 --seed 0``: serve in the foreground."""

from __future__ import annotations

import logging

import click

from services.demo_shop.server import serve


@click.command(name="demo-shop")
@click.option("--products", default=200, show_default=True, type=click.IntRange(min=0))
@click.option("--port", default=8001, show_default=True, type=click.IntRange(0, 65535))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--host", default="127.0.0.1", show_default=True)
def main(products: int, port: int, seed: int, host: str) -> None:
    """Serve a generated fashion shop (products, images, sitemap) until Ctrl-C."""
    logging.basicConfig(level=logging.WARNING)

    def announce(url: str) -> None:
        click.echo(f"Demo shop: {products} products (seed {seed}) at {url}/")

    try:
        serve(products=products, port=port, seed=seed, host=host, on_ready=announce)
    except OSError as exc:
        raise click.ClickException(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from exc


if __name__ == "__main__":
    main()
