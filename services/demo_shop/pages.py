"""HTML, robots.txt and sitemap bodies of the demo shop, and its URL scheme.

URL scheme (paths; absolute URLs prefix the shop's base URL):

- ``/`` home, linking every category, all products and the newest products
- ``/products?page=N`` and ``/category/<category>?page=N`` listings, ``PAGE_SIZE`` per page
- ``/product/<slug>`` product page with schema.org ``Product`` JSON-LD
- ``/images/<sku>/<view>-v<image_version>.jpg`` product pictures
- ``/robots.txt``, ``/sitemap.xml``; ``/cart`` and ``/account`` are disallowed by robots.txt
- ``/products.json?limit=N&page=N`` (Shopify) and ``/feed.xml`` (Google Merchant): the catalog
  as product feeds (:mod:`services.demo_shop.feeds`); ``/products/<slug>`` is the product page
  under Shopify's path
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import format_datetime
from html import escape
from urllib.parse import quote
from xml.sax.saxutils import escape as xml_escape

from services.demo_shop.catalog import DemoProduct
from services.demo_shop.vocabulary import CATEGORIES

PAGE_SIZE = 24
SHOP_NAME = "Lookalike Demo Shop"
NEW_IN_COUNT = 8
DISALLOWED_PATHS = ("/cart", "/account")


def product_path(product: DemoProduct) -> str:
    return f"/product/{quote(product.slug)}"


def image_path(product: DemoProduct, view: str) -> str:
    return f"/images/{quote(product.sku, safe='')}/{view}-v{product.image_version}.jpg"


def listing_path(category: str | None, page: int = 1) -> str:
    """``/products`` or ``/category/<c>``; page 1 has no query so each page has one URL."""
    path = "/products" if category is None else f"/category/{category}"
    return path if page == 1 else f"{path}?page={page}"


def page_count(n_items: int) -> int:
    return max(1, math.ceil(n_items / PAGE_SIZE))


def format_price(product: DemoProduct) -> str:
    return f"{product.price} {product.currency}"


def http_date(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def iso_date(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_STYLE = """
body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header,footer{background:#1f2933;color:#fff;padding:12px 24px}
header a,footer a{color:#fff;margin-right:14px;text-decoration:none}
main{padding:16px 24px}
.product-grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(180px,1fr));gap:16px;
list-style:none;padding:0}
.product-card{background:#fff;border:1px solid #e4e7eb;padding:8px}
.product-card img{width:100%;height:auto}
.pagination a,.pagination span{margin-right:8px}
.gallery img{max-width:320px;margin-right:8px}
.price{display:block;font-weight:bold;font-size:1.2em;margin-top:.25rem}
"""


def _layout(
    base_url: str,
    title: str,
    body: str,
    *,
    canonical: str | None = None,
    head_extra: str = "",
) -> str:
    nav = "".join(
        f'<a href="{listing_path(category)}">{escape(category.capitalize())}</a>'
        for category in CATEGORIES
    )
    canonical_tag = f'<link rel="canonical" href="{escape(canonical)}">' if canonical else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} | {SHOP_NAME}</title>{canonical_tag}{head_extra}"
        f"<style>{_STYLE}</style></head><body>"
        f'<header><a class="logo" href="/">{SHOP_NAME}</a>'
        f'<a href="{listing_path(None)}">All products</a>{nav}'
        '<a href="/cart" rel="nofollow">Cart</a><a href="/account" rel="nofollow">Account</a>'
        f"</header><main>{body}</main>"
        "<footer>Generated demo shop. "
        f'<a href="{escape(base_url)}/sitemap.xml">Sitemap</a></footer>'
        "</body></html>\n"
    )


def _card(base_url: str, product: DemoProduct) -> str:
    return (
        f'<li class="product-card" data-sku="{escape(product.sku)}">'
        f'<a class="product-link" href="{product_path(product)}">'
        f'<img src="{escape(base_url + image_path(product, "front"))}" '
        f'alt="{escape(product.title)}" width="200" height="250" loading="lazy">'
        f'<span class="product-title">{escape(product.title)}</span></a>'
        f'<span class="price">{escape(format_price(product))}</span></li>'
    )


def home_page(base_url: str, products: Sequence[DemoProduct]) -> str:
    counts = {category: 0 for category in CATEGORIES}
    for product in products:
        counts[product.category] += 1
    categories = "".join(
        f'<li><a class="category-link" href="{listing_path(category)}">'
        f"{escape(category.capitalize())}</a> ({counts[category]})</li>"
        for category in CATEGORIES
    )
    newest = "".join(_card(base_url, product) for product in products[-NEW_IN_COUNT:][::-1])
    body = (
        f"<h1>{SHOP_NAME}</h1>"
        f'<p><a href="{listing_path(None)}">Shop all {len(products)} products</a></p>'
        f'<h2>Categories</h2><ul class="categories">{categories}</ul>'
        f'<h2>New in</h2><ul class="product-grid">{newest}</ul>'
    )
    return _layout(base_url, "Home", body, canonical=f"{base_url}/")


def _page_window(page: int, pages: int, radius: int = 2) -> list[int]:
    """Page numbers to link: the first, the last and ``radius`` around the current one."""
    around = range(max(1, page - radius), min(pages, page + radius) + 1)
    return sorted({1, pages, *around})


def listing_page(
    base_url: str, category: str | None, products: Sequence[DemoProduct], page: int
) -> str:
    """One page of a listing; the caller checks ``1 <= page <= page_count(len(products))``."""
    pages = page_count(len(products))
    shown = products[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    heading = "All products" if category is None else category.capitalize()
    links: list[str] = []
    head_links: list[str] = []
    if page > 1:
        prev_href = listing_path(category, page - 1)
        links.append(f'<a class="prev" rel="prev" href="{prev_href}">Previous</a>')
        head_links.append(f'<link rel="prev" href="{base_url}{prev_href}">')
    previous = 0
    for number in _page_window(page, pages):
        if number > previous + 1:
            links.append('<span class="gap">…</span>')
        if number == page:
            links.append(f'<span class="current" aria-current="page">{number}</span>')
        else:
            links.append(f'<a class="page" href="{listing_path(category, number)}">{number}</a>')
        previous = number
    if page < pages:
        next_href = listing_path(category, page + 1)
        links.append(f'<a class="next" rel="next" href="{next_href}">Next</a>')
        head_links.append(f'<link rel="next" href="{base_url}{next_href}">')
    grid = "".join(_card(base_url, product) for product in shown)
    if not shown:
        grid = '<li class="empty">No products here yet.</li>'
    body = (
        f"<h1>{escape(heading)}</h1>"
        f'<p class="count">{len(products)} products, page {page} of {pages}</p>'
        f'<ul class="product-grid">{grid}</ul>'
        f'<nav class="pagination">{"".join(links)}</nav>'
    )
    return _layout(
        base_url,
        heading if page == 1 else f"{heading}, page {page}",
        body,
        canonical=base_url + listing_path(category, page),
        head_extra="".join(head_links),
    )


def product_json_ld(base_url: str, product: DemoProduct) -> dict[str, object]:
    url = base_url + product_path(product)
    return {
        "@context": "https://schema.org",
        "@type": "Product",
        "name": product.title,
        "sku": product.sku,
        "gtin13": product.gtin,
        "brand": {"@type": "Brand", "name": product.brand},
        "category": product.category,
        "color": product.colour,
        "pattern": product.pattern,
        "description": product.description,
        "image": [base_url + image_path(product, view) for view in product.views],
        "url": url,
        "offers": {
            "@type": "Offer",
            "price": str(product.price),
            "priceCurrency": product.currency,
            "availability": product.availability_url,
            "itemCondition": "https://schema.org/NewCondition",
            "url": url,
        },
    }


def product_page(base_url: str, product: DemoProduct) -> str:
    url = base_url + product_path(product)
    # "</" inside a script element would end it early; JSON allows the escaped form.
    json_ld = json.dumps(product_json_ld(base_url, product), indent=1).replace("</", "<\\/")
    images = "".join(
        f'<img class="product-image" data-view="{view}" '
        f'src="{escape(base_url + image_path(product, view))}" '
        f'alt="{escape(product.title)}, {view} view" width="400" height="500">'
        for view in product.views
    )
    head_extra = (
        '<meta property="og:type" content="product">'
        f'<meta property="og:title" content="{escape(product.title)}">'
        f'<meta property="og:url" content="{escape(url)}">'
        f'<meta property="og:image" content="{escape(base_url + image_path(product, "front"))}">'
        f'<script type="application/ld+json">\n{json_ld}\n</script>'
    )
    availability = {
        "InStock": "In stock",
        "OutOfStock": "Out of stock",
        "LimitedAvailability": "Only a few left",
        "PreOrder": "Pre-order",
    }[product.availability]
    body = (
        '<nav class="breadcrumb"><a href="/">Home</a> / '
        f'<a href="{listing_path(product.category)}">{escape(product.category.capitalize())}</a>'
        f" / <span>{escape(product.title)}</span></nav>"
        f'<article class="product" data-sku="{escape(product.sku)}">'
        f'<h1 class="product-title">{escape(product.title)}</h1>'
        f'<p class="brand">{escape(product.brand)}</p>'
        f'<p class="price"><span class="amount">{product.price}</span> '
        f'<span class="currency">{escape(product.currency)}</span></p>'
        f'<p class="availability">{availability}</p>'
        f'<div class="gallery">{images}</div>'
        '<dl class="attributes">'
        f'<dt>SKU</dt><dd class="sku">{escape(product.sku)}</dd>'
        f'<dt>Category</dt><dd class="category">{escape(product.category)}</dd>'
        f'<dt>Colour</dt><dd class="colour">{escape(product.colour)}</dd>'
        f'<dt>Pattern</dt><dd class="pattern">{escape(product.pattern)}</dd></dl>'
        f'<p class="description">{escape(product.description)}</p>'
        '<form method="post" action="/cart"><button type="submit">Add to cart</button></form>'
        "</article>"
    )
    return _layout(base_url, product.title, body, canonical=url, head_extra=head_extra)


def simple_page(base_url: str, title: str, message: str) -> str:
    body = (
        f'<h1>{escape(title)}</h1><p>{escape(message)}</p><p><a href="/">Back to the shop</a></p>'
    )
    return _layout(base_url, title, body)


def robots_txt(base_url: str) -> str:
    disallow = "".join(f"Disallow: {path}\n" for path in DISALLOWED_PATHS)
    return f"User-agent: *\n{disallow}Allow: /\n\nSitemap: {base_url}/sitemap.xml\n"


def sitemap_xml(base_url: str, products: Sequence[DemoProduct]) -> str:
    entries = "".join(
        f"<url><loc>{xml_escape(base_url + product_path(product))}</loc>"
        f"<lastmod>{iso_date(product.last_modified)}</lastmod></url>\n"
        for product in products
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
        f"{entries}</urlset>\n"
    )
