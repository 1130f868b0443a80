"""The gateway's pages: the storefront demo at ``/`` and the operator's status page.

The storefront is static HTML, CSS and JavaScript modules under ``static/`` (no build step);
it calls the public API (``POST /recommend``) from the browser. ``/storefront/config.json``
hands it the few facts it needs up front: the catalog's categories, brands, currency and price
range (what searches filter on), the colour names its colour filter offers and the upload limit;
of one shop's catalog when the page is started for it (``/?shop=NAME``: the page passes ``shop``
on to its requests). The status page (catalog counts, ingest, each shop's counts, and the
garment class of each shop category) lives at ``/status-page``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from html import escape
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from services.gateway.deps import CatalogDep, SettingsDep
from services.gateway.errors import ErrorOut, error_responses
from services.gateway.examples import example_photo, examples_for
from services.gateway.schemas import shop_names
from shared.colour import SHOPPER_COLOURS
from shared.db import (
    Catalog,
    CatalogStats,
    CategoryGarment,
    Facets,
    IngestProgress,
    ShopStats,
    SourceOut,
)
from shared.errors import InvalidInputError
from shared.health import Check

STATIC_DIR = Path(__file__).parent.parent / "static"

# The page loads only its own files; product pictures come from the shops' own hosts and the
# shopper's photo is shown from a blob: URL, so images are the one thing allowed from elsewhere.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: blob: http: https:; script-src 'self'; "
    "style-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)

router = APIRouter()


class CatalogProgress(BaseModel):
    products: int = Field(description="Active products.")
    images_indexed: int = Field(description="Their images that are searchable.")
    images_total: int = Field(description="Their images, searchable or not yet.")
    indexing: bool = Field(description="Images are still waiting to be indexed.")


class StorefrontConfig(Facets):
    """What the page offers in its filters, from the active catalog (what searches filter on),
    and what it needs to know before the first search."""

    max_upload_bytes: int
    color_weight: float = Field(description="The colour weight a search uses unless it sets one.")
    colours: list[str] = Field(
        description="The colour names a search can filter on (``colour`` on /recommend).",
        examples=[["black", "white", "navy"]],
    )
    feedback: bool = Field(
        description="Whether the page may record clicks with POST /feedback: only when no API "
        "key guards it (a public page cannot hold the key)."
    )
    catalog: CatalogProgress = Field(
        description="How much of the catalog is searchable yet (the page says so while it grows)."
    )
    shop: list[str] | None = Field(
        default=None, description="The shops the page is scoped to (null: every shop)."
    )


@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
async def storefront() -> FileResponse:
    """The storefront demo page (static; it fetches everything else from the API)."""
    return FileResponse(
        STATIC_DIR / "index.html",
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-cache"},
    )


@router.get("/favicon.ico", include_in_schema=False)
async def favicon() -> RedirectResponse:
    """Browsers ask for it on every page; the icon is the storefront's SVG."""
    return RedirectResponse("/static/favicon.svg", status_code=301)


@router.get(
    "/storefront/config.json",
    tags=["storefront"],
    response_model=StorefrontConfig,
    responses=error_responses(422),
)
async def storefront_config(
    catalog: CatalogDep,
    settings: SettingsDep,
    shop: Annotated[
        str | None,
        Query(description="The page's shops (source names, comma-separated); unset: every shop."),
    ] = None,
) -> StorefrontConfig:
    """What the storefront page needs before the first query: the categories, brands, currency
    and price range it can filter on, the upload size limit, and how much of the catalog is
    searchable yet; of the page's ``shop`` only, when it is started for one (``/?shop=NAME``;
    422 for a shop the catalog does not have)."""
    shops = await run_in_threadpool(_page_shops, catalog, shop)
    facets: Facets = await run_in_threadpool(partial(catalog.facets, shops=shops))
    return StorefrontConfig(
        **facets.model_dump(),
        shop=shops,
        catalog=await run_in_threadpool(_progress, catalog, shops),
        max_upload_bytes=settings.images.max_upload_bytes,
        color_weight=settings.gateway.color_weight,
        colours=list(SHOPPER_COLOURS),
        feedback=not settings.api_key,
    )


