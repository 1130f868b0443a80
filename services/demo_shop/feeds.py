"""The demo shop's catalog as product feeds, so it can be onboarded from a feed as well as
crawled: Shopify's ``/products.json`` (``?limit=N&page=N``, at most 250 a page) and a Google
Merchant RSS feed at ``/feed.xml``. Both describe the same products as the pages; Shopify
product pages are ``/products/<handle>`` (the shop serves them too)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from xml.sax.saxutils import escape as xml_escape

from services.demo_shop.catalog import DemoProduct
from services.demo_shop.pages import image_path, product_path

SHOPIFY_MAX_LIMIT = 250
SHOPIFY_DEFAULT_LIMIT = 30
SIZES = ("S", "M", "L")
_MERCHANT_AVAILABILITY = {
    "InStock": "in_stock",
    "LimitedAvailability": "in_stock",
    "OutOfStock": "out_of_stock",
    "PreOrder": "preorder",
}


def shopify_id(product: DemoProduct) -> int:
    """A Shopify-like numeric id from the SKU (``DS-00042`` -> ``1000042``)."""
    digits = "".join(char for char in product.sku if char.isdigit())
    return 1_000_000 + int(digits or 0)


def shopify_product(base_url: str, product: DemoProduct) -> dict[str, object]:
    """One product as Shopify's ``products.json`` lists it: a variant per size, one colour."""
    product_id = shopify_id(product)
    variants = [
        {
            "id": product_id * 10 + index,
            "product_id": product_id,
            "title": f"{product.colour.capitalize()} / {size}",
            "option1": product.colour.capitalize(),
            "option2": size,
            "option3": None,
            "sku": f"{product.sku}-{size}",
            "barcode": product.gtin,
            "price": str(product.price),
            "compare_at_price": None,
            "available": product.availability != "OutOfStock",
            "featured_image": None,
        }
        for index, size in enumerate(SIZES, start=1)
    ]
    images = [
        {
            "id": product_id * 10 + position,
            "position": position,
            "product_id": product_id,
            "variant_ids": [],
            "src": base_url + image_path(product, view),
        }
        for position, view in enumerate(product.views, start=1)
    ]
    return {
        "id": product_id,
        "title": product.title,
        "handle": product.slug,
        "body_html": f"<p>{xml_escape(product.description)}</p>",
        "vendor": product.brand,
        "product_type": product.category,
        "updated_at": product.last_modified.isoformat(),
        "tags": [product.pattern],
        "options": [
            {"name": "Color", "position": 1, "values": [product.colour.capitalize()]},
            {"name": "Size", "position": 2, "values": list(SIZES)},
        ],
        "variants": variants,
        "images": images,
    }


def shopify_page(base_url: str, products: Sequence[DemoProduct], page: int, limit: int) -> str:
    """Page ``page`` (from 1) of ``/products.json``: ``{"products": [...]}``, empty past the
    end."""
    start = (page - 1) * limit
    shown = products[start : start + limit]
    return json.dumps({"products": [shopify_product(base_url, p) for p in shown]})


def merchant_feed_xml(base_url: str, products: Sequence[DemoProduct]) -> str:
    """The catalog as a Google Merchant RSS 2.0 feed (``g:`` namespace)."""

    def tag(name: str, value: str) -> str:
        return f"<g:{name}>{xml_escape(value)}</g:{name}>"

    items = []
    for product in products:
        images = [base_url + image_path(product, view) for view in product.views]
        fields = [
            tag("id", product.sku),
            f"<title>{xml_escape(product.title)}</title>",
            f"<link>{xml_escape(base_url + product_path(product))}</link>",
            f"<description>{xml_escape(product.description)}</description>",
            tag("image_link", images[0]),
            *(tag("additional_image_link", url) for url in images[1:]),
            tag("price", f"{product.price} {product.currency}"),
            tag("availability", _MERCHANT_AVAILABILITY[product.availability]),
            tag("brand", product.brand),
            tag("gtin", product.gtin),
            tag("color", product.colour),
            tag("pattern", product.pattern),
            tag("product_type", product.category),
            tag("condition", "new"),
        ]
        items.append(f"<item>{''.join(fields)}</item>\n")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rss version="2.0" xmlns:g="http://base.google.com/ns/1.0"><channel>\n'
        f"<title>Lookalike Demo Shop</title><link>{xml_escape(base_url)}/</link>\n"
        f"{''.join(items)}</channel></rss>\n"
    )