def _page_shops(catalog: Catalog, shop: str | None) -> list[str] | None:
    """The page's shops, read as ``/recommend`` reads ``shop`` (422: malformed or unknown)."""
    if shop is None:
        return None
    try:
        names: list[str] = shop_names(shop)
    except ValueError as exc:
        raise InvalidInputError(f"shop: {exc}") from exc
    known = [source.name for source in catalog.list_sources()]
    unknown = [name for name in names if name not in known]
    if unknown:
        offered = ", ".join(known) if known else "none yet"
        listed = ", ".join(repr(name) for name in unknown)
        raise InvalidInputError(f"no shop named {listed}; the shops are: {offered}")
    return names


def _progress(catalog: Catalog, shops: list[str] | None) -> CatalogProgress:
    """How much of the catalog (or of ``shops``) is searchable yet."""
    if shops is None:
        stats: CatalogStats = catalog.stats()
        progress: IngestProgress = catalog.ingest_progress()
        return CatalogProgress(
            products=stats.products_active,
            images_indexed=progress.done,
            images_total=progress.total,
            indexing=progress.waiting > 0,
        )
    mine = [row for row in catalog.shop_stats() if row.source in shops]
    return CatalogProgress(
        products=sum(row.products_active for row in mine),
        images_indexed=sum(row.images_indexed for row in mine),
        images_total=sum(
            row.images_indexed + row.images_pending + row.images_failed for row in mine
        ),
        indexing=any(row.images_pending for row in mine),
    )


class ExampleOut(BaseModel):
    url: str = Field(
        description="The JPEG, on this gateway.", examples=["/storefront/examples/1.jpg"]
    )
    alt: str = Field(description="What the photo shows, for people who cannot see it.")
    width: int
    height: int


@router.get("/storefront/examples", tags=["storefront"], response_model=list[ExampleOut])
async def storefront_examples(catalog: CatalogDep) -> list[ExampleOut]:
    """Example photos for a visitor without a photo: street photos of outfits drawn from the
    demo shop while it is enabled, else photos of the enabled shops' products. The page
    uploads the chosen one to ``POST /recommend`` like any other."""
    photos = await run_in_threadpool(examples_for, catalog)
    return [
        ExampleOut(
            url=f"/storefront/examples/{photo.number}.jpg",
            alt=photo.alt,
            width=photo.width,
            height=photo.height,
        )
        for photo in photos
    ]


@router.get(
    "/storefront/examples/{n}.jpg",
    tags=["storefront"],
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "The photo."},
        404: {"model": ErrorOut, "description": "No example with that number"},
        **error_responses(422),  # the framework's default answer, in the project's shape
    },
)
async def storefront_example(n: str, catalog: CatalogDep) -> Response:
    """Example photo ``n`` (1-based, as listed by ``/storefront/examples``) as a JPEG."""
    photos = await run_in_threadpool(examples_for, catalog)
    photo = example_photo(photos, n)
    return Response(photo.jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-cache"})


@router.get("/status-page", include_in_schema=False, response_class=HTMLResponse)
async def status_page(request: Request, catalog: CatalogDep) -> HTMLResponse:
    """The operator's view: catalog counts, ingest progress and liveness, sources, and the
    garment class of each shop category. It refreshes itself every few seconds."""
    stats: CatalogStats = await run_in_threadpool(catalog.stats)
    progress: IngestProgress = await run_in_threadpool(catalog.ingest_progress)
    sources: list[SourceOut] = await run_in_threadpool(catalog.list_sources)
    categories: list[CategoryGarment] = await run_in_threadpool(catalog.category_garments)
    shops: list[ShopStats] = await run_in_threadpool(catalog.shop_stats)
    state = request.app.state
    checks = [state.warmup.check()]
    if getattr(state, "ingest", None) is not None:
        checks.append(state.ingest.check())
    return HTMLResponse(
        render_status_page(stats, sources, progress, checks, categories=categories, shops=shops)
    )


_STYLE = """
body{font:16px/1.5 system-ui,sans-serif;margin:0 auto;max-width:56rem;padding:2rem;color:#1d1d1f}
h1{margin:0 0 .25rem}p.lead{margin:0 0 2rem;color:#555}
table{border-collapse:collapse;width:100%;margin:0 0 2rem}
th,td{text-align:left;padding:.4rem .6rem;border-bottom:1px solid #ddd}
th{font-weight:600;background:#f5f5f7}.num{text-align:right;font-variant-numeric:tabular-nums}
dl{display:grid;grid-template-columns:repeat(auto-fit,minmax(9rem,1fr));gap:1rem;margin:0 0 2rem}
dl div{background:#f5f5f7;border-radius:.5rem;padding:.75rem}dt{color:#555;font-size:.85rem}
dd{margin:0;font-size:1.6rem;font-weight:600}a{color:#0050b3}
ul.ingest{padding-left:1.2rem;margin:0 0 1.5rem}li.ok::marker{color:#1a7f37}
li.bad{color:#b42318}tr.unknown td{background:#fff4e5}p.hint{color:#555}
.scroll{overflow-x:auto;margin:0 0 2rem}.scroll table{margin:0}td a{overflow-wrap:anywhere}
@media (max-width:40rem){body{padding:1rem}th,td{padding:.35rem .4rem}}
"""


REFRESH_S = 5


def _ingest_html(progress: IngestProgress, checks: list[Check]) -> str:
    items = [f"<li>{escape(progress.summary())}</li>"]
    items += [
        f'<li class="{"ok" if check.ok else "bad"}">{escape(check.name)}: '
        f"{escape(check.detail)}</li>"
        for check in checks
    ]
    if not any(check.name == "ingest" for check in checks):
        items.append("<li>workers: separate processes (<code>lookalike ingest-status</code>)</li>")
    reasons = "".join(
        f'<tr><td>{escape(reason)}</td><td class="num">{count:,}</td></tr>'
        for reason, count in progress.failure_reasons.items()
    )
    table = (
        "<table><thead><tr><th>Failure reason</th><th>Images</th></tr></thead>"
        f"<tbody>{reasons}</tbody></table>"
        if reasons
        else ""
    )
    return f'<ul class="ingest">{"".join(items)}</ul>{table}'


MAX_CATEGORY_ROWS = 50
"""The status page lists this many categories (most products first); ``lookalike sources show``
lists them all."""


def _category_row(row: CategoryGarment) -> str:
    marked = ' class="unknown"' if row.how == "unknown" else ""
    category = escape(row.category) if row.category is not None else "<em>none</em>"
    share = f"{row.share:.0%}" if row.votes else ""
    garment = row.garment or ("none" if row.how == "not a garment" else "unknown")
    return (
        f"<tr{marked}><td>{escape(row.source)}</td><td>{category}</td>"
        f'<td class="num">{row.products:,}</td><td>{escape(garment)}</td>'
        f"<td>{escape(row.parent or '')}</td><td>{escape(row.how)}</td>"
        f'<td class="num">{row.votes:,}</td><td class="num">{share}</td></tr>'
    )


def _categories_html(categories: Sequence[CategoryGarment]) -> str:
    if not categories:
        return "<p>No active products yet.</p>"
    shown = sorted(categories, key=lambda row: -row.products)[:MAX_CATEGORY_ROWS]
    rows = "".join(_category_row(row) for row in shown)
    more = len(categories) - len(shown)
    if more:
        rows += (
            f'<tr><td colspan="8">{more:,} more (<code>lookalike sources show NAME</code> '
            "lists a source's categories)</td></tr>"
        )
    table = (
        '<div class="scroll"><table><thead><tr><th>Source</th><th>Category</th><th>Products</th>'
        "<th>Garment class</th><th>Parent</th><th>How</th><th>Votes</th><th>Share</th>"
        f"</tr></thead><tbody>{rows}</tbody></table></div>"
    )
    hint = ""
    if any(row.how == "unknown" and row.category is not None for row in categories):
        hint = (
            '<p class="hint">Categories marked unknown have no garment class: neither their name '
            "nor enough of their crops' votes say which garment they are. Pin one with "
            "<code>garment_map</code> in the source's YAML (<code>lookalike sources add</code>)."
            "</p>"
        )
    return table + hint


def _shop_counts(row: ShopStats | None) -> str:
    """A source's counts as table cells (empty before the catalog has them)."""
    if row is None:
        return '<td colspan="5"></td>'
    numbers = (
        row.products,
        row.products_active,
        row.images_indexed,
        row.images_pending,
        row.images_failed,
    )
    return "".join(f'<td class="num">{number:,}</td>' for number in numbers)


def render_status_page(
    stats: CatalogStats,
    sources: list[SourceOut],
    progress: IngestProgress,
    checks: list[Check],
    *,
    categories: Sequence[CategoryGarment] = (),
    shops: Sequence[ShopStats] = (),
) -> str:
    enabled = {source.id for source in sources if source.enabled}  # a disabled shop's: not shown
    counts = {row.source: row for row in shops}
    tiles = [
        ("Sources", stats.sources),
        ("Active products", stats.products_active),
        ("Inactive products", stats.products_inactive),
        *((f"Images {state.value}", count) for state, count in stats.images.items()),
    ]
    tile_html = "".join(
        f"<div><dt>{escape(label)}</dt><dd>{count:,}</dd></div>" for label, count in tiles
    )
    rows = "".join(
        "<tr>"
        f"<td>{escape(source.name)}</td>"
        f'<td><a href="{escape(source.base_url)}">{escape(source.base_url)}</a></td>'
        f"<td>{'enabled' if source.enabled else 'disabled'}</td>"
        f"{_shop_counts(counts.get(source.name))}"
        "</tr>"
        for source in sources
    )
    if not rows:
        rows = (
            '<tr><td colspan="8">No sources yet: '
            "<code>lookalike run</code> adds the demo shop.</td></tr>"
        )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{REFRESH_S}">
<title>Lookalike · status</title>
<style>{_STYLE}</style>
</head>
<body>
<main>
<h1>Lookalike</h1>
<p class="lead">Visual recommendations for fashion shops. Catalog status of this instance,
refreshed every {REFRESH_S} s.</p>
<section aria-labelledby="counts"><h2 id="counts">Catalog</h2><dl>{tile_html}</dl></section>
<section aria-labelledby="ingest"><h2 id="ingest">Ingest</h2>
{_ingest_html(progress, checks)}</section>
<section aria-labelledby="sources"><h2 id="sources">Sources</h2>
<div class="scroll"><table><thead><tr><th>Name</th><th>Start URL</th><th>State</th>
<th>Products</th><th>Active</th><th>Images indexed</th><th>Pending</th><th>Failed</th>
</tr></thead><tbody>{rows}</tbody></table></div>
<p class="hint">Each shop's storefront: <code>/?shop=NAME</code>; its API key:
<code>lookalike keys add NAME --shop SOURCE</code>.</p></section>
<section aria-labelledby="categories"><h2 id="categories">Categories</h2>
<p class="hint">The garment class of each shop category: the source's <code>garment_map</code>
(operator), else its name, else its crops' classifier votes.</p>
{_categories_html([row for row in categories if row.source_id in enabled])}</section>
<p><a href="/">Storefront</a> · API: <a href="/docs">OpenAPI docs</a> ·
<a href="/status">/status</a> · <a href="/readyz">/readyz</a> · <a href="/healthz">/healthz</a></p>
</main>
</body>
</html>
"""
